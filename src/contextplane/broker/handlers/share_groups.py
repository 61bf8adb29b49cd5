"""Share groups' membership (KIP-932): ShareGroupHeartbeat and ShareGroupDescribe.

Thin, as the consumer group handlers: topics travel by id on the wire and by name in the
coordinator (`ctx.services.shares`), which decides.
"""

from __future__ import annotations

from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.handlers.consumer_groups import by_topic_id
from contextplane.broker.handlers.groups import client_host
from contextplane.coordinators.share_coordinator import ShareCoordinator
from contextplane.coordinators.share_group import ShareHeartbeat, heartbeat_error
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import OPERATIONS_NOT_REQUESTED, ResourceType


def coordinator(ctx: RequestContext) -> ShareCoordinator:
    shares = ctx.services.shares
    assert shares is not None, "share groups are served once the coordinator runs"
    return shares


def other_protocol(ctx: RequestContext, group_id: str) -> bool:
    """A group id is one kind of group: a classic or consumer group's id is not a share
    group's."""
    groups = ctx.groups
    return groups.state.group(group_id) is not None or groups.consumer.group(group_id) is not None


def member_id_valid(member_id: str | None) -> bool:
    """Kafka 4.4's KafkaApis.isMemberIdValid, checked after READ on the group and before
    the topics: not empty, at most 36 UTF-16 code units (Java's String.length)."""
    return member_id is not None and 0 < len(member_id.encode("utf-16-le")) <= 72


async def share_group_heartbeat(ctx: RequestContext, request: Any) -> Reply:
    topics = ctx.topics.topics()

    def partition_count(name: str) -> int:
        record = topics.get(name)
        return 0 if record is None else record.partitions

    names = request.subscribed_topic_names
    if not member_id_valid(request.member_id):
        # Kafka builds the answer from the code alone: its message is not sent.
        result = heartbeat_error(ErrorCode.invalid_request)
    elif names and any(ctx.denied(ResourceType.TOPIC, name) for name in names):
        # One subscribed name the principal may not DESCRIBE refuses the whole heartbeat
        # with the code alone, the group untouched, as Kafka 4.4 (the route asked).
        result = heartbeat_error(ErrorCode.topic_authorization_failed)
    elif other_protocol(ctx, request.group_id):
        result = heartbeat_error(
            ErrorCode.group_id_not_found, f"Group {request.group_id} is not a share group."
        )
    else:
        result = await coordinator(ctx).heartbeat(
            ShareHeartbeat(
                group_id=request.group_id,
                member_id=request.member_id,
                member_epoch=request.member_epoch,
                rack_id=request.rack_id,
                subscribed_topic_names=None if names is None else tuple(names),
                client_id=ctx.header.client_id or "",
                client_host=client_host(ctx),
            ),
            partition_count,
            ctx.topics.generation,  # the table is replaced, never changed in place
            topics,
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


def _described(ctx: RequestContext, group_id: str, include_operations: bool) -> dict[str, Any]:
    empty: dict[str, Any] = {
        "error_message": None,
        "group_id": group_id,
        "group_state": "",
        "group_epoch": 0,
        "assignment_epoch": 0,
        "assignor_name": "",
        "members": [],
        "authorized_operations": OPERATIONS_NOT_REQUESTED,
    }
    if ctx.denied(ResourceType.GROUP, group_id):
        return {**empty, "error_code": ErrorCode.group_authorization_failed}
    if (refused := coordinator(ctx).refused(group_id)) is not None:
        return {**empty, "error_code": refused}  # its shard's leader coordinates it
    group = coordinator(ctx).describe(group_id)
    if group is None:
        message = (
            f"Group {group_id} is not a share group."
            if other_protocol(ctx, group_id)
            else f"Group {group_id} not found."
        )
        return {**empty, "error_code": ErrorCode.group_id_not_found, "error_message": message}
    for member in group["members"]:
        member["assignment"] = {
            "topic_partitions": by_topic_id(ctx, member["assignment"], with_names=True)
        }
    group["authorized_operations"] = (
        ctx.authorized_operations(ResourceType.GROUP, group_id)
        if include_operations
        else OPERATIONS_NOT_REQUESTED
    )
    return group


async def share_group_describe(ctx: RequestContext, request: Any) -> Reply:
    groups = [_described(ctx, g, request.include_authorized_operations) for g in request.group_ids]
    return await ctx.large_reply(len(groups), throttle_time=ctx.throttle_ms, groups=groups)
