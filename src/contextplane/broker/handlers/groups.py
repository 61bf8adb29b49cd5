"""Consumer group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete (the
KIP-848 APIs are in `consumer_groups.py`).

Thin: each handler turns the versioned request into plain values, asks the group
coordinator (`ctx.groups`), and builds the versioned response. JoinGroup and
SyncGroup may have to wait for other members; they return an awaitable then, so the
connection keeps handling requests meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Callable
from typing import Any

from contextplane.broker.context import Reply, RequestContext, later
from contextplane.broker.loopshare import LoopShare
from contextplane.broker.pipeline import allowed_late
from contextplane.coordinators.committed_offsets import OffsetCommitEntry
from contextplane.coordinators.consumer_group.regex import RegexTopics
from contextplane.coordinators.group_state import GroupState, JoinRequest, SyncRequest
from contextplane.coordinators.txn_shards import TXN_STATE_TOPIC
from contextplane.errors import DependencyUnavailable
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import OFFSETS_TOPIC, partition_for
from contextplane.security.acls import (
    CLUSTER_NAME,
    OPERATIONS_NOT_REQUESTED,
    Operation,
    ResourceType,
    denial_error,
)

GROUP_KEY_TYPE = 0
TRANSACTION_KEY_TYPE = 1
SHARE_KEY_TYPE = 2
_KEY_RESOURCES = {
    GROUP_KEY_TYPE: ResourceType.GROUP,
    TRANSACTION_KEY_TYPE: ResourceType.TRANSACTIONAL_ID,
}


_ERROR_MESSAGES = {
    ErrorCode.coordinator_not_available: "The coordinator is not available.",
    ErrorCode.invalid_request: (
        "This most likely occurs because of a request being malformed by the client library "
        "or the message was sent to an incompatible broker. See the broker logs for more "
        "details."
    ),
}


def _ms(value: Any) -> int:
    if isinstance(value, datetime.timedelta):
        return int(value / datetime.timedelta(milliseconds=1))
    return int(value)


def _later(future: asyncio.Future[dict[str, Any]], build: Callable[[dict[str, Any]], Any]) -> Reply:
    """The response now if the coordinator already answered, else an awaitable of it."""
    if future.done():
        return Reply(body=build(future.result()))
    out: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def done(f: asyncio.Future[dict[str, Any]]) -> None:
        if out.done():
            return
        try:
            out.set_result(build(f.result()))
        except Exception as exc:  # noqa: BLE001 - surfaced by the response writer
            out.set_exception(exc)

    future.add_done_callback(done)
    return later(out)


def client_host(ctx: RequestContext) -> str:
    host = ctx.peer.rsplit(":", 1)[0] if ":" in ctx.peer else ctx.peer
    return "/" + host


def regex_topics(ctx: RequestContext, topics: dict[str, Any]) -> RegexTopics:
    """What a consumer group's regexes may match in this request: every topic, internal
    ones too, as Kafka's TopicRegexResolver; then only those the principal may DESCRIBE,
    decided quietly (Kafka's Action with logIfDenied=false)."""

    def describable(found: frozenset[str]) -> frozenset[str]:
        return allowed_late(ctx, Operation.DESCRIBE, ResourceType.TOPIC, found)

    return RegexTopics(lambda: topics, describable)


# -- FindCoordinator -----------------------------------------------------------------


def _coordinator(ctx: RequestContext, key_type: int, key: str) -> tuple[ErrorCode, int, str, int]:
    resource = _KEY_RESOURCES.get(key_type)
    if resource is not None and ctx.denied(resource, key):
        return denial_error(resource), -1, "", -1
    if key_type == GROUP_KEY_TYPE:
        return _shard_coordinator(ctx, key, OFFSETS_TOPIC)
    if key_type == TRANSACTION_KEY_TYPE:
        return _shard_coordinator(ctx, key, TXN_STATE_TOPIC)
    if key_type == SHARE_KEY_TYPE and _share_partition_key(key):
        # Any broker answers for the share-partition state (it is in the shared store).
        host, port = ctx.advertised()
        return ErrorCode.none, ctx.cluster.node_id, host, port
    return ErrorCode.invalid_request, -1, "", -1


def _shard_coordinator(
    ctx: RequestContext, key: str, shards: str
) -> tuple[ErrorCode, int, str, int]:
    """The leader of the key's partition of `shards` (`__consumer_offsets` for a group,
    `__transaction_state` for a transactional id: RFC 0004 §3), with its endpoint on the
    listener the request came in on; COORDINATOR_NOT_AVAILABLE while the partition has
    no live leader."""
    topic = ctx.topics.topics().get(shards)
    if topic is not None:
        cluster = ctx.cluster
        node, _ = cluster.leaders.of(shards, partition_for(key, topic.partitions))
        if node == cluster.node_id:
            host, port = ctx.advertised()
            return ErrorCode.none, node, host, port
        for broker in cluster.registry.brokers:
            endpoint = broker.endpoint(ctx.connection.listener)
            if broker.node_id == node and endpoint is not None:
                return ErrorCode.none, node, endpoint.host, endpoint.port
    return ErrorCode.coordinator_not_available, -1, "", -1


def _share_partition_key(key: str) -> bool:
    """Kafka's share coordinator key, "groupId:topicId:partition" (else INVALID_REQUEST)."""
    parts = key.rsplit(":", 2)
    return len(parts) == 3 and all(parts) and parts[2].isdigit()


async def find_coordinator(ctx: RequestContext, request: Any) -> Reply:
    key_type = getattr(request, "key_type", GROUP_KEY_TYPE)
    if ctx.api_version >= 4:
        coordinators = []
        for key in request.coordinator_keys:
            code, node_id, host, port = _coordinator(ctx, key_type, key)
            coordinators.append(
                {
                    "key": key,
                    "node_id": node_id,
                    "host": host,
                    "port": port,
                    "error_code": code,
                    # Kafka leaves the field at its default.
                    "error_message": "",
                }
            )
        return ctx.reply(throttle_time=ctx.throttle_ms, coordinators=coordinators)
    code, node_id, host, port = _coordinator(ctx, key_type, request.key)
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=code,
        error_message=_ERROR_MESSAGES.get(code, code.name.upper()),
        node_id=node_id,
        host=host,
        port=port,
    )


# -- membership ----------------------------------------------------------------------


async def join_group(ctx: RequestContext, request: Any) -> Reply:
    version = ctx.api_version
    session_timeout_ms = _ms(request.session_timeout)
    rebalance_timeout_ms = _ms(request.rebalance_timeout) if version >= 1 else session_timeout_ms
    join = JoinRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        protocol_type=request.protocol_type,
        protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
        session_timeout_ms=session_timeout_ms,
        rebalance_timeout_ms=rebalance_timeout_ms,
        group_instance_id=getattr(request, "group_instance_id", None),
        client_id=ctx.header.client_id or "",
        client_host=client_host(ctx),
        api_version=version,
        reason=getattr(request, "reason", None),
    )

    def build(result: dict[str, Any]) -> Any:
        values = dict(result)
        name = values.get("protocol_name")
        if version < 7 and name is None:
            values["protocol_name"] = ""
        elif version >= 7 and name == "":
            values["protocol_name"] = None
        return ctx.response(values, throttle_time=0)

    # A classic member joining a consumer group is assigned from the topic table.
    topics = ctx.topics.topics()

    def partition_count(name: str) -> int:
        record = topics.get(name)
        return 0 if record is None else record.partitions

    joined = ctx.groups.join_group(
        join,
        partition_count,
        ctx.topics.generation,
        regex_topics(ctx, topics),
    )
    return _later(joined, build)


async def sync_group(ctx: RequestContext, request: Any) -> Reply:
    version = ctx.api_version
    protocol_type = getattr(request, "protocol_type", None)
    protocol_name = getattr(request, "protocol_name", None)

    def build(result: dict[str, Any]) -> Any:
        return ctx.response(result, throttle_time=0)

    if version >= 5 and (protocol_type is None or protocol_name is None):
        # From v5 both fields are mandatory.
        refused = {
            "error_code": ErrorCode.inconsistent_group_protocol,
            "protocol_type": None,
            "protocol_name": None,
            "assignment": b"",
        }
        return Reply(body=build(refused))
    sync = SyncRequest(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        assignments={a.member_id: bytes(a.assignment) for a in request.assignments},
        group_instance_id=getattr(request, "group_instance_id", None),
        protocol_type=protocol_type,
        protocol_name=protocol_name,
    )
    return _later(ctx.groups.sync_group(sync), build)


async def heartbeat(ctx: RequestContext, request: Any) -> Reply:
    code = ctx.groups.heartbeat(
        request.group_id,
        request.member_id,
        request.generation_id,
        getattr(request, "group_instance_id", None),
    )
    return ctx.reply(throttle_time=ctx.throttle_ms, error_code=code)


async def leave_group(ctx: RequestContext, request: Any) -> Reply:
    if ctx.api_version >= 3:
        members = [(m.member_id, m.group_instance_id) for m in request.members]
    else:
        members = [(request.member_id, None)]
    top, responses = ctx.groups.leave_group(request.group_id, members)
    if ctx.api_version < 3:
        # Single-member versions carry the member's error at the top level.
        if top == ErrorCode.none:
            top = next(
                (r["error_code"] for r in responses if r["error_code"] != ErrorCode.none),
                ErrorCode.none,
            )
        return ctx.reply(throttle_time=ctx.throttle_ms, error_code=top)
    return ctx.reply(throttle_time=ctx.throttle_ms, error_code=top, members=responses)


# -- offsets -------------------------------------------------------------------------


async def offset_commit(ctx: RequestContext, request: Any) -> Reply:
    by_id = ctx.api_version >= 10  # KIP-848: v10 names topics by id only
    if not by_id:
        await ctx.topics.find_missing(topic.name for topic in request.topics)
    topics = ctx.topics.topics()
    results: dict[Any, dict[str, Any]] = {}
    entries: list[OffsetCommitEntry] = []
    slots: list[dict[str, Any]] = []
    for topic, name in ctx.topics.names_of(request.topics, by_id):
        key = topic.topic_id if by_id else name
        if key not in results:  # a topic listed twice answers once, as Kafka merges it
            results[key] = {"name": name, "topic_id": getattr(topic, "topic_id", None)}
            results[key]["partitions"] = []
        out = results[key]["partitions"]
        record = topics.get(name) if name is not None else None
        refused = name is not None and ctx.denied(ResourceType.TOPIC, name)
        for partition in topic.partitions:
            slot = {"partition_index": partition.partition_index, "error_code": ErrorCode.none}
            out.append(slot)
            if name is None:  # an id no topic has
                slot["error_code"] = ErrorCode.unknown_topic_id
                continue
            if refused:
                slot["error_code"] = ErrorCode.topic_authorization_failed
                continue
            if record is None or not 0 <= partition.partition_index < record.partitions:
                slot["error_code"] = ErrorCode.unknown_topic_or_partition
                continue
            entries.append(
                OffsetCommitEntry(
                    topic=name,
                    partition=partition.partition_index,
                    offset=partition.committed_offset,
                    leader_epoch=getattr(partition, "committed_leader_epoch", -1),
                    metadata=partition.committed_metadata,
                )
            )
            slots.append(slot)
    if entries:
        codes = await ctx.groups.commit_offsets(
            request.group_id,
            request.member_id,
            getattr(request, "group_instance_id", None),
            request.generation_id_or_member_epoch,
            ctx.api_version,
            entries,
        )
        for slot, code in zip(slots, codes, strict=True):
            slot["error_code"] = code
    return ctx.reply(throttle_time=ctx.throttle_ms, topics=list(results.values()))


def _mark_unstable(unstable: set[tuple[str, int]], found: list[Any]) -> None:
    """Partitions with offsets pending in a transaction: UNSTABLE_OFFSET_COMMIT (the
    client retries until the transaction completes)."""
    if not unstable:
        return
    for topic in found:
        for partition in topic["partitions"]:
            if (topic["name"], partition["partition_index"]) in unstable:
                partition.update(
                    committed_offset=-1,
                    committed_leader_epoch=-1,
                    metadata="",
                    error_code=ErrorCode.unstable_offset_commit,
                )


async def _fetch_group(
    ctx: RequestContext,
    group_id: str,
    topics: Any,
    require_stable: bool,
    member: tuple[str | None, int] = (None, -1),
) -> tuple[ErrorCode, list[Any]]:
    if ctx.denied(ResourceType.GROUP, group_id):
        return ErrorCode.group_authorization_failed, []
    by_id = ctx.api_version >= 10  # KIP-848: v10 names topics by id only
    wanted = None
    refused: list[tuple[Any, ErrorCode]] = []
    if topics is not None:
        wanted = []
        for t, name in ctx.topics.names_of(topics, by_id):
            if name is None:
                refused.append((t, ErrorCode.unknown_topic_id))
            elif ctx.denied(ResourceType.TOPIC, name):
                refused.append((t, ErrorCode.topic_authorization_failed))
            else:
                wanted.append((name, list(t.partition_indexes)))
    code, found = await ctx.groups.fetch_offsets(group_id, wanted, *member)
    if require_stable:
        _mark_unstable(ctx.transactions.unstable_offsets(group_id), found)
    if topics is None:  # all topics: the ones the principal may not describe are left out
        found = [t for t in found if ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, t["name"])]
    if by_id:
        found = _with_topic_ids(ctx, found)
    # Kafka lists the refused topics' partitions after the others.
    for t, error in refused:
        partitions = [
            {
                "partition_index": index,
                "committed_offset": -1,
                "committed_leader_epoch": -1,
                "metadata": "",
                "error_code": error,
            }
            for index in t.partition_indexes
        ]
        found.append(
            {"name": getattr(t, "name", None), "topic_id": getattr(t, "topic_id", None)}
            | {"partitions": partitions}
        )
    return code, found


def _with_topic_ids(ctx: RequestContext, found: list[Any]) -> list[Any]:
    """Each topic's id beside its name (v10); a topic that no longer exists has no id to
    name it by, so it is left out."""
    known = ctx.topics.topics()
    named = []
    for topic in found:
        record = known.get(topic["name"])
        if record is not None:
            named.append(topic | {"topic_id": uuid.UUID(bytes=record.topic_id)})
    return named


async def offset_fetch(ctx: RequestContext, request: Any) -> Reply:
    version = ctx.api_version
    if version >= 8:
        groups = []
        for group in request.groups:
            # v9+ (KIP-848) names the member, whose epoch a consumer group checks.
            member = (getattr(group, "member_id", None), getattr(group, "member_epoch", -1))
            code, topics = await _fetch_group(
                ctx, group.group_id, group.topics, request.require_stable, member
            )
            groups.append({"group_id": group.group_id, "topics": topics, "error_code": code})
        return ctx.reply(throttle_time=ctx.throttle_ms, groups=groups)
    code, topics = await _fetch_group(
        ctx, request.group_id, request.topics, getattr(request, "require_stable", False)
    )
    if version < 2 and code != ErrorCode.none:
        # No top-level error before v2: it goes on every partition.
        for topic in topics:
            for partition in topic["partitions"]:
                partition.update(committed_offset=-1, metadata="", error_code=code)
    return ctx.reply(throttle_time=ctx.throttle_ms, topics=topics, error_code=code)


async def offset_delete(ctx: RequestContext, request: Any) -> Reply:
    topics = [
        (t.name, [p.partition_index for p in t.partitions])
        for t in request.topics
        if not ctx.denied(ResourceType.TOPIC, t.name)
    ]
    try:
        code, results = await ctx.groups.delete_offsets(request.group_id, topics)
    except DependencyUnavailable as exc:  # the store cannot write now: retriable
        code, results = exc.code, []
    for t in request.topics if code == ErrorCode.none else ():
        if ctx.denied(ResourceType.TOPIC, t.name):
            error = ErrorCode.topic_authorization_failed
            results.append(
                {
                    "name": t.name,
                    "partitions": [
                        {"partition_index": p.partition_index, "error_code": error}
                        for p in t.partitions
                    ],
                }
            )
    partitions = ",".join(f"{name}-{index}" for name, indexes in topics for index in indexes)
    ctx.audit.record(
        ctx, "OffsetDelete", "group", request.group_id, code, {"partitions": partitions}
    )
    return ctx.reply(throttle_time=ctx.throttle_ms, error_code=code, topics=results)


# -- group administration ------------------------------------------------------------


async def list_groups(ctx: RequestContext, request: Any) -> Reply:
    states, types = getattr(request, "states_filter", ()), getattr(request, "types_filter", ())
    code, groups = ctx.groups.list_groups(states, types)
    shares = ctx.services.shares
    if code == ErrorCode.none and shares is not None:
        groups += shares.list_groups(states, types)
    if not ctx.allowed(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        # Without DESCRIBE on the cluster: the groups the principal may describe.
        groups = [
            g for g in groups if ctx.allowed(Operation.DESCRIBE, ResourceType.GROUP, g["group_id"])
        ]
    return ctx.reply(throttle_time=ctx.throttle_ms, error_code=code, groups=groups)


async def describe_groups(ctx: RequestContext, request: Any) -> Reply:
    include_operations = getattr(request, "include_authorized_operations", False)
    # A request may name 200,000 groups: each is described on its own, the loop given
    # back every few milliseconds (as ConsumerGroupDescribe does).
    share = LoopShare()
    refused: list[str] = []
    groups: list[dict[str, Any]] = []
    for group_id in request.groups:
        if share.due():
            await asyncio.sleep(0)
        if ctx.denied(ResourceType.GROUP, group_id):
            refused.append(group_id)
            continue
        for group in ctx.groups.describe_groups([group_id]):
            if ctx.api_version >= 6:
                _group_id_not_found(group)
            group["authorized_operations"] = (
                ctx.authorized_operations(ResourceType.GROUP, group_id)
                if include_operations and group["error_code"] == ErrorCode.none
                else OPERATIONS_NOT_REQUESTED
            )
            groups.append(group)
    # Kafka lists the refused groups after the others.
    for group_id in refused:
        groups.append(
            {
                "group_id": group_id,
                "error_code": ErrorCode.group_authorization_failed,
                "group_state": "",
                "protocol_type": "",
                "protocol_data": "",
                "members": [],
                "authorized_operations": OPERATIONS_NOT_REQUESTED,
            }
        )
    return await ctx.large_reply(len(groups), throttle_time=ctx.throttle_ms, groups=groups)


def _group_id_not_found(group: dict[str, Any]) -> None:
    """DescribeGroups v6+ (KIP-1043): a group that does not exist is GROUP_ID_NOT_FOUND,
    with Kafka's message, where older versions describe it as Dead without an error."""
    if group["error_code"] == ErrorCode.none and group["group_state"] == GroupState.DEAD.value:
        group["error_code"] = ErrorCode.group_id_not_found
        group["error_message"] = f"Group {group['group_id']} not found."


async def delete_groups(ctx: RequestContext, request: Any) -> Reply:
    refused = [g for g in request.groups_names if ctx.denied(ResourceType.GROUP, g)]
    allowed = [g for g in request.groups_names if g not in refused]
    shares = ctx.services.shares
    share_ids = {g for g in allowed if shares is not None and shares.knows(g)}
    classic = [g for g in allowed if g not in share_ids]
    results = await ctx.groups.delete_groups(classic) if classic else []
    for group_id in share_ids:
        assert shares is not None
        results.append({"group_id": group_id, "error_code": await shares.delete_group(group_id)})
    error = ErrorCode.group_authorization_failed
    results.extend({"group_id": g, "error_code": error} for g in refused)
    for result in results:
        ctx.audit.record(ctx, "DeleteGroups", "group", result["group_id"], result["error_code"])
    return ctx.reply(throttle_time=ctx.throttle_ms, results=results)
