"""Compacted topics end to end: confluent-kafka produces keyed records and tombstones to
a `cleanup.policy=compact` topic, the log cleaner rewrites the closed segments, and a
fresh consumer reads each key's latest value at its original offset (gaps between), as
Kafka serves a compacted log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.e2e.test_retention import create
from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until

BASE_TS = 1_700_000_000_000


@pytest.fixture
def cleaning_broker(tmp_path: Path) -> Iterator[InProcessBroker]:
    broker = InProcessBroker(
        tmp_path / "broker",
        settings={
            "upload.interval.ms": "50",
            "log.cleaner.backoff.ms": "50",
            "log.segment.delete.delay.ms": "100",
        },
    ).start()
    yield broker
    broker.stop()


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None, int]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    failures: list[object] = []
    for key, value, timestamp in records:
        producer.produce(
            topic,
            key=key,
            value=value,
            partition=0,
            timestamp=timestamp,
            on_delivery=lambda error, _: failures.append(error) if error else None,
        )
    assert producer.flush(10) == 0
    assert not failures


def read_all(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record from the earliest offset to the end."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "fresh", "enable.auto.commit": False}
    )
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, -2)])  # OFFSET_BEGINNING
        got: list[tuple[int, bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 20
        while (not got or got[-1][0] < end - 1) and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.2):
                assert message.error() is None, message.error()
                got.append((message.offset(), message.key(), message.value()))
        return got
    finally:
        consumer.close()


def clean_up_to(broker: InProcessBroker, topic: str) -> int:
    """The partition's first dirty offset: the log below it is clean."""

    async def look() -> int:
        assert broker.broker is not None and broker.broker.storage is not None
        storage = broker.broker.storage
        return storage.cleaner.first_dirty_offset(storage.partition(topic, 0))

    return broker.call(look())


def round_(
    broker: InProcessBroker, topic: str, records: list[tuple[bytes, bytes | None, int]]
) -> None:
    """Produce `records` and wait until they are uploaded, in an object of their own
    that closes its segment (segment.ms=1: the next upload is a millisecond later)."""
    produce(broker.bootstrap, topic, records)

    async def uploaded() -> int | None:
        assert broker.broker is not None and broker.broker.storage is not None
        partition = broker.broker.storage.partition(topic, 0)
        ranges = await partition.index.load()
        done = len(ranges) and ranges[-1].end_offset == partition.high_watermark
        return ranges[-1].created_ms if done else None

    last = wait_until(lambda: broker.call(uploaded()), 20, "the round is uploaded")
    wait_until(lambda: time.time_ns() // 1_000_000 > last, 5, "a millisecond passes", poll_s=0.001)


def test_a_fresh_consumer_reads_the_latest_value_per_key_at_its_original_offset(
    cleaning_broker: InProcessBroker,
) -> None:
    broker = cleaning_broker
    topic = "entities"
    create(
        broker.bootstrap,
        topic,
        **{
            "cleanup.policy": "compact",
            "min.cleanable.dirty.ratio": "0.01",
            "segment.ms": "1",  # every upload closes its segment
            "delete.retention.ms": "0",  # tombstones go at the second cleaning
        },
    )
    keys = [b"k%d" % i for i in range(10)]
    round_(broker, topic, [(k, b"v1-" + k, BASE_TS + i) for i, k in enumerate(keys)])  # 0-9
    round_(broker, topic, [(k, b"v2-" + k, BASE_TS + 100 + i) for i, k in enumerate(keys[:5])])
    round_(broker, topic, [(b"k9", None, BASE_TS + 200)])  # 15: a tombstone
    round_(broker, topic, [(b"z", b"active", BASE_TS + 300)])  # 16: the active segment
    wait_until(lambda: clean_up_to(broker, topic) == 16, 20, "the log cleaned up to 16")

    expected = (
        [(5 + i, b"k%d" % (5 + i), b"v1-k%d" % (5 + i)) for i in range(4)]
        + [(10 + i, b"k%d" % i, b"v2-k%d" % i) for i in range(5)]
        + [(15, b"k9", None), (16, b"z", b"active")]
    )
    assert read_all(broker.bootstrap, topic) == expected

    # ListOffsets by timestamp across a gap: offsets 2-4 are gone, the first record at
    # or after BASE_TS + 2 is now offset 5.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "times"})
    try:
        (found,) = consumer.offsets_for_times([TopicPartition(topic, 0, BASE_TS + 2)], timeout=10)
        assert found.offset == 5
    finally:
        consumer.close()

    # More data, and a second pass: the tombstone's horizon (delete.retention.ms=0 past
    # its first cleaning) has passed, so it goes.
    round_(broker, topic, [(b"k0", b"v3-k0", BASE_TS + 400)])  # 17
    round_(broker, topic, [(b"y", b"active", BASE_TS + 500)])  # 18
    wait_until(lambda: clean_up_to(broker, topic) == 18, 20, "the log cleaned up to 18")
    expected = (
        [(5 + i, b"k%d" % (5 + i), b"v1-k%d" % (5 + i)) for i in range(4)]
        + [(10 + i, b"k%d" % i, b"v2-k%d" % i) for i in range(1, 5)]
        + [(16, b"z", b"active"), (17, b"k0", b"v3-k0"), (18, b"y", b"active")]
    )
    assert read_all(broker.bootstrap, topic) == expected
    broker.restart()  # the swapped ranges are the metadata's
    assert read_all(broker.bootstrap, topic) == expected
