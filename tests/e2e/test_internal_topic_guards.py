"""What no client may do to the broker's internal topics, found by an attack pass: grow
the coordinators' topics (every group and transactional id would move to another shard
at once) or the audit trail, or give the audit trail a config that stops the brokers'
own appends (max.message.bytes of 64: every audit record given up, nothing refused to the
client). Its retention stays an administrator's change, as before."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
)

from tests.support.inprocess import InProcessBroker

AUDIT = "__contextplane_audit"


def altered(admin: AdminClient, topic: str, name: str, value: str) -> None:
    entry = ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    admin.incremental_alter_configs([resource])[resource].result(15)


def error_of(call: Callable[[], None]) -> tuple[str, str]:
    with pytest.raises(KafkaException) as refused:
        call()
    error = refused.value.args[0]
    return error.name(), error.str()


def test_internal_topics_keep_their_partitions_and_the_audit_trail_its_configs(
    start: Callable[..., InProcessBroker],
) -> None:
    broker = start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topics = admin.list_topics(timeout=15).topics
    for topic in ("__consumer_offsets", "__transaction_state", AUDIT):
        if topic not in topics:
            continue  # created on first use
        count = len(topics[topic].partitions)
        name, text = error_of(
            lambda t=topic, c=count: admin.create_partitions([NewPartitions(t, c + 10)])[t].result(
                15
            )
        )
        assert (name, text) == (
            "POLICY_VIOLATION",
            f"The partition count of the internal topic {topic} is fixed.",
        )
        now = admin.list_topics(topic, timeout=15).topics[topic]
        assert len(now.partitions) == count

    name, text = error_of(lambda: altered(admin, AUDIT, "max.message.bytes", "64"))
    assert name == "POLICY_VIOLATION"
    assert text == (
        f"{AUDIT} is the security audit trail: only retention.bytes and retention.ms may be"
        " changed, not max.message.bytes"
    )
    altered(admin, AUDIT, "retention.ms", str(30 * 24 * 3_600_000))  # an administrator's
    resource = ConfigResource(ConfigResource.Type.TOPIC, AUDIT)
    described = admin.describe_configs([resource])[resource].result(15)
    assert described["retention.ms"].value == str(30 * 24 * 3_600_000)
    assert described["max.message.bytes"].value != "64"
