"""Crash safety: SIGKILL the broker in the middle of a 100,000-message acks=all produce.

Four idempotent confluent-kafka producers (each its own client, producer id and
connection) write distinct keys `p{n}-{i}` to a six-partition topic at a steady rate and
record the partition and offset of every message whose delivery report succeeded. Once
40% are acknowledged the broker is killed with SIGKILL, then restarted on the same data
directory. Reading every partition from offset 0 must show:

* every acknowledged message exactly once, at exactly its acknowledged partition/offset,
  with its own value;
* offsets contiguous from 0 to the high watermark in every partition;
* no key twice (an unacknowledged message may be present or absent, never duplicated).

Scenarios: the object store is file:// or s3:// (SeaweedFS); either no upload happens
before the kill (recovery is the WAL alone) or uploads run with small bounds and the
first WAL segment has already been trimmed (old offsets exist only in objects, the tail
only in the WAL); the producers either give up while the broker is down or ride through a
quick restart (their in-flight batches are retried against the recovered broker and
must be deduplicated). After recovery, fresh producers keep writing and the checks hold
again for everything.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import BrokerProcess
from tests.support.seaweedfs import SeaweedFS, seaweedfs_fixture  # noqa: F401 - fixture
from tests.support.wait import wait_until

TOPIC = "crash"
PARTITIONS = 6
PRODUCERS = 4
TOTAL = 100_000
KILL_FRACTION = 0.4
FIRST_WAL_SEGMENT = "00000000000000000000.wal"  # the WAL rolls at 64 MiB
# librdkafka's own log (connection refused while the broker is down, ...) goes through
# logging, so pytest shows it with a failure instead of writing it to the terminal.
RDKAFKA_LOG = logging.getLogger("rdkafka")


@dataclass(frozen=True)
class Scenario:
    store: str  # "file" or "s3"
    uploads: bool  # small upload bounds; the kill waits for objects to exist
    resume: bool  # restart at once while the producers keep going
    value_bytes: int
    seconds: float  # how long the full produce would take at the paced rate

    @property
    def trimmed(self) -> bool:
        """Whether the kill waits for the first 64 MiB WAL segment to be uploaded and deleted."""
        return self.uploads and self.value_bytes * TOTAL * KILL_FRACTION > 80 * 2**20

    @property
    def id(self) -> str:
        return "-".join(
            [
                self.store,
                "objects+wal" if self.uploads else "wal-only",
                "ride-through" if self.resume else "give-up",
            ]
        )


SCENARIOS = [
    Scenario("file", uploads=False, resume=False, value_bytes=100, seconds=5),
    Scenario("s3", uploads=False, resume=False, value_bytes=100, seconds=5),
    # 2,000-byte values: 40% of the messages are ~80 MB, past the first 64 MiB WAL segment.
    Scenario("file", uploads=True, resume=False, value_bytes=2000, seconds=6),
    Scenario("s3", uploads=True, resume=False, value_bytes=2000, seconds=8),
    Scenario("file", uploads=True, resume=True, value_bytes=300, seconds=6),
    Scenario("s3", uploads=True, resume=True, value_bytes=300, seconds=6),
]
# CI runs one scenario per recovery path (the WAL alone; objects and a trimmed WAL with the
# producers giving up; the same riding through a quick restart), on file:// for the first
# and SeaweedFS for the others; the full run (`-m long`) runs each on the other store too.
CI_SCENARIOS = {"file-wal-only-give-up", "s3-objects+wal-give-up", "s3-objects+wal-ride-through"}


def expected_value(key: bytes, size: int) -> bytes:
    unit = key + b"|"
    return (unit * (size // len(unit) + 1))[:size]


@dataclass(eq=False)
class PacedProducer:
    """One idempotent producer writing `count` keys `{prefix}{n}-{i}` at `rate` msgs/s."""

    bootstrap: str
    prefix: str
    count: int
    rate: float  # 0: as fast as possible
    value_bytes: int
    message_timeout_ms: int
    stop_producing: threading.Event = field(default_factory=threading.Event)
    acked: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    failed: dict[bytes, str] = field(default_factory=dict)
    produced: int = 0
    unflushed: int = -1
    error: BaseException | None = None
    # Set once librdkafka reports its connection to the broker gone (a transport error).
    lost_broker: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return f"producer {self.prefix}"

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self.thread.start()

    def is_alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _on_delivery(self, err: KafkaError | None, message: object) -> None:
        key = message.key()  # type: ignore[attr-defined]
        if err is None:
            self.acked[key] = (message.partition(), message.offset())  # type: ignore[attr-defined]
        else:
            self.failed[key] = err.str()

    def _on_error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            self.lost_broker.set()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            self.error = exc

    def _run(self) -> None:
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "client.id": f"crash-{self.prefix}",
                "logger": RDKAFKA_LOG,
                "error_cb": self._on_error,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "batch.size": 65536,
                "message.timeout.ms": self.message_timeout_ms,
                "request.timeout.ms": min(5000, self.message_timeout_ms),
                "retry.backoff.ms": 100,
                "retry.backoff.max.ms": 500,
                "reconnect.backoff.ms": 50,
                "reconnect.backoff.max.ms": 500,
            }
        )
        start = time.monotonic()
        for i in range(self.count):
            if self.stop_producing.is_set():
                break
            if self.rate and i % 50 == 0:
                # poll() returns early whenever it serves a report: loop to the due time.
                due = start + i / self.rate
                while (delay := due - time.monotonic()) > 0:
                    producer.poll(delay)
                producer.poll(0)
            key = f"{self.prefix}-{i}".encode()
            value = expected_value(key, self.value_bytes)
            while True:
                try:
                    producer.produce(TOPIC, key=key, value=value, on_delivery=self._on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            self.produced += 1
        self.unflushed = producer.flush(self.message_timeout_ms / 1000 + 30)


def run_producers(producers: list[PacedProducer], timeout_s: float) -> None:
    for producer in producers:
        assert producer.thread is not None
        producer.thread.join(timeout_s)
        assert not producer.is_alive(), f"{producer.name} did not finish"
        if producer.error is not None:
            raise producer.error
        # Every message got its delivery report: acknowledged or failed, never unknown.
        assert producer.unflushed == 0, f"{producer.name}: {producer.unflushed} unreported"
        assert len(producer.acked) + len(producer.failed) == producer.produced


def verify_log(
    bootstrap: str,
    acked: dict[bytes, tuple[int, int]],
    value_bytes: dict[bytes, int],
    timeout_s: float = 90,
) -> dict[str, int]:
    """Read every partition from 0 and check the log against the acknowledgements."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"crash-verifier-{uuid.uuid4()}",
            "logger": RDKAFKA_LOG,
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
            "fetch.max.bytes": 8 * 1024 * 1024,
        }
    )
    try:
        watermarks = {
            p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)
            for p in range(PARTITIONS)
        }
        for partition, (low, _) in watermarks.items():
            assert low == 0, f"partition {partition} starts at {low}"
        ends = {p: high for p, (_, high) in watermarks.items()}
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        logs: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
        next_offset = dict.fromkeys(range(PARTITIONS), 0)
        deadline = time.monotonic() + timeout_s
        while any(next_offset[p] < ends[p] for p in logs):
            progress = {p: (next_offset[p], ends[p]) for p in logs}
            assert time.monotonic() < deadline, f"read timed out at (next, end) {progress}"
            for message in consumer.consume(2000, 0.5):
                assert message.error() is None, message.error()
                partition, offset, key = message.partition(), message.offset(), message.key()
                # Contiguity: each record is exactly the next offset of its partition.
                assert offset == next_offset[partition], (
                    f"partition {partition}: offset {offset} after {next_offset[partition] - 1}"
                )
                next_offset[partition] = offset + 1
                assert key in value_bytes, f"unknown key {key!r} at {partition}/{offset}"
                assert message.value() == expected_value(key, value_bytes[key]), (
                    f"wrong value for {key!r} at {partition}/{offset}"
                )
                logs[partition].append((offset, key))
    finally:
        consumer.close()

    located: dict[bytes, tuple[int, int]] = {}
    for partition, records in logs.items():
        assert [o for o, _ in records] == list(range(ends[partition])), partition
        for offset, key in records:
            located.setdefault(key, (partition, offset))
    counts = Counter(key for records in logs.values() for _, key in records)
    duplicated = {k: n for k, n in counts.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} keys duplicated, e.g. {list(duplicated)[:5]}"
    missing = [k for k in acked if k not in located]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"
    moved = {k: (acked[k], located[k]) for k in acked if located[k] != acked[k]}
    assert not moved, f"{len(moved)} acked at another position, e.g. {list(moved.items())[:5]}"
    return {"records": len(located), "unacked_present": len(located) - len(acked)}


def _objects(broker: BrokerProcess, seaweedfs: SeaweedFS | None, prefix: str) -> int:
    if seaweedfs is not None:
        return len(seaweedfs.list_keys(prefix))
    return len(list((broker.data_dir / "objects").rglob("*.obj")))


@pytest.mark.slow
@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(s, id=s.id, marks=() if s.id in CI_SCENARIOS else pytest.mark.long)
        for s in SCENARIOS
    ],
)
def test_sigkill_during_produce_loses_and_duplicates_nothing(
    scenario: Scenario, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    seaweedfs: SeaweedFS | None = None
    prefix = f"crash-{scenario.id}-{uuid.uuid4().hex[:8]}"
    if scenario.store == "s3":
        seaweedfs = request.getfixturevalue("seaweedfs")
    settings = {"group.initial.rebalance.delay.ms": "0"}
    if scenario.uploads:
        settings |= {"upload.interval.ms": "100", "upload.bytes": "65536"}
    else:
        settings |= {"upload.interval.ms": "3600000", "upload.bytes": str(2**40)}
    broker = BrokerProcess(
        tmp_path / "broker",
        settings=settings,
        object_store=seaweedfs.url_for(prefix) if seaweedfs else None,
    ).start()
    producers: list[PacedProducer] = []
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap, "logger": RDKAFKA_LOG})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS)])[TOPIC].result(15)
        del admin

        per_producer = TOTAL // PRODUCERS
        producers = [
            PacedProducer(
                broker.bootstrap,
                prefix=f"p{n}",
                count=per_producer,
                rate=per_producer / scenario.seconds,
                value_bytes=scenario.value_bytes,
                message_timeout_ms=30_000 if scenario.resume else 6_000,
            )
            for n in range(PRODUCERS)
        ]
        value_bytes = {
            f"p{n}-{i}".encode(): scenario.value_bytes
            for n in range(PRODUCERS)
            for i in range(per_producer)
        }
        started = time.monotonic()
        for producer in producers:
            producer.start()

        # Kill once 40% are acknowledged (and, with uploads, once the first WAL segment
        # is gone, so the oldest acknowledged data survives only in objects).
        wal_dir = broker.data_dir / "wal"

        def ready_to_kill() -> bool:
            assert all(p.is_alive() for p in producers), "producers finished before the kill"
            if sum(len(p.acked) for p in producers) < TOTAL * KILL_FRACTION:
                return False
            if scenario.trimmed and (wal_dir / FIRST_WAL_SEGMENT).exists():
                return False
            return not scenario.uploads or _objects(broker, seaweedfs, prefix) > 0

        wait_until(ready_to_kill, 60, "the kill condition", poll_s=0.002)
        for producer in producers:
            producer.lost_broker.clear()  # only a loss from the kill counts
        broker.kill9()
        killed_at = time.monotonic()
        acked_at_kill = sum(len(p.acked) for p in producers)
        produced_at_kill = sum(p.produced for p in producers)
        objects_at_kill = _objects(broker, seaweedfs, prefix)
        if scenario.uploads:
            assert objects_at_kill > 0
        if scenario.trimmed:
            assert not (wal_dir / FIRST_WAL_SEGMENT).exists()
        if not scenario.uploads:
            assert objects_at_kill == 0

        if scenario.resume:
            # The restart comes once every producer has seen the broker gone (it retries).
            wait_until(
                lambda: all(p.lost_broker.is_set() for p in producers),
                30,
                "every producer sees the broker gone",
            )
        else:
            for producer in producers:
                producer.stop_producing.set()
            run_producers(producers, timeout_s=90)  # the rest time out (message.timeout.ms)

        restart_began = time.monotonic()
        broker.start(timeout_s=60)
        recovery_s = time.monotonic() - restart_began
        replayed = re.findall(r"replayed (\d+) WAL entries", broker.log_tail(400))

        if scenario.resume:
            run_producers(producers, timeout_s=120)
        acked_map = {k: v for p in producers for k, v in p.acked.items()}
        failed = sum(len(p.failed) for p in producers)
        read_began = time.monotonic()
        first = verify_log(broker.bootstrap, acked_map, value_bytes)
        read_s = time.monotonic() - read_began

        # Fresh producers keep writing to the recovered broker; everything still holds.
        more = [
            PacedProducer(
                broker.bootstrap,
                prefix=f"q{n}",
                count=5_000,
                rate=0,
                value_bytes=scenario.value_bytes,
                message_timeout_ms=30_000,
            )
            for n in range(PRODUCERS)
        ]
        for producer in more:
            producer.start()
        run_producers(more, timeout_s=120)
        assert all(not p.failed for p in more), [list(p.failed.items())[:3] for p in more]
        acked_map.update({k: v for p in more for k, v in p.acked.items()})
        value_bytes.update(
            dict.fromkeys(acked_map.keys() - value_bytes.keys(), scenario.value_bytes)
        )
        second = verify_log(broker.bootstrap, acked_map, value_bytes)
        assert second["records"] == first["records"] + 5_000 * PRODUCERS

        print(
            f"\n[{scenario.id}] produced {produced_at_kill} / acked {acked_at_kill} at kill "
            f"{killed_at - started:.1f}s in, objects at kill {objects_at_kill}; "
            f"after: acked {len(acked_map) - 5_000 * PRODUCERS}, failed {failed}, "
            f"unacked but present {first['unacked_present']}; restart to listening "
            f"{recovery_s:.2f}s (WAL entries replayed: {replayed[-1] if replayed else 0}); "
            f"full read {first['records']} records in {read_s:.1f}s"
        )
    finally:
        for producer in producers:
            producer.stop_producing.set()
        broker.stop()
