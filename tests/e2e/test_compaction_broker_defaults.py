"""Kafka's broker-wide cleaner defaults end to end: with `log.cleanup.policy=compact` a
topic created without a policy is compacted, with the cleaner's other topic configs taken
from log.cleaner.*, DescribeConfigs shows those defaults, and `__consumer_offsets` stays
compact whatever the broker-wide policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from tests.e2e.test_compaction import BASE_TS, clean_up_to, read_all, round_
from tests.e2e.test_retention import create
from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until


@pytest.fixture
def compacting_broker(tmp_path: Path) -> Iterator[InProcessBroker]:
    broker = InProcessBroker(
        tmp_path / "broker",
        settings={
            "upload.interval.ms": "50",
            "log.cleaner.backoff.ms": "50",
            "log.segment.delete.delay.ms": "100",
            "log.cleanup.policy": "compact",
            "log.cleaner.min.cleanable.ratio": "0.01",
            "log.cleaner.delete.retention.ms": "0",
        },
    ).start()
    yield broker
    broker.stop()


def describe(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource("topic", topic)
    entries = admin.describe_configs([resource])[resource].result(10)
    return {name: entry.value for name, entry in entries.items()}


def test_log_cleanup_policy_compact_makes_a_new_topic_compacted(
    compacting_broker: InProcessBroker,
) -> None:
    broker = compacting_broker
    topic = "by-default"
    create(broker.bootstrap, topic, **{"segment.ms": "1"})  # every upload closes its segment
    configs = describe(broker.bootstrap, topic)
    assert configs["cleanup.policy"] == "compact"
    assert configs["min.cleanable.dirty.ratio"] == "0.01"
    assert configs["delete.retention.ms"] == "0"
    assert describe(broker.bootstrap, "__consumer_offsets")["cleanup.policy"] == "compact"

    round_(broker, topic, [(b"k%d" % i, b"v1", BASE_TS + i) for i in range(4)])  # 0-3
    round_(broker, topic, [(b"k0", b"v2", BASE_TS + 10), (b"k1", None, BASE_TS + 11)])  # 4-5
    round_(broker, topic, [(b"z", b"active", BASE_TS + 20)])  # 6: the active segment
    wait_until(lambda: clean_up_to(broker, topic) == 6, 20, "the log cleaned up to 6")
    assert read_all(broker.bootstrap, topic) == [
        (2, b"k2", b"v1"),
        (3, b"k3", b"v1"),
        (4, b"k0", b"v2"),
        (5, b"k1", None),  # a tombstone stays until a later cleaning
        (6, b"z", b"active"),
    ]
