"""Kafka Connect 4.4.0 in distributed mode with exactly-once source support
(`exactly.once.source.support=enabled`, KIP-618) on contextplane: a FileStreamSource
connector (`exactly.once.support=required`, the default transaction boundary: one
transaction per poll) copies numbered lines from a file into a topic, a FileStreamSink
connector copies the topic into another file.

What exactly-once means here, precisely. The source side is exactly-once: each source
task's records and its source offsets are written in one transaction, so after a worker is
killed with SIGKILL the restarted task resumes at the last committed offset, and the killed
task's open transaction is aborted when the restarted task's producer initialises with the
same transactional id (`<group.id>-<connector>-<task>`): a read_committed reader of the
topic sees every line once, in order, while the aborted records stay in the log.

The sink side is at-least-once, on Apache Kafka as here: FileStreamSinkTask writes each
record to the file in put(), and the worker commits the sink consumer's offsets only every
`offset.flush.interval.ms` (after flush()), so the lines written after the last commit are
delivered again to the restarted task, which appends them a second time. Apache Kafka 4.4
does the same: a worker killed while its sink had written 457 lines past its last offset
commit left those 457 lines twice in the sink file, beside a topic holding each line once
(read_committed). So the crash test checks exactly-once where Connect promises it (the
topic, read_committed), and for the sink file that it holds every source line in source
order once the duplicates of a re-delivered range are dropped. The sink reads
read_committed (`consumer.override.isolation.level`): the aborted records never reach it.

The three internal topics are created by Connect itself as compacted topics, and it
checks their cleanup.policy with DescribeConfigs before it starts (a topic that is not
compact-only stops the worker); the tests check the policy too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from harness import kafka_connect
from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until

START_S = 240  # liveness bound of a worker start (two shared cores, a cold JVM)
PROGRESS_S = 180  # liveness bound of the connectors copying what the source file holds
TOPIC = "lines"
SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
BURST = 40_000  # lines appended before a kill


def _lines(start: int, count: int) -> list[str]:
    return [f"line-{n:06d}" for n in range(start, start + count)]


def _append(path: Path, lines: list[str]) -> None:
    with path.open("a") as fh:
        fh.write("".join(f"{line}\n" for line in lines))


def _read_lines(path: Path) -> list[str]:
    """The complete lines of a file another process is appending to."""
    if not path.exists():
        return []
    text = path.read_text()
    return text[: text.rfind("\n") + 1].splitlines()


def _read_committed(bootstrap: str, topic: str, isolation: str = "read_committed") -> list[str]:
    """Every committed record of the topic's one partition in offset order (every record,
    aborted ones too, with isolation="read_uncommitted")."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"connect-eos-reader-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        values: list[str] = []

        def at_end() -> bool:
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                value = message.value()
                assert value is not None, f"a record without a value at {message.offset()}"
                values.append(value.decode())
            position = consumer.position([TopicPartition(topic, 0)])[0].offset
            return position >= end

        # The high watermark bounds the read: past the last stable offset, read_committed
        # skips aborted records and control markers, so the position reaches it.
        wait_until(at_end, 60, f"reading {topic} to offset {end}")
        return values
    finally:
        consumer.close()


def _end_offsets(bootstrap: str, topic: str) -> tuple[int, int]:
    """(last stable offset, high watermark) of the topic's one partition: ListOffsets under
    read_committed and read_uncommitted. The first is below the second while a
    transaction with records in the partition is open."""
    ends = []
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "connect-eos-offsets-probe",
                "isolation.level": isolation,
            }
        )
        try:
            ends.append(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
        finally:
            consumer.close()
    return ends[0], ends[1]


def _cleanup_policies(bootstrap: str, topics: list[str]) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resources = [ConfigResource(ConfigResource.Type.TOPIC, topic) for topic in topics]
    found = admin.describe_configs(resources)
    return {
        resource.name: future.result(10)["cleanup.policy"].value
        for resource, future in found.items()
    }


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)


class Pipeline:
    """A source file, a sink file and the two connectors between them on one worker group."""

    def __init__(self, bootstrap: str, work: Path) -> None:
        self.bootstrap = bootstrap
        self.work = work
        self.group_id = "connect-eos"
        self.source = work / "source.txt"
        self.sink = work / "sink.txt"
        self.source.touch()
        self.worker: kafka_connect.ConnectWorker | None = None

    def start_worker(self) -> kafka_connect.ConnectWorker:
        self.worker = kafka_connect.start(
            self.bootstrap, self.work / "worker", group_id=self.group_id, timeout=START_S
        )
        return self.worker

    def create_connectors(self) -> None:
        assert self.worker is not None
        self.worker.put_connector(
            "file-source",
            {
                "connector.class": SOURCE,
                "tasks.max": "1",
                "file": str(self.source),
                "topic": TOPIC,
                "exactly.once.support": "required",
            },
        )
        self.worker.put_connector(
            "file-sink",
            {
                "connector.class": SINK,
                "tasks.max": "1",
                "file": str(self.sink),
                "topics": TOPIC,
                "consumer.override.isolation.level": "read_committed",
                # A killed worker's sink member leaves the group after this long.
                "consumer.override.session.timeout.ms": "6000",
            },
        )
        self.wait_running()

    def wait_running(self) -> None:
        worker = self.worker
        assert worker is not None
        for name in ("file-source", "file-sink"):
            wait_until(
                partial(worker.running, name),
                START_S,
                f"{name} and its task RUNNING\n{worker.log_tail()}",
                poll_s=0.5,
            )

    def wait_sink_has(self, expected: list[str]) -> list[str]:
        """Wait until the sink file holds every expected line; returns its lines."""
        wanted = set(expected)
        worker = self.worker
        assert worker is not None
        wait_until(
            lambda: wanted <= set(_read_lines(self.sink)),
            PROGRESS_S,
            f"the sink file holding all {len(expected)} lines\n{worker.log_tail()}",
            poll_s=0.2,
        )
        return _read_lines(self.sink)

    def internal_topics(self) -> list[str]:
        return [f"{self.group_id}-{kind}" for kind in ("configs", "offsets", "status")]


@pytest.fixture
def pipeline(broker: InProcessBroker, tmp_path: Path) -> Iterator[Pipeline]:
    kafka_connect.fetch()  # the first run fetches from Maven Central: not a worker start
    _create_topic(broker.bootstrap, TOPIC)
    running = Pipeline(broker.bootstrap, tmp_path)
    yield running
    if running.worker is not None:
        running.worker.stop()


def test_connect_exactly_once_source_copies_a_file(pipeline: Pipeline) -> None:
    """No crash: the sink file equals the source file, and the topic holds each line once."""
    expected = _lines(0, 3000)
    _append(pipeline.source, expected)
    pipeline.start_worker()
    pipeline.create_connectors()

    assert pipeline.wait_sink_has(expected) == expected
    assert _read_committed(pipeline.bootstrap, TOPIC) == expected
    assert _cleanup_policies(pipeline.bootstrap, pipeline.internal_topics()) == dict.fromkeys(
        pipeline.internal_topics(), "compact"
    )


def _kill_inside_a_transaction(pipeline: Pipeline, first_line: int) -> int:
    """Append bursts of lines and SIGKILL the worker while its source task has an open
    transaction holding records (LSO < high watermark, and still so after the kill: no
    commit slipped in between). Returns the number of lines appended. A kill that lands
    between two transactions is retried with a restarted worker and another burst."""
    appended = 0
    for _ in range(3):
        worker = pipeline.worker
        assert worker is not None
        # 20 polls' worth of lines (FileStreamSource reads batch.size=2000 lines a poll,
        # one transaction each, the default transaction boundary).
        _append(pipeline.source, _lines(first_line + appended, BURST))
        appended += BURST
        wait_until(
            lambda: _open_transaction(pipeline.bootstrap),
            PROGRESS_S,
            f"the source task inside a transaction holding records\n{worker.log_tail()}",
            poll_s=0.01,
        )
        worker.kill()
        if _open_transaction(pipeline.bootstrap):
            return appended
        pipeline.start_worker()
        pipeline.wait_running()
    raise AssertionError("three kills in a row landed between transactions")


def _open_transaction(bootstrap: str) -> bool:
    stable, high = _end_offsets(bootstrap, TOPIC)
    return stable < high


@pytest.mark.slow
def test_connect_worker_killed_inside_a_transaction_loses_and_duplicates_nothing(
    pipeline: Pipeline,
) -> None:
    """SIGKILL the only worker while its source task's transaction holds records, restart
    it, append more: the killed transaction is aborted, and the topic (read_committed)
    holds every line once in order; the sink file holds every line in order, duplicates of
    a range the sink task received again aside."""
    first = _lines(0, 1000)
    _append(pipeline.source, first)
    pipeline.start_worker()
    pipeline.create_connectors()
    pipeline.wait_sink_has(first)

    appended = _kill_inside_a_transaction(pipeline, len(first))
    pipeline.start_worker()
    pipeline.wait_running()
    last = _lines(len(first) + appended, 1000)
    _append(pipeline.source, last)
    expected = first + _lines(len(first), appended) + last
    sink = pipeline.wait_sink_has(expected)

    topic = _read_committed(pipeline.bootstrap, TOPIC)
    assert len(topic) == len(expected), f"{len(topic) - len(expected)} duplicates in the topic"
    assert topic == expected
    # The killed task's records are in the log, aborted: a read_uncommitted reader sees them.
    aborted = len(_read_committed(pipeline.bootstrap, TOPIC, "read_uncommitted")) - len(topic)
    assert aborted > 0
    assert list(dict.fromkeys(sink)) == expected
    assert _cleanup_policies(pipeline.bootstrap, pipeline.internal_topics()) == dict.fromkeys(
        pipeline.internal_topics(), "compact"
    )
