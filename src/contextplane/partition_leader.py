"""Whether a partition has a leader yet, asked on a librdkafka handle's own connection.

A handle that once saw a partition without a leader (a topic just created, before a
broker of the cluster claimed it) keeps that in its metadata cache, and its watermark
queries fail with `_UNKNOWN_PARTITION` until something refreshes the cache: nothing
does for a topic the handle neither produces to nor consumes. A Metadata request for
the topic on that handle (`list_topics`) refreshes it.
"""

from __future__ import annotations

from typing import Any


def refresh_leader(client: Any, topic: str, partition: int, timeout_s: float) -> str | None:
    """Ask for `topic`'s metadata on `client` (a confluent-kafka Consumer: its Metadata
    requests never auto-create the topic), refreshing its cache; None once `partition`
    has a leader, else what the answer says is missing (Kafka's error name). Raises
    KafkaException when unanswered."""
    described = client.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if described is None:
        return "UNKNOWN_TOPIC_OR_PART"
    if described.error is not None:
        return str(described.error.name())
    found = described.partitions.get(partition)
    if found is None:
        return f"UNKNOWN_PARTITION (partition {partition} of {len(described.partitions)})"
    if found.error is not None:
        return str(found.error.name())
    if found.leader < 0:
        return "LEADER_NOT_AVAILABLE"
    return None
