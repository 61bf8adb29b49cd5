"""`refresh_leader` (partition_leader.py) against a real broker: what a Metadata answer
says a partition lacks, and an unanswered ask raised. The leaderless case, a topic no
broker has claimed yet, needs a cluster: tests/e2e/test_cluster_registry_start.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.partition_leader import refresh_leader
from tests.support.broker import free_port
from tests.support.inprocess import InProcessBroker


@pytest.fixture
def consumer(tmp_path: Path) -> Iterator[Consumer]:
    broker = InProcessBroker(tmp_path).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("led", 1, 1)])["led"].result(20)
        client = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "probe"})
        yield client
        client.close()
    finally:
        broker.stop()


def test_says_what_a_partition_lacks(consumer: Consumer) -> None:
    assert refresh_leader(consumer, "led", 0, 10) is None
    assert refresh_leader(consumer, "led", 3, 10) == "UNKNOWN_PARTITION (partition 3 of 1)"
    # A consumer's Metadata request does not create the topic it names.
    assert refresh_leader(consumer, "absent", 0, 10) == "UNKNOWN_TOPIC_OR_PART"
    assert refresh_leader(consumer, "absent", 0, 10) == "UNKNOWN_TOPIC_OR_PART"


def test_an_unanswered_ask_raises() -> None:
    client = Consumer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "group.id": "probe"})
    try:
        with pytest.raises(KafkaException):
            refresh_leader(client, "led", 0, 1)
    finally:
        client.close()
