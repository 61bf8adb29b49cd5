"""Retention by time and by size deletes whole objects and moves the log start offset."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.test_produce_fetch import consume_all
from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until

DAY_MS = 24 * 3600 * 1000


def object_files(broker: InProcessBroker) -> set[Path]:
    return set((broker.data_dir / "objects").rglob("*.obj"))


def last_upload_ms(broker: InProcessBroker, topic: str) -> int | None:
    """The wall-clock time the broker recorded for partition 0's last committed upload."""

    async def look() -> int | None:
        assert broker.broker is not None and broker.broker.storage is not None
        ranges = await broker.broker.storage.partition(topic, 0).index.load()
        return ranges[-1].created_ms if len(ranges) else None

    return broker.call(look())


def wait_past_last_upload(broker: InProcessBroker, topic: str) -> None:
    """segment.ms=1 compares the uploads' wall-clock times: the next upload starts a new
    segment only if it is recorded at least a millisecond after the last one. Wait until
    that upload is committed and the wall clock has moved past its time."""
    last = wait_until(lambda: last_upload_ms(broker, topic), 20, f"{topic}'s upload commits")
    wait_until(lambda: time.time_ns() // 1_000_000 > last, 5, "a millisecond passes", poll_s=0.001)


def earliest(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    low, _ = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.close()
    return int(low)


def produce(bootstrap: str, topic: str, values: list[bytes], timestamp_ms: int) -> None:
    failures: list[object] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for value in values:
        # Keyed, so compacted topics take them too.
        producer.produce(
            topic,
            key=value,
            value=value,
            partition=0,
            timestamp=timestamp_ms,
            on_delivery=lambda error, _: failures.append(error) if error else None,
        )
    assert producer.flush(10) == 0
    assert not failures


@pytest.fixture
def retaining_broker(tmp_path: Path) -> Iterator[InProcessBroker]:
    """Uploads every 50 ms, checks retention every 100 ms and deletes unreferenced objects
    100 ms later, so a test sees it act."""
    broker = InProcessBroker(
        tmp_path / "broker",
        settings={
            "upload.interval.ms": "50",
            "log.retention.check.interval.ms": "100",
            # Unreferenced objects are deleted 100 ms after retention drops them.
            "log.segment.delete.delay.ms": "100",
        },
    ).start()
    yield broker
    broker.stop()


def create(bootstrap: str, topic: str, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, config=configs)])[topic].result(10)


def test_time_retention_deletes_old_objects_and_keeps_the_rest(
    retaining_broker: InProcessBroker,
) -> None:
    broker = retaining_broker
    # segment.ms=1: every uploaded object closes its own segment.
    create(broker.bootstrap, "aged", **{"retention.ms": str(DAY_MS), "segment.ms": "1"})
    now = int(time.time() * 1000)
    produce(broker.bootstrap, "aged", [b"old-%d" % i for i in range(100)], now - 3 * DAY_MS)
    wait_until(lambda: object_files(broker), 20, "the old records are uploaded")
    old_objects = object_files(broker)
    wait_past_last_upload(broker, "aged")
    produce(broker.bootstrap, "aged", [b"new-%d" % i for i in range(50)], now)
    wait_until(lambda: earliest(broker.bootstrap, "aged") == 100, 20, "the log start moves")
    wait_until(lambda: not (old_objects & object_files(broker)), 20, "old objects deleted")
    remaining = consume_all(broker.bootstrap, "aged", 1, 50)
    assert [m.value() for m in remaining] == [b"new-%d" % i for i in range(50)]
    assert [m.offset() for m in remaining] == list(range(100, 150))
    broker.restart()  # the moved log start is durable
    assert earliest(broker.bootstrap, "aged") == 100


def test_size_retention_keeps_the_newest_bytes(retaining_broker: InProcessBroker) -> None:
    broker = retaining_broker
    create(broker.bootstrap, "sized", **{"retention.bytes": "30000", "segment.ms": "1"})
    now = int(time.time() * 1000)
    for round_ in range(6):  # six objects of ~10 KB each
        produce(broker.bootstrap, "sized", [bytes([round_]) * 1000] * 10, now)
        wait_until(
            lambda r=round_: (
                len(object_files(broker)) >= r + 1 or earliest(broker.bootstrap, "sized") > 0
            ),
            20,
            f"round {round_} is uploaded",
        )
    wait_until(lambda: earliest(broker.bootstrap, "sized") >= 30, 20, "the log start moves")

    def read_from_the_log_start() -> tuple[int, list] | None:
        # Retention may still move the log start while this reads: read again then.
        start = earliest(broker.bootstrap, "sized")
        read = consume_all(broker.bootstrap, "sized", 1, 60 - start, timeout_s=10)
        if read and read[0].offset() == start and len(read) == 60 - start:
            return start, read
        assert earliest(broker.bootstrap, "sized") > start, [m.offset() for m in read]
        return None

    start, remaining = wait_until(read_from_the_log_start, 60, "a read from the log start")
    assert [m.offset() for m in remaining] == list(range(start, 60))
    assert all(m.value() == bytes([m.offset() // 10]) * 1000 for m in remaining)
    # never below retention.bytes minus one object
    assert sum(len(m.value()) for m in remaining) >= 20000


def test_active_segment_is_kept_even_with_old_timestamps(
    retaining_broker: InProcessBroker,
) -> None:
    """As in Kafka, fresh records with an old CreateTime stay until their segment rolls."""
    broker = retaining_broker
    create(broker.bootstrap, "history", **{"retention.ms": str(DAY_MS)})
    now = int(time.time() * 1000)
    for round_ in range(3):
        produce(broker.bootstrap, "history", [b"%d" % round_] * 10, now - 30 * DAY_MS)
        wait_until(
            lambda r=round_: len(object_files(broker)) >= r + 1, 20, f"round {round_} uploaded"
        )
    # Retention has run over "history" once it has deleted old records of a topic produced
    # after it: each round of "control" is uploaded on its own, and once two uploads are a
    # millisecond apart (segment.ms=1) the older one is a closed, expired segment.
    create(broker.bootstrap, "control", **{"retention.ms": str(DAY_MS), "segment.ms": "1"})

    def control_trimmed() -> bool:
        if earliest(broker.bootstrap, "control") > 0:
            return True
        uploaded = len(object_files(broker))
        produce(broker.bootstrap, "control", [b"old"] * 10, now - 30 * DAY_MS)
        wait_until(
            lambda: len(object_files(broker)) > uploaded or earliest(broker.bootstrap, "control"),
            20,
            "a control round is uploaded",
        )
        return False

    wait_until(control_trimmed, 30, "retention deletes the control topic's old records")
    assert earliest(broker.bootstrap, "history") == 0
    assert len(consume_all(broker.bootstrap, "history", 1, 30)) == 30


@pytest.mark.parametrize("policy", ["", "compact"])
def test_no_delete_policy_means_no_time_retention(
    retaining_broker: InProcessBroker, policy: str
) -> None:
    """Kafka deletes old segments only when cleanup.policy lists `delete`: an empty policy
    is infinite retention, a compact-only one is never deleted by age."""
    broker = retaining_broker
    old = int(time.time() * 1000) - 3 * DAY_MS
    kept = {"retention.ms": str(DAY_MS), "segment.ms": "1", "cleanup.policy": policy}
    create(broker.bootstrap, "kept", **kept)
    produce(broker.bootstrap, "kept", [b"old-%d" % i for i in range(10)], old)
    wait_until(lambda: object_files(broker), 20, "the old records are uploaded")
    wait_past_last_upload(broker, "kept")
    produce(broker.bootstrap, "kept", [b"new"], int(time.time() * 1000))
    wait_until(lambda: len(object_files(broker)) >= 2, 20, "the new record is uploaded")
    # A control topic with the default policy: once retention has moved its log start,
    # the same pass has also looked at "kept".
    create(broker.bootstrap, "control", **{"retention.ms": str(DAY_MS), "segment.ms": "1"})
    produce(broker.bootstrap, "control", [b"old"], old)
    wait_until(lambda: len(object_files(broker)) >= 3, 20, "the control's old record is uploaded")
    wait_past_last_upload(broker, "control")
    produce(broker.bootstrap, "control", [b"new"], int(time.time() * 1000))
    wait_until(lambda: earliest(broker.bootstrap, "control") == 1, 20, "control trimmed")
    assert earliest(broker.bootstrap, "kept") == 0
