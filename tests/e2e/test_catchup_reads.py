"""A cold catch-up over many partitions reads each object in a few GETs, not one per range.

64 MiB go round-robin to 200 partitions, so every 8 MiB upload object holds a ~40 KiB
range of each partition. After a restart (nothing in the log cache) a confluent-kafka
consumer reads everything back from offset 0 through a request-counting proxy in front of
SeaweedFS: every record arrives once and in order, and the GETs stay within three times
the bytes read over `object.read.span.bytes` (a read per partition would make one GET per
range: ~200 per object, ~1,600 in all; 9-18 GETs were seen, the most on a loaded machine,
where read-ahead spans evicted before they are read are read again).

With objects cut every 250 ms (the default), 1,000 partitions hold a small slice each of
every object; a cold read-back then costs about one GET per object (at most 1.5 on
average): a span that reads half of an object reads all of it for the other partitions.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import BrokerProcess
from tests.support.s3proxy import S3CountingProxy
from tests.support.seaweedfs import REGION, SeaweedFS, seaweedfs_fixture  # noqa: F401 - fixture

PARTITIONS = 200
RECORD_BYTES = 1_024
RECORDS = 64 * 1024  # 64 MiB of values
SPAN_BYTES = 8 * 1024 * 1024


def _value(i: int) -> bytes:
    return f"{i:08d}|".encode().ljust(RECORD_BYTES, b"x")


def _produce(
    bootstrap: str, topic: str, partitions: int = PARTITIONS, records: int = RECORDS
) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 20,
            "batch.size": 256 * 1024,
        }
    )
    errors: list[str] = []

    def on_delivery(err, _message) -> None:  # noqa: ANN001 - confluent-kafka callback
        if err is not None:
            errors.append(str(err))

    for i in range(records):
        while True:
            try:
                producer.produce(
                    topic, value=_value(i), partition=i % partitions, on_delivery=on_delivery
                )
                break
            except BufferError:  # the client's queue is full: let it send
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0
    assert not errors, errors[:5]


# The GETs counted are the reads': object compaction, which starts on objects older than a
# minute, would add its own GETs when producing takes that long on a loaded machine.
NO_COMPACTION = {"object.compaction.enable": "false"}


def _read_back(
    bootstrap: str,
    topic: str,
    partitions: int = PARTITIONS,
    records: int = RECORDS,
    timeout_s: float = 180,
) -> dict[int, list[bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"catchup-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
        want = records // partitions
        extra = records % partitions
        ends = {p: want + (1 if p < extra else 0) for p in range(partitions)}
        deadline = time.monotonic() + timeout_s
        received = 0
        while received < records:
            assert time.monotonic() < deadline, f"timed out after {received} records"
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                partition = message.partition()
                assert message.offset() == len(got[partition]), "every record once, in order"
                got[partition].append(message.value())
                received += 1
        assert {p: len(v) for p, v in got.items()} == ends
        return got
    finally:
        consumer.close()


def test_a_cold_catchup_reads_spans_not_ranges(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    proxy = S3CountingProxy(seaweedfs.endpoint, tmp_path / "s3proxy.log")
    prefix = f"catchup-{uuid.uuid4().hex[:8]}"
    broker = BrokerProcess(
        tmp_path / "broker",
        object_store=f"s3://{seaweedfs.bucket}/{prefix}?endpoint={proxy.endpoint}&region={REGION}",
        settings={
            # Objects are cut by size (8 MiB), not by time, whatever the producer's pace.
            "upload.interval.ms": "60000",
            # One GET per span: the bound below is on spans.
            "object.read.part.bytes": str(SPAN_BYTES),
            "object.read.span.bytes": str(SPAN_BYTES),
            **NO_COMPACTION,
        },
    )
    try:
        broker.start()
        topic = "catchup"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(topic, PARTITIONS)])[topic].result(30)
        _produce(broker.bootstrap, topic)
        broker.stop()  # a clean stop uploads the rest: the restarted broker reads objects
        broker.start()

        before = proxy.counts()
        got = _read_back(broker.bootstrap, topic)
        after = proxy.counts()

        for partition, values in got.items():
            assert values == [_value(i) for i in range(partition, RECORDS, PARTITIONS)]
        gets = sum(after.get(k, 0) - before.get(k, 0) for k in ("GET", "GET_RANGE"))
        read_bytes = RECORDS * RECORD_BYTES
        print(f"catch-up: {gets} GETs for {read_bytes} bytes")
        assert 0 < gets <= 3 * read_bytes / SPAN_BYTES, f"{gets} GETs for {read_bytes} bytes"
    finally:
        broker.stop()
        proxy.stop()


def test_a_cold_read_of_many_small_objects_costs_about_one_get_per_object(
    seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    partitions, records = 1_000, 32 * 1024  # 32 MiB, ~32 KiB per partition
    proxy = S3CountingProxy(seaweedfs.endpoint, tmp_path / "s3proxy.log")
    prefix = f"catchup-{uuid.uuid4().hex[:8]}"
    broker = BrokerProcess(
        tmp_path / "broker",
        object_store=f"s3://{seaweedfs.bucket}/{prefix}?endpoint={proxy.endpoint}&region={REGION}",
        settings=NO_COMPACTION,
    )
    try:
        broker.start()
        topic = "small-objects"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(topic, partitions)])[topic].result(30)
        _produce(broker.bootstrap, topic, partitions, records)
        broker.stop()  # a clean stop uploads the rest: the restarted broker reads objects
        objects = proxy.counts().get("PUT", 0)
        broker.start()

        before = proxy.counts()
        got = _read_back(broker.bootstrap, topic, partitions, records)
        after = proxy.counts()

        for partition, values in got.items():
            assert values == [_value(i) for i in range(partition, records, partitions)]
        gets = sum(after.get(k, 0) - before.get(k, 0) for k in ("GET", "GET_RANGE"))
        print(f"cold read of {partitions} partitions: {gets} GETs for {objects} objects")
        assert objects > 1
        assert 0 < gets <= 1.5 * objects, f"{gets} GETs for {objects} objects"
    finally:
        broker.stop()
        proxy.stop()
