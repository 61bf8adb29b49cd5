"""The replication factor CreateTopics may ask for (broker/topics.py): above 1 only up to
the registered brokers (Kafka's refusal, word for word) and only with the object WAL,
where every acknowledged record is already in the store; the topic keeps one replica."""

from __future__ import annotations

from typing import Any, cast

import pytest

from contextplane.broker.topics import TopicManager
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings


def manager(brokers: int, wal_url: str = "") -> TopicManager:
    # check_create reads only the settings and the registered brokers.
    topics = TopicManager(cast(Any, None), cast(Any, None), Settings(wal_url=wal_url))
    topics.registered_brokers = lambda: brokers
    return topics


def refusal(topics: TopicManager, factor: int) -> str:
    with pytest.raises(KafkaError) as raised:
        topics.check_create("t", 1, factor, {})
    assert raised.value.code == ErrorCode.invalid_replication_factor
    return raised.value.message or ""


def test_one_broker_refuses_three_replicas_as_kafka_does() -> None:
    assert refusal(manager(1, "file:///wal"), 3) == (
        "Unable to replicate the partition 3 time(s): The target replication factor of 3"
        " cannot be reached because only 1 broker(s) are registered."
    )
    assert refusal(manager(1), 3).endswith("only 1 broker(s) are registered.")


def test_with_the_object_wal_up_to_the_registered_brokers_is_accepted() -> None:
    topics = manager(3, "s3://bucket/wal")
    assert topics.check_create("t", 2, 3, {}) == (2, {})
    assert topics.check_create("t", 2, 2, {}) == (2, {})
    assert "only 3 broker(s)" in refusal(topics, 4)


def test_with_the_local_wal_more_than_one_replica_is_refused_naming_the_object_wal() -> None:
    assert "wal.url" in refusal(manager(3), 2)
    assert manager(3).check_create("t", 1, 1, {}) == (1, {})
    assert "larger than 0" in refusal(manager(3), 0)
