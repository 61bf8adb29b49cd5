"""Integer topic configs Kafka accepts in a text Python's int() refuses: leading zeros
past Python's 4,300-digit limit (Java's parseInt reads any number of them). The value is
stored as given (trimmed) and every reader of it must read it as Kafka does: a produce to
the topic, its retention and its compaction, and a restart."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Producer
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
