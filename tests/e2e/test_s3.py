"""The broker on a real S3 API (SeaweedFS): data goes to objects and is read back from them.

With a tiny log cache the running broker must serve old offsets from objects; after a
clean stop every batch is in an object, so the restarted broker serves everything from
the bucket even with its write-ahead log moved out of the way.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import obstore
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.inprocess import InProcessBroker
from tests.support.seaweedfs import SeaweedFS, seaweedfs_fixture  # noqa: F401 - fixture
from tests.support.wait import wait_until

PARTITIONS = 4
ROUNDS = 8
PER_ROUND = 500  # 4,000 messages in all


def _value(i: int) -> bytes:
    return f"value-{i:05d}|".encode() + bytes((i * 7 + j) % 251 for j in range(200 + i % 300))


def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions)])[name].result(15)


def _consume(
    bootstrap: str, topic: str, starts: dict[int, int], timeout_s: float = 60
) -> dict[int, list[tuple[int, bytes | None, bytes | None]]]:
    """(offset, key, value) per partition, from each start offset up to the high watermark."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"s3-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",  # never silently skip to the end
        }
    )
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in starts
        }
        consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
        got: dict[int, list[tuple[int, bytes | None, bytes | None]]] = {p: [] for p in starts}

        def done() -> bool:
            return all((got[p][-1][0] + 1 if got[p] else starts[p]) >= ends[p] for p in starts)

        deadline = time.monotonic() + timeout_s
        while not done():
            counts = {p: len(v) for p, v in got.items()}
            assert time.monotonic() < deadline, f"timed out; ends {ends}, got {counts}"
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                got[message.partition()].append((message.offset(), message.key(), message.value()))
        return got
    finally:
        consumer.close()


def _object_keys(server: SeaweedFS, prefix: str, under: str = "objects/") -> list[tuple[str, int]]:
    """The keys and sizes under `under` in the broker's prefix (data objects by default;
    the store also holds the cluster's marker)."""
    result = []
    for chunk in obstore.list(server.store(prefix), under):
        result.extend((item["path"], item["size"]) for item in chunk)
    return sorted(result)


def test_objects_on_s3_serve_reads_before_and_after_restart(
    seaweedfs: SeaweedFS,
    tmp_path: Path,
) -> None:
    prefix = f"s3-roundtrip-{uuid.uuid4().hex[:8]}"
    broker = InProcessBroker(
        tmp_path / "broker",
        object_store=seaweedfs.url_for(prefix),
        settings={
            "upload.interval.ms": "100",
            "upload.bytes": "65536",
            # Uploaded batches leave the log cache at once: old offsets come from objects.
            "log.cache.bytes": "65536",
        },
    ).start()
    try:
        topic = "s3-roundtrip"
        _create_topic(broker.bootstrap, topic, PARTITIONS)
        producer = Producer(
            {
                "bootstrap.servers": broker.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "batch.size": 16384,
            }
        )
        delivered: dict[bytes, tuple[int, int]] = {}
        errors: list[str] = []

        def on_delivery(err, message) -> None:  # noqa: ANN001 - confluent-kafka callback
            if err is not None:
                errors.append(str(err))
            else:
                delivered[message.key()] = (message.partition(), message.offset())

        total = ROUNDS * PER_ROUND
        for round_ in range(ROUNDS):
            uploaded = len(_object_keys(seaweedfs, prefix))
            for i in range(round_ * PER_ROUND, (round_ + 1) * PER_ROUND):
                producer.produce(
                    topic,
                    key=f"key-{i:05d}".encode(),
                    value=_value(i),
                    partition=i % PARTITIONS,
                    on_delivery=on_delivery,
                )
            assert producer.flush(30) == 0
            # Each round in objects of its own: the reads below cross several objects.
            wait_until(
                lambda n=uploaded: len(_object_keys(seaweedfs, prefix)) > n,
                30,
                f"round {round_} is uploaded",
            )
        assert not errors, errors[:5]
        assert len(delivered) == total

        # Expected log per partition, in the acknowledged offsets.
        expected: dict[int, dict[int, tuple[bytes, bytes]]] = {p: {} for p in range(PARTITIONS)}
        for i in range(total):
            key = f"key-{i:05d}".encode()
            partition, offset = delivered[key]
            assert partition == i % PARTITIONS
            expected[partition][offset] = (key, _value(i))
        for partition, log in expected.items():
            assert sorted(log) == list(range(total // PARTITIONS)), partition

        # Every byte produced must reach the bucket (objects carry batches plus an index).
        payload_bytes = sum(len(k) + len(v) for log in expected.values() for k, v in log.values())

        def covering() -> list[tuple[str, int]] | None:
            objects = _object_keys(seaweedfs, prefix)
            return objects if sum(size for _, size in objects) >= payload_bytes else None

        objects = wait_until(covering, 30, "objects cover every byte produced")
        assert len(objects) >= 2, objects
        assert all(key.startswith("objects/") and key.endswith(".obj") for key, _ in objects)
        ((marker, _),) = _object_keys(seaweedfs, prefix, "cluster/")
        assert marker.startswith("cluster/")  # which cluster the store belongs to

        def check(starts: dict[int, int]) -> None:
            got = _consume(broker.bootstrap, topic, starts)
            for partition, records in got.items():
                want = [
                    (offset, *expected[partition][offset])
                    for offset in range(starts[partition], total // PARTITIONS)
                ]
                assert len(records) == len(want), partition
                assert records == want, partition

        # 1. The running broker: offset 0 is long evicted from the log cache.
        check(dict.fromkeys(range(PARTITIONS), 0))

        # 2. Clean stop: the final upload leaves nothing the WAL alone holds, so the
        #    restarted broker reads everything from the bucket even without its WAL.
        broker.stop()
        after_stop = _object_keys(seaweedfs, prefix)
        wal = broker.data_dir / "wal"
        wal.rename(broker.data_dir.parent / "wal-moved-aside")
        broker.start()
        check(dict.fromkeys(range(PARTITIONS), 0))
        # A reader starting mid-log (ranged GET inside an object) sees the same records.
        middle = total // PARTITIONS // 2 + 3
        starts = dict.fromkeys(range(PARTITIONS), 0)
        starts[0] = middle
        check(starts)
        assert _object_keys(seaweedfs, prefix) == after_stop  # reads wrote nothing

        # 3. Producing after the restart continues the offsets.
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        producer.produce(topic, key=b"after", value=b"restart", partition=1)
        assert producer.flush(15) == 0
        got = _consume(broker.bootstrap, topic, {1: total // PARTITIONS})
        assert got[1] == [(total // PARTITIONS, b"after", b"restart")]
    finally:
        broker.stop()
