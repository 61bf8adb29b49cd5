"""ElectLeaders (API 43, v0-2): with one replica per partition, the preferred replica is
the partition's target broker (RFC 0004 §2), so a PREFERRED election is
ELECTION_NOT_NEEDED while the target leads, PREFERRED_LEADER_NOT_AVAILABLE while the
target is not a live broker, and otherwise accepted (NONE): the target takes the
partition as the brokers reconcile, as a move does. UNCLEAN is ELECTION_NOT_NEEDED for a
partition whose leader is live (there is no ISR to lose) and ELIGIBLE_LEADERS_NOT_AVAILABLE
for one whose only replica is offline, as Kafka answers with one replica; claiming an
offline dirty partition (RFC 0004 §5) is not built. Errors and messages as Kafka 4.4's.
Every partition's result is audited."""

from __future__ import annotations

import asyncio
from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.loopshare import LoopShare
from contextplane.limits import PARTITIONS_PER_REQUEST_MAX
from contextplane.metadata.records import PartitionRecord
from contextplane.protocol.error_codes import ErrorCode

PREFERRED, UNCLEAN = 0, 1
NOT_NEEDED = (ErrorCode.election_not_needed, "Leader election not needed for topic partition.")
PARTITIONS_MAX = PARTITIONS_PER_REQUEST_MAX  # as many as one CreateTopics may create

Result = tuple[ErrorCode, str | None]


def elect(row: PartitionRecord, election: int, live: set[int]) -> Result:
    """The election's result for one partition, given the live brokers."""
    name = f"{row.topic}-{row.partition}"
    if election == UNCLEAN:
        if row.leader_node in live:
            return NOT_NEEDED
        return ErrorCode.eligible_leaders_not_available, f"No live replica of {name}."
    target = row.target_node if row.target_node != -1 else row.leader_node
    if target == row.leader_node and target in live:
        return NOT_NEEDED
    if target not in live:
        return (
            ErrorCode.preferred_leader_not_available,
            f"The preferred leader of {name}, broker {target}, is not live.",
        )
    return ErrorCode.none, None  # the target takes it as the brokers reconcile


async def elect_leaders(ctx: RequestContext, request: Any) -> Reply:
    election = getattr(request, "election_type", PREFERRED)
    asked = request.topic_partitions
    if election not in (PREFERRED, UNCLEAN):
        return _whole(ctx, request, ErrorCode.invalid_request)
    if asked is not None and sum(len(t.partitions) for t in asked) > PARTITIONS_MAX:
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=ErrorCode.invalid_request,
            replica_election_results=[],
        )
    store = ctx.log.metadata
    live = {ctx.cluster.node_id, *ctx.cluster.registry.live_ids}
    results: dict[str, list[dict[str, Any]]] = {}
    if asked is None:  # every partition; those needing no election are left out (Kafka)
        for row in await store.partitions():
            error, message = elect(row, election, live)
            entries = results.setdefault(row.topic, [])
            if error != ErrorCode.election_not_needed:
                entries.append(_entry(ctx, row.topic, row.partition, error, message))
    else:
        # One store read per topic named with partitions: a topic listed without any (as
        # often as a frame holds) is answered with none, and costs no read (Kafka's).
        rows_of: dict[str, dict[int, PartitionRecord]] = {}
        share = LoopShare()
        for topic in asked:
            if share.due():
                await asyncio.sleep(0)
            entries = results.setdefault(topic.topic, [])
            if not topic.partitions:
                continue
            rows = rows_of.get(topic.topic)
            if rows is None:
                rows = {r.partition: r for r in await store.partitions(topic.topic)}
                rows_of[topic.topic] = rows
            for index in dict.fromkeys(int(p) for p in topic.partitions):
                row = rows.get(index)
                if row is not None:
                    error, message = elect(row, election, live)
                elif rows:
                    error = ErrorCode.unknown_topic_or_partition
                    message = f"No such partition as {topic.topic}-{index}"
                else:
                    error = ErrorCode.unknown_topic_or_partition
                    message = f"No such topic as {topic.topic}"
                entries.append(_entry(ctx, topic.topic, index, error, message))
    return await ctx.large_reply(
        len(results) + sum(len(entries) for entries in results.values()),
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        replica_election_results=[
            {"topic": topic, "partition_result": entries} for topic, entries in results.items()
        ],
    )


def _entry(
    ctx: RequestContext, topic: str, index: int, error: ErrorCode, message: str | None
) -> dict[str, Any]:
    ctx.audit.record(ctx, "ElectLeaders", "partition", f"{topic}-{index}", error)
    return {"partition_id": index, "error_code": error, "error_message": message}


def _whole(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    """Every partition asked for answered with `error`, and the request too (v1+)."""
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=error,
        replica_election_results=[
            {
                "topic": t.topic,
                "partition_result": [
                    {"partition_id": p, "error_code": error, "error_message": None}
                    for p in t.partitions
                ],
            }
            for t in request.topic_partitions or ()
        ],
    )


def refuse(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    return _whole(ctx, request, error)
