"""The consumer group protocol of KIP-848: ConsumerGroupHeartbeat and
ConsumerGroupDescribe.

Thin, as the classic group handlers: topics travel by id on the wire and by name in the
coordinator, so each handler resolves ids with the topic table; the coordinator
(`ctx.groups`) decides.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import uuid
from collections.abc import Iterable
from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.handlers.groups import client_host, regex_topics
from contextplane.broker.loopshare import LoopShare
from contextplane.coordinators.consumer_group.assignors import TopicPartition
from contextplane.coordinators.consumer_group.messages import ConsumerHeartbeat
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import OPERATIONS_NOT_REQUESTED, ResourceType
from contextplane.settings_consumer_groups import consumer_protocol_enabled


def _owned(
    ctx: RequestContext, topic_partitions: Any
) -> tuple[frozenset[TopicPartition] | None, frozenset[str]]:
    """The partitions a heartbeat says its member owns, by name, and the topics it lists
    them under; an id no topic has is dropped (the topic was deleted: the member cannot
    own it any more)."""
    if topic_partitions is None:
        return None, frozenset()
    owned: set[TopicPartition] = set()
    topics: set[str] = set()
    for topic in topic_partitions:
        record = ctx.topics.by_id(topic.topic_id.bytes) if topic.topic_id is not None else None
        if record is not None:
            topics.add(record.name)
            owned.update((record.name, int(p)) for p in topic.partitions)
    return frozenset(owned), frozenset(topics)


def by_topic_id(
    ctx: RequestContext, partitions: Iterable[TopicPartition], with_names: bool = False
) -> list[dict[str, Any]]:
    """Partitions grouped per topic, as the responses' TopicPartitions."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(partitions):
        by_topic.setdefault(topic, []).append(partition)
    known = ctx.topics.topics()
    out = []
    for name, indexes in by_topic.items():
        record = known.get(name)
        if record is None:
            continue
        entry: dict[str, Any] = {
            "topic_id": uuid.UUID(bytes=record.topic_id),
            "partitions": indexes,
        }
        if with_names:
            entry["topic_name"] = name
        out.append(entry)
    return out


def _ms(value: Any) -> int:
    if isinstance(value, datetime.timedelta):
        return int(value / datetime.timedelta(milliseconds=1))
    return int(value)


def _heartbeat_refused(ctx: RequestContext, code: ErrorCode) -> Reply:
    """A heartbeat KafkaApis answers before the coordinator sees it: the code alone."""
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=code,
        error_message=None,
        member_id=None,
        member_epoch=0,
        heartbeat_interval=0,
        assignment=None,
    )


async def consumer_group_heartbeat(ctx: RequestContext, request: Any) -> Reply:
    if not consumer_protocol_enabled(ctx.settings):
        # Kafka answers so when group.coordinator.rebalance.protocols leaves it out (and
        # still lists the API in ApiVersions).
        return _heartbeat_refused(ctx, ErrorCode.unsupported_version)
    names = request.subscribed_topic_names
    if names and any(ctx.denied(ResourceType.TOPIC, name) for name in names):
        # One subscribed name the principal may not DESCRIBE fails the whole heartbeat,
        # the group untouched, as in Kafka 4.4 (the route asked for each name).
        return _heartbeat_refused(ctx, ErrorCode.topic_authorization_failed)
    topics = ctx.topics.topics()

    def partition_count(name: str) -> int:
        record = topics.get(name)
        return 0 if record is None else record.partitions

    member_id = request.member_id
    if not member_id and request.member_epoch == 0 and ctx.api_version == 0:
        # v0 lets the coordinator name a joining member (v1 clients name themselves).
        member_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    owned, owned_topics = _owned(ctx, request.topic_partitions)
    heartbeat = ConsumerHeartbeat(
        group_id=request.group_id,
        member_id=member_id,
        member_epoch=request.member_epoch,
        instance_id=request.instance_id,
        rack_id=request.rack_id,
        rebalance_timeout_ms=_ms(request.rebalance_timeout),
        subscribed_topic_names=None if names is None else tuple(names),
        subscribed_topic_regex=getattr(request, "subscribed_topic_regex", None),
        server_assignor=request.server_assignor,
        owned=owned,
        owned_topics=owned_topics,
        owned_listed=bool(request.topic_partitions),
        client_id=ctx.header.client_id or "",
        client_host=client_host(ctx),
        api_version=ctx.api_version,
    )
    # The topic table is replaced, never changed in place: its generation names it.
    result = await ctx.groups.consumer_group_heartbeat(
        heartbeat, partition_count, ctx.topics.generation, regex_topics(ctx, topics)
    )
    assignment = result["assignment"]
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=result["error_code"],
        error_message=result["error_message"],
        member_id=result["member_id"],
        member_epoch=result["member_epoch"],
        heartbeat_interval=result["heartbeat_interval_ms"],
        assignment=(
            None if assignment is None else {"topic_partitions": by_topic_id(ctx, assignment)}
        ),
    )


def _refused(group_id: str) -> dict[str, Any]:
    return {
        "error_code": ErrorCode.group_authorization_failed,
        "error_message": None,
        "group_id": group_id,
        "group_state": "",
        "group_epoch": 0,
        "assignment_epoch": 0,
        "assignor_name": "",
        "members": [],
        "authorized_operations": OPERATIONS_NOT_REQUESTED,
    }


async def consumer_group_describe(ctx: RequestContext, request: Any) -> Reply:
    if not consumer_protocol_enabled(ctx.settings):
        unsupported = [
            {**_refused(g), "error_code": ErrorCode.unsupported_version} for g in request.group_ids
        ]
        return await ctx.large_reply(
            len(unsupported), throttle_time=ctx.throttle_ms, groups=unsupported
        )
    include_operations = request.include_authorized_operations
    # A request may name 200,000 groups: each is described on its own, the loop given
    # back every few milliseconds (each description holds for its group alone, as Kafka's).
    share = LoopShare()
    refused: list[str] = []
    groups: list[dict[str, Any]] = []
    for group_id in request.group_ids:
        if share.due():
            await asyncio.sleep(0)
        if ctx.denied(ResourceType.GROUP, group_id):
            refused.append(group_id)
            continue
        for group in ctx.groups.consumer_group_describe([group_id]):
            if group["error_code"] == ErrorCode.group_id_not_found and _share_group(ctx, group_id):
                # One id is one group of one kind, as in Kafka's coordinator.
                group["error_message"] = f"Group {group_id} is not a consumer group."
            _describe_members(ctx, group)
            group["authorized_operations"] = (
                ctx.authorized_operations(ResourceType.GROUP, group_id)
                if include_operations and group["error_code"] == ErrorCode.none
                else OPERATIONS_NOT_REQUESTED
            )
            groups.append(group)
    groups.extend(_refused(g) for g in refused)  # Kafka lists refused groups last
    return await ctx.large_reply(len(groups), throttle_time=ctx.throttle_ms, groups=groups)


def _share_group(ctx: RequestContext, group_id: str) -> bool:
    shares = ctx.services.shares
    return shares is not None and shares.knows(group_id)


def _describe_members(ctx: RequestContext, group: dict[str, Any]) -> None:
    """The members' assignments by topic id and name, as the response lists them."""
    for member in group["members"]:
        member["assignment"] = {
            "topic_partitions": by_topic_id(ctx, member["assignment"], with_names=True)
        }
        member["target_assignment"] = {
            "topic_partitions": by_topic_id(ctx, member["target_assignment"], True)
        }
