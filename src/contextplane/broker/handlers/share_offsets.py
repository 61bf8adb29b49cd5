"""The share-group offsets admin APIs (KIP-932): DescribeShareGroupOffsets,
AlterShareGroupOffsets and DeleteShareGroupOffsets, as Kafka 4.4's KafkaApis and group
coordinator answer them (what `kafka-share-groups.sh --describe --offsets`,
`--reset-offsets` and `--delete-offsets` send).

Thin: the share coordinator (`ctx.services.shares`) keeps the share partitions; here
topics are resolved, authorized and answered one by one. Every answer is as long as its
request (or, for topics=null, as the group's share partitions), so the frame bounds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.handlers.share_groups import coordinator, other_protocol
from contextplane.broker.loopshare import LoopShare
from contextplane.broker.remote_ends import End, Partition, remote_ends
from contextplane.coordinators.share_partition import SharePartition
from contextplane.coordinators.share_shards import ShareKey
from contextplane.errors import KafkaError
from contextplane.metadata.store import MetadataStoreUnavailable
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import Operation, ResourceType, denial_message

_ZERO_ID = uuid.UUID(int=0)
_NO_STATE = -1  # Kafka's uninitialized start offset (and unknown lag)
_UNKNOWN_PARTITION = "This server does not host this topic-partition."
_ALTER, _DELETE = "AlterShareGroupOffsets", "DeleteShareGroupOffsets"
_NON_EMPTY = "The group is not empty."
# The share partitions described: held here, or as stored.
States = dict[ShareKey, SharePartition]


def _topic_id(ctx: RequestContext, name: str) -> uuid.UUID | None:
    record = ctx.topics.topics().get(name)
    return None if record is None else uuid.UUID(bytes=record.topic_id)


# -- DescribeShareGroupOffsets ---------------------------------------------------------


def _described_partition(
    ctx: RequestContext, states: States, ends: dict[Partition, End], key: ShareKey
) -> dict[str, Any]:
    """One partition's SPSO and lag. Kafka's lag: high watermark - SPSO - the in-flight
    records already done; -1 (both) where the group has no state for the partition. The
    high watermark is the log's here, else in `ends` (asked of its leader)."""
    _, topic, index = key
    entry: dict[str, Any] = {
        "partition_index": index,
        "start_offset": _NO_STATE,
        "leader_epoch": 0,
        "lag": _NO_STATE,
        "error_code": ErrorCode.none,
        "error_message": None,
    }
    state = states.get(key)
    if state is None:
        return entry
    entry["start_offset"] = state.start_offset
    end = ends.get((topic, index))
    if isinstance(end, ErrorCode):  # as Kafka: the end offset could not be read
        entry["error_code"] = end
        return entry
    if end is None:
        try:
            log = ctx.log.partition(topic, index)
        except KafkaError as exc:
            entry.update(error_code=exc.code, error_message=str(exc) or None)
            return entry
        end = (log.high_watermark, log.leader_epoch)
    entry["leader_epoch"] = end[1]
    entry["lag"] = end[0] - state.start_offset - state.delivery_complete_count()
    return entry


def _describe_group(
    ctx: RequestContext,
    group: Any,
    stated: dict[str, list[tuple[str, int]]],
    states: States | None,
    ends: dict[Partition, End],
) -> dict[str, Any]:
    """`stated`: each group's share partitions (topic, index), for topics=null; `ends`:
    the high watermarks of those other brokers lead."""
    group_id = group.group_id
    answer: dict[str, Any] = {
        "group_id": group_id,
        "topics": [],
        "error_code": ErrorCode.none,
        "error_message": None,
    }
    if ctx.denied(ResourceType.GROUP, group_id):
        error = ErrorCode.group_authorization_failed
        return {**answer, "error_code": error, "error_message": denial_message(ResourceType.GROUP)}
    if states is None:  # the store did not answer: retriable
        return {**answer, "error_code": ErrorCode.coordinator_not_available}
    if group.topics is None:
        # Every partition the group has state for, of the topics the principal may
        # describe (the others left out silently, as Kafka does).
        wanted: dict[str, list[int]] = {}
        for topic, index in stated.get(group_id, ()):
            if ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, topic):
                wanted.setdefault(topic, []).append(index)
        requested = [(topic, indexes, False) for topic, indexes in wanted.items()]
    else:
        requested = [
            (
                t.topic_name,
                [int(p) for p in t.partitions],
                ctx.denied(ResourceType.TOPIC, t.topic_name),
            )
            for t in group.topics
        ]
    for name, indexes, denied in requested:
        topic_id = _topic_id(ctx, name)
        partitions = []
        for index in indexes:
            if denied:
                partitions.append(
                    {
                        "partition_index": index,
                        "start_offset": _NO_STATE,
                        "leader_epoch": 0,
                        "error_code": ErrorCode.topic_authorization_failed,
                        "error_message": denial_message(ResourceType.TOPIC),
                    }
                )
            elif topic_id is None:  # as Kafka: absent data, not an error
                partitions.append(
                    {
                        "partition_index": index,
                        "start_offset": _NO_STATE,
                        "leader_epoch": 0,
                        "error_code": ErrorCode.none,
                    }
                )
            else:
                key = (group_id, name, index)
                partitions.append(_described_partition(ctx, states, ends, key))
        answer["topics"].append(
            {"topic_name": name, "topic_id": topic_id or _ZERO_ID, "partitions": partitions}
        )
    return answer


def _answered_partitions(
    ctx: RequestContext,
    request: Any,
    stated: dict[str, list[tuple[str, int]]],
    states: States | None,
) -> set[Partition]:
    """The partitions the answer will show a lag for: of the groups and topics the
    principal may describe, those requested (all with state, for topics=null) that have
    state. Only these are asked of other leaders: a refused or unrequested one costs
    no inter-broker request."""
    if states is None:
        return set()
    wanted: set[Partition] = set()
    for group in request.groups:
        group_id = group.group_id
        if ctx.denied(ResourceType.GROUP, group_id):
            continue
        if group.topics is None:
            wanted.update(
                (topic, index)
                for topic, index in stated.get(group_id, ())
                if ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, topic)
            )
            continue
        for t in group.topics:
            if ctx.denied(ResourceType.TOPIC, t.topic_name):
                continue
            wanted.update(
                (t.topic_name, int(index))
                for index in t.partitions
                if (group_id, t.topic_name, int(index)) in states
            )
    return wanted


async def describe(ctx: RequestContext, request: Any) -> Reply:
    """A group named twice is answered once (the admin client never repeats one): a
    request repeating a group with many share partitions would otherwise be answered
    with each of them as many times."""
    share = LoopShare()
    stated: dict[str, list[tuple[str, int]]] = {}
    states: States | None = None
    with contextlib.suppress(MetadataStoreUnavailable):
        states = await coordinator(ctx).described_partitions({g.group_id for g in request.groups})
    if any(g.topics is None for g in request.groups):
        for group_id, topic, index in sorted(states or ()):
            stated.setdefault(group_id, []).append((topic, index))
    ends = await remote_ends(ctx, _answered_partitions(ctx, request, stated, states))
    groups = []
    items = 0
    seen: set[str] = set()
    for group in request.groups:
        if group.group_id in seen:
            continue
        seen.add(group.group_id)
        if share.due():
            await asyncio.sleep(0)
        described = _describe_group(ctx, group, stated, states, ends)
        items += sum(len(t["partitions"]) for t in described["topics"]) + 1
        groups.append(described)
    return await ctx.large_reply(items, throttle_time=ctx.throttle_ms, groups=groups)


# -- AlterShareGroupOffsets ------------------------------------------------------------


def _partition_results(partitions: Any, code: ErrorCode, message: str | None) -> list[Any]:
    return [
        {"partition_index": p.partition_index, "error_code": code, "error_message": message}
        for p in partitions
    ]


def _group_error(
    ctx: RequestContext, api: str, group_id: str, code: ErrorCode, message: str | None
) -> Reply:
    """A group-level error of Alter/DeleteShareGroupOffsets, audited."""
    ctx.audit.record(ctx, api, "group", group_id, code)
    return ctx.reply(
        throttle_time=ctx.throttle_ms, error_code=code, error_message=message, responses=[]
    )


def _group_refused(ctx: RequestContext, api: str, group_id: str, known: bool) -> Reply | None:
    """The group-level refusals of the two changing APIs, in Kafka's order (`known`: the
    group must have share state or members, as DeleteShareGroupOffsets asks); None: go on."""
    shares = coordinator(ctx)
    refusal: tuple[ErrorCode, str | None] | None = None
    if not group_id:
        refusal = (ErrorCode.invalid_group_id, None)
    elif (not_here := shares.refused(group_id)) is not None:
        refusal = (not_here, None)  # its shard's leader coordinates it
    elif other_protocol(ctx, group_id):
        refusal = (ErrorCode.group_id_not_found, f"Group {group_id} is not a share group.")
    elif known and not shares.knows(group_id):
        refusal = (ErrorCode.group_id_not_found, f"Share group {group_id} not found.")
    elif shares.has_members(group_id):
        refusal = (ErrorCode.non_empty_group, _NON_EMPTY)
    return None if refusal is None else _group_error(ctx, api, group_id, *refusal)


async def alter(ctx: RequestContext, request: Any) -> Reply:
    group_id = request.group_id
    if (refused := _group_refused(ctx, _ALTER, group_id, known=False)) is not None:
        return refused
    topics = ctx.topics.topics()
    responses = []
    starts: dict[tuple[str, int], int] = {}
    accepted: list[dict[str, Any]] = []
    for topic in request.topics:
        name = topic.topic_name
        record = topics.get(name)
        entry: dict[str, Any] = {"topic_name": name, "topic_id": _ZERO_ID, "partitions": []}
        responses.append(entry)
        if ctx.denied(ResourceType.TOPIC, name):
            entry["partitions"] = _partition_results(
                topic.partitions,
                ErrorCode.topic_authorization_failed,
                denial_message(ResourceType.TOPIC),
            )
            continue
        if record is None:
            entry["partitions"] = _partition_results(
                topic.partitions, ErrorCode.unknown_topic_or_partition, _UNKNOWN_PARTITION
            )
            continue
        entry["topic_id"] = uuid.UUID(bytes=record.topic_id)
        for p in topic.partitions:
            index, start = int(p.partition_index), int(p.start_offset)
            result = {"partition_index": index, "error_code": ErrorCode.none, "error_message": None}
            if not 0 <= index < record.partitions:
                result.update(
                    error_code=ErrorCode.unknown_topic_or_partition,
                    error_message=_UNKNOWN_PARTITION,
                )
            elif start < 0:  # an SPSO is an offset: a negative one would never be reached
                result.update(
                    error_code=ErrorCode.invalid_request,
                    error_message=f"The start offset {start} is negative.",
                )
            else:
                starts[(name, index)] = start
                accepted.append(result)
            entry["partitions"].append(result)
    code = await coordinator(ctx).alter_offsets(group_id, starts) if starts else ErrorCode.none
    if code == ErrorCode.non_empty_group:
        return _group_error(ctx, _ALTER, group_id, code, _NON_EMPTY)
    if code != ErrorCode.none:
        for result in accepted:
            result.update(error_code=code, error_message=None)
    changed = ",".join(f"{t}-{i}={o}" for (t, i), o in starts.items())
    ctx.audit.record(ctx, _ALTER, "group", group_id, code, {"partitions": changed})
    # Every partition named is answered, altered or not (30,000 unknown ones held the
    # loop 3 s when counted by the altered ones).
    answered = len(responses) + sum(len(entry["partitions"]) for entry in responses)
    return await ctx.large_reply(
        answered, throttle_time=ctx.throttle_ms, error_code=ErrorCode.none, responses=responses
    )


# -- DeleteShareGroupOffsets -----------------------------------------------------------


async def delete(ctx: RequestContext, request: Any) -> Reply:
    group_id = request.group_id
    shares = coordinator(ctx)
    if (refused := _group_refused(ctx, _DELETE, group_id, known=True)) is not None:
        return refused
    topics = ctx.topics.topics()
    try:  # held here or only stored (not served since a restart, or led elsewhere)
        with_state = {key[1] for key in await shares.described_partitions({group_id})}
    except MetadataStoreUnavailable:
        return _group_error(ctx, _DELETE, group_id, ErrorCode.coordinator_not_available, None)
    responses: list[dict[str, Any]] = []
    deleted: dict[str, dict[str, Any]] = {}
    for topic in request.topics:
        name = topic.topic_name
        record = topics.get(name)
        entry: dict[str, Any] = {
            "topic_name": name,
            "topic_id": _ZERO_ID if record is None else uuid.UUID(bytes=record.topic_id),
            "error_code": ErrorCode.none,
            "error_message": None,
        }
        if ctx.denied(ResourceType.TOPIC, name):
            entry.update(
                error_code=ErrorCode.topic_authorization_failed,
                error_message=denial_message(ResourceType.TOPIC),
            )
        elif record is None:
            entry.update(
                error_code=ErrorCode.unknown_topic_or_partition, error_message=_UNKNOWN_PARTITION
            )
        elif name not in with_state:
            entry.update(
                error_code=ErrorCode.unknown_topic_or_partition,
                error_message="There is no offset information to delete.",
            )
        else:
            deleted[name] = entry
        responses.append(entry)
    code = await shares.delete_offsets(group_id, list(deleted)) if deleted else ErrorCode.none
    if code == ErrorCode.non_empty_group:  # a member joined while the store was written
        return _group_error(ctx, _DELETE, group_id, code, _NON_EMPTY)
    for entry in deleted.values() if code != ErrorCode.none else ():
        entry.update(error_code=code, error_message=None)
    ctx.audit.record(ctx, _DELETE, "group", group_id, code, {"topics": ",".join(deleted)})
    return await ctx.large_reply(
        len(responses),
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        responses=responses,
    )
