"""Probes of the admin API: a topic's life (create, describe, describe configs, delete)
and ACLs (described, created, read back and deleted; n-a without an authorizer)."""

from __future__ import annotations

from typing import Any

from contextplane.cli.config import source_name
from contextplane.cli.probes.base import NotApplicable, ProbeContext, ProbeFailure

_RETENTION_MS = "3600000"


def topic_admin(ctx: ProbeContext) -> str:
    admin = ctx.admin()
    topic = ctx.create_topic(partitions=3, config={"retention.ms": _RETENTION_MS})
    # A cluster of several brokers may answer Metadata from one that has not heard yet.
    while (described := admin.list_topics(timeout=ctx.remaining_s()).topics.get(topic)) is None:
        ctx.pause(0.2)
    if described.error is not None or len(described.partitions) != 3:
        shown = described.error or f"{len(described.partitions)} partitions"
        raise ProbeFailure(f"described as {shown}, created with 3 partitions")
    configs = topic_configs(ctx, topic)
    entry = configs.get("retention.ms")
    shown = None if entry is None else (entry.value, source_name(entry.source))
    if shown != (_RETENTION_MS, "DYNAMIC_TOPIC_CONFIG"):
        raise ProbeFailure(f"retention.ms described as {shown}, set to {_RETENTION_MS}")
    ctx.answer(
        admin.delete_topics([topic], operation_timeout=ctx.remaining_s())[topic],
        f"delete topic {topic!r}",
    )
    # Deleted once the cluster's metadata no longer lists it (all topics are asked for:
    # a request naming the topic may create it again where auto-creation is on).
    while topic in admin.list_topics(timeout=ctx.remaining_s()).topics:
        ctx.pause(0.2)
    return (
        f"created a topic of 3 partitions with retention.ms={_RETENTION_MS}, described it "
        "(partitions, DescribeConfigs: DYNAMIC_TOPIC_CONFIG), deleted it"
    )


def topic_configs(ctx: ProbeContext, topic: str) -> dict[str, Any]:
    from confluent_kafka.admin import ConfigResource, ResourceType

    resource = ConfigResource(ResourceType.TOPIC, topic)
    return dict(ctx.answer(ctx.admin().describe_configs([resource])[resource], "describe configs"))


def acls(ctx: ProbeContext) -> str:
    import concurrent.futures

    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    admin = ctx.admin()
    # An ACL on a topic nobody uses, for a principal nobody is: it grants nothing real.
    resource, principal = ctx.unique("acl"), f"User:{ctx.unique('principal')}"
    binding = AclBinding(
        ResourceType.TOPIC,
        resource,
        ResourcePatternType.LITERAL,
        principal,
        "*",
        AclOperation.READ,
        AclPermissionType.ALLOW,
    )
    mine = AclBindingFilter(
        ResourceType.TOPIC,
        resource,
        ResourcePatternType.LITERAL,
        None,  # type: ignore[arg-type]  # any principal
        None,  # type: ignore[arg-type]  # any host
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    try:
        before = admin.describe_acls(mine, request_timeout=ctx.remaining_s()).result(
            timeout=ctx.remaining_s()
        )
    except KafkaException as exc:
        error = exc.args[0]
        if error.name() == "SECURITY_DISABLED":
            raise NotApplicable("the cluster has no authorizer (SECURITY_DISABLED)") from None
        raise ProbeFailure(f"describe ACLs: {error.name()} ({error.str()})") from None
    if before:
        raise ProbeFailure(f"ACLs described on a topic nobody made: {len(before)}")
    ctx.undo.append(lambda: admin.delete_acls([mine])[mine].result(timeout=10))
    try:
        admin.create_acls([binding])[binding].result(timeout=ctx.remaining_s())
    except KafkaException as exc:
        # confluent-kafka answers a DescribeAcls refused with SECURITY_DISABLED as no
        # ACLs, so a cluster without an authorizer is first seen here.
        error = exc.args[0]
        if error.name() == "SECURITY_DISABLED":
            raise NotApplicable("the cluster has no authorizer (SECURITY_DISABLED)") from None
        raise ProbeFailure(f"create ACL: {error.name()} ({error.str()})") from None
    except concurrent.futures.TimeoutError:
        raise ProbeFailure("create ACL: no answer within the probe's time") from None
    found = ctx.answer(admin.describe_acls(mine), "describe ACLs")
    if found != [binding]:
        raise ProbeFailure(f"ACLs read back {found}, created {binding}")
    deleted = ctx.answer(admin.delete_acls([mine])[mine], "delete ACLs")
    left = ctx.answer(admin.describe_acls(mine), "describe ACLs")
    if deleted != [binding] or left:
        raise ProbeFailure(f"delete ACLs deleted {deleted}, left {left}")
    return "described ACLs, created an ALLOW READ ACL, read it back, deleted it"
