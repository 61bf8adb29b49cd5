"""Catch-up Fetch responses larger than 1 MiB are written by the bulk sender's threads
(broker/bulk_sender.py): a consumer reading a backlog from objects gets every record once,
in order, while a producer's small responses on other connections go on."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.inprocess import InProcessBroker

PARTITIONS = 4
RECORDS = 16 * 1024  # of 1 KiB: 16 MiB


def _value(partition: int, number: int) -> bytes:
    return f"{partition}:{number}:".encode().ljust(1024, b"v")


def _produce(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20})
    errors: list[str] = []
    for number in range(RECORDS):
        partition = number % PARTITIONS
        producer.produce(
            topic,
            _value(partition, number // PARTITIONS),
            partition=partition,
            on_delivery=lambda err, _m: errors.append(str(err)) if err else None,
        )
        if number % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors[:3]


@pytest.mark.parametrize("threads", ["2", "0"])
def test_a_backlog_read_back_whole_with_and_without_send_threads(
    tmp_path: Path, threads: str
) -> None:
    broker = InProcessBroker(
        tmp_path / "broker", settings={"response.send.threads": threads}
    ).start()
    try:
        topic = "backlog"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(topic, PARTITIONS)])[topic].result(30)
        _produce(broker.bootstrap, topic)
        broker.restart()  # the log cache is empty: the read comes from objects
        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": f"bulk-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "max.partition.fetch.bytes": 8 * 1024 * 1024,
            }
        )
        seen = {p: 0 for p in range(PARTITIONS)}
        try:
            consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
            deadline = time.monotonic() + 120
            while sum(seen.values()) < RECORDS:
                assert time.monotonic() < deadline, f"timed out at {seen}"
                for message in consumer.consume(1000, 0.5):
                    assert message.error() is None, message.error()
                    partition = message.partition()
                    assert message.offset() == seen[partition]
                    assert message.value() == _value(partition, seen[partition])
                    seen[partition] += 1
        finally:
            consumer.close()
        assert broker.broker is not None and broker.broker.listeners is not None
        sender = broker.broker.listeners.shared.bulk_sender
        if threads == "0":
            assert sender is None
        else:
            assert sender is not None
            # Responses past 1 MiB went through it: most of the 16 MiB read back.
            assert sender.responses >= 1
            assert sender.bytes > RECORDS * 1024 // 2
    finally:
        broker.stop()
