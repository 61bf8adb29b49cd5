"""Integer topic configs Kafka accepts in a text Python's int() refuses: leading zeros
past Python's 4,300-digit limit (Java's parseInt reads any number of them). The value is
stored as given (trimmed) and every reader of it must read it as Kafka does: a produce to
the topic, its retention and its compaction, and a restart."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.inprocess import InProcessBroker

ZEROS = "0" * 5000
CONFIGS = {
    "max.message.bytes": ZEROS + "1048588",
    "message.timestamp.before.max.ms": ZEROS + "86400000",
    "message.timestamp.after.max.ms": ZEROS + "86400000",
    "retention.ms": ZEROS + "604800000",
    "retention.bytes": ZEROS + "1073741824",
    "segment.bytes": ZEROS + "1073741824",
    "segment.ms": ZEROS + "604800000",
    "file.delete.delay.ms": ZEROS + "60000",
}


def test_a_topic_with_long_leading_zeros_takes_produces(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "broker").start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        future = admin.create_topics([NewTopic("zeros", 1, 1, config=CONFIGS)])["zeros"]
        future.result(30)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 20000})
        errors: list[object] = []
        producer.produce("zeros", b"value", on_delivery=lambda e, _m: errors.append(e))
        assert producer.flush(30) == 0
        assert errors == [None]
    finally:
        broker.stop()


def test_the_longest_delete_delay_deletes_records_and_the_topic(tmp_path: Path) -> None:
    """file.delete.delay.ms=Long.MAX_VALUE, which Kafka accepts: the deletion's due time
    (now plus the delay) overflowed the metadata store's 64-bit column once an object held
    only that topic's records, so DeleteRecords failed, and a deleted topic left the
    broker's memory but not the store (back after a restart)."""
    broker = InProcessBroker(tmp_path / "broker").start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        config = {"file.delete.delay.ms": "9223372036854775807"}
        admin.create_topics([NewTopic("kept-long", 1, 1, config=config)])["kept-long"].result(30)
        broker.restart()  # the CreateTopics audit record goes into an object of its own
        for round_ in range(2):
            producer = Producer({"bootstrap.servers": broker.bootstrap})
            for _ in range(3):
                producer.produce("kept-long", b"value")
            assert producer.flush(30) == 0
            broker.restart()  # a clean stop uploads them: an object of only this topic
            if round_ == 0:
                admin = AdminClient({"bootstrap.servers": broker.bootstrap})
                below = TopicPartition("kept-long", 0, 3)
                assert admin.delete_records([below])[below].result(30).low_watermark == 3
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.delete_topics(["kept-long"])["kept-long"].result(30)
        broker.restart()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        assert "kept-long" not in admin.list_topics(timeout=30).topics
    finally:
        broker.stop()
