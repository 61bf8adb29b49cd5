"""An unprivileged principal cannot flood the audit topic: a request's denials are one
record per operation, resource type and error however many names it carries, each
principal's denial records are bound per second (what is held back is summarised in the
audit topic), and `__contextplane_audit` has a finite retention.bytes by default. Every
client is User:ANONYMOUS (PLAINTEXT), refused DESCRIBE on the topics it names by a
prefixed DENY ACL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    ResourcePatternType,
    ResourceType,
)

from contextplane import limits
from tests.e2e.test_audit import AUTHORIZER
from tests.support.audit_topics import AUDIT_TOPIC, read_json_topic
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

METADATA_KEY = 3


def deny_describe_of_denied_topics(bootstrap: str) -> None:
    deny = AclBinding(ResourceType.TOPIC, "denied-", ResourcePatternType.PREFIXED,
                      "User:ANONYMOUS", "*", AclOperation.DESCRIBE,
                      AclPermissionType.DENY)  # fmt: skip
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_acls([deny]).values():
        future.result(10)


def metadata_of(bootstrap: str, names: list[str], requests: int = 1) -> None:
    topics = [{"name": n, "topic_id": uuid.UUID(int=0)} for n in names]
    with RawClient(bootstrap) as client:
        for _ in range(requests):
            response = client.request(
                METADATA_KEY, 12, topics=topics, allow_auto_topic_creation=False,
                include_cluster_authorized_operations=False,
                include_topic_authorized_operations=False,
            )  # fmt: skip
            assert {t.error_code for t in response.topics} == {29}  # TOPIC_AUTHORIZATION_FAILED


def metadata_denials(broker: InProcessBroker) -> list[dict[str, Any]]:
    return [
        e["data"]
        for e in read_json_topic(broker.bootstrap, AUDIT_TOPIC)
        if e["type"] == "io.contextplane.audit.authorization" and e["data"]["api"] == "Metadata"
    ]


def test_a_metadata_request_naming_2000_denied_topics_writes_one_audit_record(
    start: Callable[..., InProcessBroker],
) -> None:
    broker = start(**AUTHORIZER)
    deny_describe_of_denied_topics(broker.bootstrap)
    names = [f"denied-{i:05d}" for i in range(2000)]
    metadata_of(broker.bootstrap, names)
    sink = broker.broker.audit_sink  # type: ignore[union-attr]
    assert sink is not None
    broker.call(sink.flush())
    [data] = metadata_denials(broker)
    assert data["decision"] == "DENIED" and data["operation"] == "DESCRIBE"
    assert data["resource_count"] == 2000
    assert data["resource_names"] == names[: limits.AUDIT_DENIED_NAMES_LISTED]
    assert data["acl"] == "DENY User:ANONYMOUS from * DESCRIBE on TOPIC:PREFIXED:denied-"
    assert sink.dropped == 0


def test_denial_records_past_the_rate_are_summarised_in_the_audit_topic(
    start: Callable[..., InProcessBroker],
) -> None:
    broker = start(**AUTHORIZER, **{"contextplane.audit.denial.records.per.second": "2"})
    deny_describe_of_denied_topics(broker.bootstrap)
    metadata_of(broker.bootstrap, ["denied-a", "denied-b"], requests=7)

    def summaries() -> list[dict[str, Any]]:
        return [
            e["data"]
            for e in read_json_topic(broker.bootstrap, AUDIT_TOPIC)
            if e["type"] == "io.contextplane.audit.suppressed"
        ]

    # The sink's flusher summarises the window once it has ended (a second or two).
    [summary] = wait_until(summaries, 30, "the summary of the suppressed denials")
    denials = metadata_denials(broker)
    assert summary["principal"] == "User:ANONYMOUS"
    assert len(denials) + summary["suppressed_records"] == 7
    assert len(denials) <= 2  # within one window; a request may straddle two
    assert summary["suppressed_resources"] == 2 * summary["suppressed_records"]
    assert "suppressed" in broker.log_tail(400)


def audit_topic_configs(bootstrap: str, topic: str = AUDIT_TOPIC) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(10)
    return {name: entry.value for name, entry in entries.items()}


def test_the_audit_topic_is_bounded_in_size_by_default(
    start: Callable[..., InProcessBroker],
) -> None:
    broker = start()
    assert audit_topic_configs(broker.bootstrap)["retention.bytes"] == str(1024**3)
    other = start(**{"contextplane.audit.topic.retention.bytes": "5000000"})
    assert audit_topic_configs(other.bootstrap)["retention.bytes"] == "5000000"


def test_the_read_receipts_topic_is_bounded_in_size_by_default(
    start: Callable[..., InProcessBroker],
) -> None:
    """Any principal that may READ one topic makes receipts by seeking: their topic keeps
    at most contextplane.audit.read.receipts.retention.bytes (1 GiB)."""
    broker = start()
    configs = audit_topic_configs(broker.bootstrap, "__contextplane_read_receipts")
    assert configs["retention.bytes"] == str(1024**3)
    other = start(**{"contextplane.audit.read.receipts.retention.bytes": "6000000"})
    configs = audit_topic_configs(other.bootstrap, "__contextplane_read_receipts")
    assert configs["retention.bytes"] == "6000000"
