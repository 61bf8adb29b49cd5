"""Round trips through the broker with confluent-kafka (librdkafka)."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.inprocess import InProcessBroker


def create_topic(bootstrap: str, name: str, partitions: int, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, config=configs)])
    futures[name].result(10)


def consume_all(
    bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 30
) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                messages.append(message)
    finally:
        consumer.close()
    return messages


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_round_trip_keeps_keys_headers_timestamps_and_null_values(
    shared_broker: InProcessBroker, codec: str
) -> None:
    topic = f"roundtrip-{codec}"
    create_topic(shared_broker.bootstrap, topic, 3)
    producer = Producer(
        {
            "bootstrap.servers": shared_broker.bootstrap,
            "acks": "all",
            "compression.type": codec,
            "linger.ms": 5,
        }
    )
    sent = []
    for i in range(300):
        key = None if i % 50 == 0 else f"key-{i % 17}".encode()
        value = (
            None if i % 7 == 0 else (b"" if i % 11 == 0 else f"value-{i}".encode() * (i % 5 + 1))
        )
        headers = [("index", str(i).encode()), ("empty", b"")] if i % 3 else []
        timestamp = 1_700_000_000_000 + i
        partition = i % 3
        producer.produce(
            topic, key=key, value=value, headers=headers, timestamp=timestamp, partition=partition
        )
        sent.append((partition, key, value, headers, timestamp))
    assert producer.flush(20) == 0
    received = consume_all(shared_broker.bootstrap, topic, 3, len(sent))
    assert len(received) == len(sent)
    by_partition: dict[int, list] = {0: [], 1: [], 2: []}
    for message in received:
        by_partition[message.partition()].append(message)
    for partition, messages in by_partition.items():
        expected = [s for s in sent if s[0] == partition]
        assert [m.offset() for m in messages] == list(range(len(expected)))
        for message, (_, key, value, headers, timestamp) in zip(messages, expected, strict=True):
            assert message.key() == key
            assert message.value() == value
            assert (message.headers() or []) == headers
            assert message.timestamp()[1] == timestamp


def test_per_key_order_is_kept_across_partitions(shared_broker: InProcessBroker) -> None:
    topic = "ordering"
    create_topic(shared_broker.bootstrap, topic, 4)
    producer = Producer(
        {"bootstrap.servers": shared_broker.bootstrap, "acks": "all", "enable.idempotence": True}
    )
    for i in range(4000):
        producer.produce(topic, key=f"entity-{i % 40}".encode(), value=str(i).encode())
    assert producer.flush(30) == 0
    received = consume_all(shared_broker.bootstrap, topic, 4, 4000)
    assert len(received) == 4000
    last: dict[bytes, int] = {}
    partition_of: dict[bytes, int] = {}
    for message in received:
        key, value = message.key(), int(message.value())
        assert partition_of.setdefault(key, message.partition()) == message.partition()
        assert value > last.get(key, -1)
        last[key] = value


def test_large_messages_and_fetch_limits(shared_broker: InProcessBroker) -> None:
    topic = "large"
    create_topic(shared_broker.bootstrap, topic, 1)
    producer = Producer({"bootstrap.servers": shared_broker.bootstrap, "acks": "all"})
    payload = bytes(range(256)) * 3000  # 768 KB, under message.max.bytes
    for _ in range(5):
        producer.produce(topic, value=payload)
    assert producer.flush(20) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": shared_broker.bootstrap,
            "group.id": "large-reader",
            "enable.auto.commit": False,
            "message.max.bytes": 1000,
            "fetch.max.bytes": 1024,  # smaller than one message: still makes progress
            "max.partition.fetch.bytes": 1024,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 5 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None:
            assert message.error() is None
            got.append(message.value())
    consumer.close()
    assert got == [payload] * 5


def test_fetch_long_poll_returns_when_data_arrives(shared_broker: InProcessBroker) -> None:
    topic = "longpoll"
    create_topic(shared_broker.bootstrap, topic, 1)
    consumer = Consumer(
        {
            "bootstrap.servers": shared_broker.bootstrap,
            "group.id": "longpoll-reader",
            "fetch.wait.max.ms": 5000,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    assert consumer.poll(1.0) is None  # nothing yet: the fetch waits
    producer = Producer({"bootstrap.servers": shared_broker.bootstrap, "acks": "all"})
    producer.produce(topic, value=b"wake-up")
    producer.flush(10)
    message = None
    deadline = time.monotonic() + 10
    while message is None and time.monotonic() < deadline:
        message = consumer.poll(0.5)
    consumer.close()
    assert message is not None and message.value() == b"wake-up"


def test_acks_zero_and_one_are_accepted(shared_broker: InProcessBroker) -> None:
    topic = "acks"
    create_topic(shared_broker.bootstrap, topic, 1)
    for acks in ("0", "1"):
        producer = Producer({"bootstrap.servers": shared_broker.bootstrap, "acks": acks})
        for i in range(100):
            producer.produce(topic, value=f"{acks}-{i}".encode())
        assert producer.flush(10) == 0
    received = consume_all(shared_broker.bootstrap, topic, 1, 200)
    assert sorted(m.value() for m in received) == sorted(
        f"{a}-{i}".encode() for a in ("0", "1") for i in range(100)
    )


def test_restart_keeps_data_and_offsets(broker: InProcessBroker) -> None:
    create_topic(broker.bootstrap, "durable", 2)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(1000):
        producer.produce("durable", value=str(i).encode(), partition=i % 2)
    assert producer.flush(10) == 0
    broker.restart()
    received = consume_all(broker.bootstrap, "durable", 2, 1000)
    assert sorted(int(m.value()) for m in received) == list(range(1000))
    for partition in (0, 1):
        offsets = [m.offset() for m in received if m.partition() == partition]
        assert offsets == list(range(500))
