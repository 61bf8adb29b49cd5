"""kill -9 of the broker while object compaction rewrites uploads: nothing acknowledged is
lost, duplicated or moved, and no object leaks.

A real broker (file:// objects) with 256 KiB uploads and compaction every 200 ms of
uploads of any age; an idempotent acks=all producer writes numbered records to 50
partitions. Five times the test waits until the log shows a compaction pass planned, then
until a random number (0-2) of its tasks have finished, kills the broker with SIGKILL
(so the kill falls before a PUT, between a PUT and its swap, or after a swap) and restarts
it. Then every partition is read from the start: every acknowledged record once, in
order, at its acknowledged offset. Last, with the orphan sweep's minimum age 0 and the
deletion grace period passed, the store holds exactly the objects the metadata
references. On file:// in the quick suite; on SeaweedFS's S3 API under `slow`.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import BrokerProcess
from tests.support.seaweedfs import SeaweedFS, seaweedfs_fixture  # noqa: F401 - fixture
from tests.support.wait import wait_until

TOPIC = "object-compaction-crash"
PARTITIONS = 50
ROUNDS = 5
PLANNED = "object compaction: "
TASK_DONE = " objects into 1 "
MESSAGE_TIMEOUT_MS = 60_000
SETTINGS = {
    "upload.bytes": str(256 * 1024),
    "upload.interval.ms": "50",
    "object.compaction.interval.ms": "200",
    "object.compaction.min.age.ms": "0",
    "log.segment.delete.delay.ms": "200",
    "object.store.orphan.min.age.ms": "0",
}


class NumberedProducer(threading.Thread):
    """Numbered records round-robin over the partitions; keeps every acknowledged
    (partition, offset) -> value."""

    def __init__(self, bootstrap: str, start_at: int) -> None:
        super().__init__(daemon=True)
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                # Longer than any restart: librdkafka re-sequences a retried batch under a
                # bumped epoch once a queued message of its partition timed out, so a batch
                # the killed broker had written but not answered would be written again
                # (INTRODUCTION.md, "Message timeout considerations"; Kafka alike).
                "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            }
        )
        self.sequence = start_at
        self.acked: dict[tuple[int, int], bytes] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        filler = b"x" * 200
        while not self.stopping.is_set():
            partition = self.sequence % PARTITIONS
            value = b"%010d-" % self.sequence + filler
            self.sequence += 1

            def on_delivery(error: object, message: object, v: bytes = value) -> None:
                if error is None:
                    key = (message.partition(), message.offset())  # type: ignore[attr-defined]
                    self.acked[key] = v

            try:
                self.producer.produce(
                    TOPIC, value=value, partition=partition, on_delivery=on_delivery
                )
            except BufferError:
                self.producer.poll(0.05)
            self.producer.poll(0)
            if self.sequence % 64 == 0:
                time.sleep(0.001)
        # Every message is answered (or timed out) before the next kill: none is left
        # to time out across it, or to arrive out of order after the next round's.
        self.producer.flush(MESSAGE_TIMEOUT_MS / 1000 + 5)


def log_count(broker: BrokerProcess, text: str) -> int:
    assert broker.log_path is not None
    return broker.log_path.read_text(errors="replace").count(text)


def planned_count(broker: BrokerProcess) -> int:
    assert broker.log_path is not None
    lines = broker.log_path.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if PLANNED in line and "tasks planned" in line)


def read_all(bootstrap: str) -> dict[int, list[tuple[int, bytes]]]:
    """Every partition from offset 0 to its high watermark, with one consumer."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "check", "enable.auto.commit": False}
    )
    try:
        ends = {}
        for partition in range(PARTITIONS):
            low, ends[partition] = consumer.get_watermark_offsets(
                TopicPartition(TOPIC, partition), timeout=10
            )
            assert low == 0
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}

        def done() -> bool:
            return all(not end or (got[p] and got[p][-1][0] >= end - 1) for p, end in ends.items())

        deadline = time.monotonic() + 60
        while not done():
            assert time.monotonic() < deadline, "not every partition read within 60 s"
            for message in consumer.consume(5000, 0.2):
                assert message.error() is None, message.error()
                got[message.partition()].append((message.offset(), message.value()))
        return got
    finally:
        consumer.close()


def file_keys(data_dir: Path) -> Callable[[], set[str]]:
    root = data_dir / "objects"
    return lambda: {path.relative_to(root).as_posix() for path in root.rglob("*.obj")}


def metadata_keys(data_dir: Path) -> tuple[set[str], set[str]]:
    """(referenced objects, objects queued for deletion)."""
    db = sqlite3.connect(f"file:{data_dir / 'metadata.db'}?mode=ro", uri=True, timeout=10)
    try:
        referenced = {r[0] for r in db.execute("SELECT key FROM objects")}
        queued = {r[0] for r in db.execute("SELECT key FROM objects_to_delete")}
        return referenced, queued
    finally:
        db.close()


def test_kill_9_while_compacting_objects_loses_duplicates_and_leaks_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "broker"
    kill_while_compacting(BrokerProcess(data_dir, settings=SETTINGS), file_keys(data_dir))


@pytest.mark.slow
def test_kill_9_while_compacting_objects_on_s3(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    """The same on SeaweedFS's S3 API (the quick suite runs it on file://)."""
    prefix = f"compaction-crash-{tmp_path.name}"
    broker = BrokerProcess(
        tmp_path / "broker", settings=SETTINGS, object_store=seaweedfs.url_for(prefix)
    )
    kill_while_compacting(broker, lambda: set(seaweedfs.list_keys(prefix)))


def kill_while_compacting(broker: BrokerProcess, stored_keys: Callable[[], set[str]]) -> None:
    rng = random.Random()
    data_dir = broker.data_dir
    broker.start()
    acked: dict[tuple[int, int], bytes] = {}
    sequence = 0
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS)])[TOPIC].result(15)
        for _ in range(ROUNDS):
            producer = NumberedProducer(broker.bootstrap, sequence)
            producer.start()
            planned = planned_count(broker)
            wait_until(lambda p=planned: planned_count(broker) > p, 60, "a compaction pass")
            done = log_count(broker, TASK_DONE)
            target = done + rng.randint(0, 2)
            wait_until(lambda t=target: log_count(broker, TASK_DONE) >= t, 60, "compaction tasks")
            broker.kill9()
            producer.stopping.set()
            broker.start()  # the producer's last flush may be answered by it
            producer.join(MESSAGE_TIMEOUT_MS / 1000 + 30)
            assert not producer.is_alive(), "the producer did not finish its flush"
            acked.update(producer.acked)
            sequence = producer.sequence
        assert log_count(broker, TASK_DONE) > 0, "no compaction task ever finished"
        for partition, records in read_all(broker.bootstrap).items():
            offsets = [offset for offset, _ in records]
            assert offsets == sorted(set(offsets)), f"partition {partition}: offsets repeat"
            values = [value for _, value in records]
            assert len(values) == len(set(values)), f"partition {partition}: a record twice"
            numbers = [int(value[:10]) for value in values]
            assert numbers == sorted(numbers), f"partition {partition}: out of order"
            read = dict(records)
            for (p, offset), value in acked.items():
                if p == partition:
                    assert read.get(offset) == value, f"{partition}@{offset} lost or moved"
        assert len(acked) > 1_000

        # No leak: the grace period passes, the deleter and the sweep (at start) run.
        broker.stop()
        broker.settings = {**SETTINGS, "object.compaction.enable": "false"}
        broker.start()

        def store_matches_metadata() -> bool:
            referenced, queued = metadata_keys(data_dir)
            return not queued and stored_keys() == referenced

        wait_until(store_matches_metadata, 30, "the store holds exactly the referenced objects")
    finally:
        broker.stop()
    referenced, queued = metadata_keys(data_dir)
    assert not queued and stored_keys() == referenced
    levels = sqlite3.connect(data_dir / "metadata.db").execute(
        "SELECT COUNT(*) FROM objects WHERE level = 1"
    )
    assert levels.fetchone()[0] > 0, "nothing compacted is referenced"
