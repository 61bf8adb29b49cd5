"""Kafka Connect 4.4.0 in distributed mode with exactly-once source support
(`exactly.once.source.support=enabled`, KIP-618) on contextplane: a FileStreamSource
connector (`exactly.once.support=required`, the default transaction boundary: one
transaction per poll) copies numbered lines from a file into a topic, a FileStreamSink
connector copies the topic into another file.

What exactly-once means here, precisely. The source side is exactly-once: each source
task's records and its source offsets are written in one transaction, so after a worker is
killed with SIGKILL the restarted task resumes at the last committed offset, its open
transaction is aborted (the new task's producer fences the old one through the
transactional id `<group.id>-<connector>-<task>`, after the leader fenced zombies with
FenceProducers), and a read_committed reader of the topic sees every line once, in order.
The sink side is at-least-once, on Apache Kafka as here: FileStreamSinkTask writes each
record on put() and flushes only when the worker commits the sink consumer's offsets
(`offset.flush.interval.ms`), so a SIGKILL after a flush but before the offset commit
makes the restarted task receive those records again and append them a second time. So
the crash test checks exactly-once where Connect promises it (the topic, read_committed)
and, for the sink file, that it holds every source line in source order once duplicates
of a re-delivered range are dropped. The sink reads read_committed
(`consumer.override.isolation.level`): the killed task's aborted records never reach it.

The three internal topics are created by Connect itself as compacted topics, and it
checks their cleanup.policy with DescribeConfigs before it starts (a topic that is not
compact-only stops the worker); the tests check the policy too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
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


def _read_committed(bootstrap: str, topic: str) -> list[str]:
    """Every committed record of the topic's one partition, in offset order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"connect-eos-reader-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
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
                values.append(message.value().decode())
            position = consumer.position([TopicPartition(topic, 0)])[0].offset
            return position >= end

        # The high watermark bounds the read: past the last stable offset, read_committed
        # skips aborted records and control markers, so the position reaches it.
        wait_until(at_end, 60, f"reading {topic} to offset {end}")
        return values
    finally:
        consumer.close()


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
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(
        30
    )


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
                lambda name=name: worker.running(name),  # type: ignore[misc]
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


@pytest.mark.slow
def test_connect_worker_killed_mid_run_loses_and_duplicates_nothing(pipeline: Pipeline) -> None:
    """SIGKILL the only worker while the source task is between transactions over a large
    batch of lines, restart it, append more: the topic (read_committed) holds every line
    once in order; the sink file holds every line in order, re-delivered ranges aside."""
    first = _lines(0, 1000)
    _append(pipeline.source, first)
    worker = pipeline.start_worker()
    pipeline.create_connectors()
    pipeline.wait_sink_has(first)

    # 20 polls' worth of lines (FileStreamSource reads batch.size=2000 lines a poll, one
    # transaction each): the kill lands while transactions of this batch are under way.
    burst = _lines(len(first), 40_000)
    _append(pipeline.source, burst)
    wait_until(
        lambda: len(_read_lines(pipeline.sink)) > len(first),
        PROGRESS_S,
        f"the sink receiving lines of the burst\n{worker.log_tail()}",
        poll_s=0.05,
    )
    worker.kill()
    copied_before_kill = len(_read_lines(pipeline.sink))

    pipeline.start_worker()
    pipeline.wait_running()
    last = _lines(len(first) + len(burst), 1000)
    _append(pipeline.source, last)
    expected = first + burst + last
    sink = pipeline.wait_sink_has(expected)

    assert copied_before_kill < len(expected), "the kill came after everything was copied"
    topic = _read_committed(pipeline.bootstrap, TOPIC)
    assert len(topic) == len(expected), f"{len(topic) - len(expected)} duplicates in the topic"
    assert topic == expected
    assert list(dict.fromkeys(sink)) == expected
    assert _cleanup_policies(pipeline.bootstrap, pipeline.internal_topics()) == dict.fromkeys(
        pipeline.internal_topics(), "compact"
    )
