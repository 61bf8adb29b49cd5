"""Retention by time and by size deletes whole objects and moves the log start offset."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.test_produce_fetch import consume_all
from tests.support.broker import BrokerProcess

DAY_MS = 24 * 3600 * 1000


def object_files(broker: BrokerProcess) -> set[Path]:
    return set((broker.data_dir / "objects").rglob("*.obj"))


def wait_for(predicate, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def earliest(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    low, _ = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.close()
    return int(low)


def produce(bootstrap: str, topic: str, values: list[bytes], timestamp_ms: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for value in values:
        producer.produce(topic, value=value, partition=0, timestamp=timestamp_ms)
    assert producer.flush(10) == 0


@pytest.fixture
def retaining_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """Uploads every 50 ms and checks retention every 100 ms, so a test sees it act."""
    broker = BrokerProcess(
        tmp_path / "broker",
        settings={"upload.interval.ms": "50", "log.retention.check.interval.ms": "100"},
    ).start()
    yield broker
    broker.stop()


def create(bootstrap: str, topic: str, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, config=configs)])[topic].result(10)


def test_time_retention_deletes_old_objects_and_keeps_the_rest(
    retaining_broker: BrokerProcess,
) -> None:
    broker = retaining_broker
    # segment.ms=1: every uploaded object closes its own segment.
    create(broker.bootstrap, "aged", **{"retention.ms": str(DAY_MS), "segment.ms": "1"})
    now = int(time.time() * 1000)
    produce(broker.bootstrap, "aged", [b"old-%d" % i for i in range(100)], now - 3 * DAY_MS)
    wait_for(lambda: len(object_files(broker)) >= 1)
    old_objects = object_files(broker)
    time.sleep(0.05)  # the next upload is a later segment
    produce(broker.bootstrap, "aged", [b"new-%d" % i for i in range(50)], now)
    wait_for(lambda: earliest(broker.bootstrap, "aged") == 100)
    wait_for(lambda: not (old_objects & object_files(broker)))
    remaining = consume_all(broker.bootstrap, "aged", 1, 50)
    assert [m.value() for m in remaining] == [b"new-%d" % i for i in range(50)]
    assert [m.offset() for m in remaining] == list(range(100, 150))
    broker.restart()  # the moved log start is durable
    assert earliest(broker.bootstrap, "aged") == 100


def test_size_retention_keeps_the_newest_bytes(retaining_broker: BrokerProcess) -> None:
    broker = retaining_broker
    create(broker.bootstrap, "sized", **{"retention.bytes": "30000", "segment.ms": "1"})
    now = int(time.time() * 1000)
    for round_ in range(6):  # six objects of ~10 KB each
        produce(broker.bootstrap, "sized", [bytes([round_]) * 1000] * 10, now)
        wait_for(
            lambda r=round_: (
                len(object_files(broker)) >= r + 1 or earliest(broker.bootstrap, "sized") > 0
            )
        )
    wait_for(lambda: earliest(broker.bootstrap, "sized") >= 30)
    start = earliest(broker.bootstrap, "sized")
    remaining = consume_all(broker.bootstrap, "sized", 1, 60 - start)
    assert [m.offset() for m in remaining] == list(range(start, 60))
    assert all(m.value() == bytes([m.offset() // 10]) * 1000 for m in remaining)
    # never below retention.bytes minus one object
    assert sum(len(m.value()) for m in remaining) >= 20000


def test_active_segment_is_kept_even_with_old_timestamps(
    retaining_broker: BrokerProcess,
) -> None:
    """As in Kafka, fresh records with an old CreateTime stay until their segment rolls."""
    broker = retaining_broker
    create(broker.bootstrap, "history", **{"retention.ms": str(DAY_MS)})
    now = int(time.time() * 1000)
    for round_ in range(3):
        produce(broker.bootstrap, "history", [b"%d" % round_] * 10, now - 30 * DAY_MS)
        wait_for(lambda r=round_: len(object_files(broker)) >= r + 1)
    time.sleep(1.0)  # several retention passes
    assert earliest(broker.bootstrap, "history") == 0
    assert len(consume_all(broker.bootstrap, "history", 1, 30)) == 30
