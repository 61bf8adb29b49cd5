"""AlterPartitionReassignments (API 45, v0-1) and ListPartitionReassignments (API 46, v0)
over the controller's planned moves (RFC 0004 §6). With one replica per partition a
reassignment names exactly one live broker (else INVALID_REPLICA_ASSIGNMENT, as Kafka's
controller answers an empty list, a duplicate or an unregistered broker, with its
messages); naming the current leader
completes at once (or cancels a move in progress, as Kafka reverting to the original
replicas does); `Replicas: null` cancels a move whose source still leads the partition
(NO_REASSIGNMENT_IN_PROGRESS if none; REASSIGNMENT_IN_PROGRESS once the source has
handed it over: the target claims it). The answer comes when the targets are written;
the move completes as the brokers reconcile.

The writes are the controller's (fenced by its epoch). Another broker forwards the
request to the controller once it has authorized its client
(reassignments_forward.py), as Kafka 4's brokers do; with no controller reachable it
answers NOT_CONTROLLER, on which Kafka's admin client refreshes Metadata and resends to
the `ControllerId` it names (ours names the controller's node). Listing reads the
shared store and is answered by any broker."""

from __future__ import annotations

import asyncio
from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.handlers.reassignments_forward import forward, forwardable
from contextplane.broker.loopshare import LoopShare
from contextplane.cluster.controller import NotController
from contextplane.limits import PARTITIONS_PER_REQUEST_MAX
from contextplane.metadata.records import PartitionRecord
from contextplane.metadata.sql_reassignments import CANCELLED, NONE
from contextplane.protocol.error_codes import ErrorCode

PARTITIONS_MAX = PARTITIONS_PER_REQUEST_MAX  # as many as one CreateTopics may create
Result = tuple[ErrorCode, str | None]
OK: Result = (ErrorCode.none, None)


def check_replicas(replicas: tuple[int, ...], live: set[int]) -> Result | None:
    """Why `replicas` cannot be a partition's assignment (None: it can)."""
    if not replicas:
        return (
            ErrorCode.invalid_replica_assignment,
            "The manual partition assignment includes an empty replica list.",
        )
    for index, broker in enumerate(replicas):
        if broker in replicas[:index]:
            return (
                ErrorCode.invalid_replica_assignment,
                f"The manual partition assignment includes the broker {broker} more than once.",
            )
    for broker in replicas:
        if broker not in live:
            return (
                ErrorCode.invalid_replica_assignment,
                f"The manual partition assignment includes broker {broker}, but no such"
                " broker is registered.",
            )
    if len(replicas) != 1:
        return (
            ErrorCode.invalid_replica_assignment,
            f"The replication factor is 1: name one broker, not {len(replicas)}.",
        )
    return None


def _count(topics: Any) -> int:
    return len(topics) + sum(len(getattr(t, "partitions", ())) for t in topics)


async def alter_partition_reassignments(ctx: RequestContext, request: Any) -> Reply:
    if _count(request.topics) > PARTITIONS_MAX:
        return _whole(ctx, request, ErrorCode.invalid_request, "Too many partitions.")
    controller = ctx.cluster.controller
    registry = ctx.cluster.registry
    if controller is None or not registry.is_controller:
        node = forwardable(ctx)
        if node is None:
            return _whole(
                ctx,
                request,
                ErrorCode.not_controller,
                f"This is not the controller; node {registry.controller.node_id} is.",
            )
        whole, answered = await forward(ctx, request, node)
        if whole is not None:
            return _whole(ctx, request, *whole)
        return await _answer(ctx, request, answered)
    live = {ctx.cluster.node_id, *registry.live_ids}
    store = ctx.log.metadata
    results: dict[tuple[str, int], Result] = {}
    moves: dict[int, int] = {}
    cancels: dict[int, tuple[str, int]] = {}
    moved: dict[int, tuple[str, int]] = {}
    rows_of: dict[str, dict[int, PartitionRecord]] = {}
    share = LoopShare()
    for topic in request.topics:
        if share.due():
            await asyncio.sleep(0)
        rows = rows_of.get(topic.name)
        if rows is None and topic.partitions:
            rows = {r.partition: r for r in await store.partitions(topic.name)}
            rows_of[topic.name] = rows
        for asked in topic.partitions:
            key = (topic.name, int(asked.partition_index))
            row = (rows or {}).get(key[1])
            if row is None:
                results[key] = (
                    ErrorCode.unknown_topic_or_partition,
                    f"Unable to find partition {key[0]}:{key[1]}."
                    if rows
                    else f"Unable to find a topic named {key[0]}.",
                )
                continue
            # A partition named twice: the later entry wins, as Kafka applies them in
            # order (before, a cancel after a move undid it and both said NONE).
            for earlier in (moves, moved, cancels):
                earlier.pop(row.stream_id, None)
            if asked.replicas is None:
                cancels[row.stream_id] = key
            elif (refused := check_replicas(tuple(asked.replicas), live)) is not None:
                results[key] = refused
            else:
                moves[row.stream_id] = int(asked.replicas[0])
                moved[row.stream_id] = key
    try:
        if moves:
            await controller.move(moves)
        found = await controller.cancel(list(cancels)) if cancels else {}
    except NotController as exc:
        for key in (*moved.values(), *cancels.values()):
            results[key] = (ErrorCode.not_controller, str(exc))
    except ValueError as exc:  # a target left between the check and the write
        for key in moved.values():
            results[key] = (ErrorCode.invalid_replica_assignment, str(exc))
    else:
        results.update((key, OK) for key in moved.values())
        for stream_id, key in cancels.items():
            results[key] = _cancelled(found.get(stream_id, NONE), key)
    return await _answer(ctx, request, results)


async def _answer(
    ctx: RequestContext, request: Any, results: dict[tuple[str, int], Result]
) -> Reply:
    return await ctx.large_reply(
        len(results),
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        error_message=None,
        responses=_by_topic(ctx, request, results),
    )


def _cancelled(found: str, key: tuple[str, int]) -> Result:
    if found == CANCELLED:
        return OK
    if found == NONE:
        return ErrorCode.no_reassignment_in_progress, None  # as Kafka's, no message
    return (
        ErrorCode.reassignment_in_progress,
        f"The move of {key[0]}-{key[1]} was handed over already; it completes on its target.",
    )


def _by_topic(
    ctx: RequestContext, request: Any, results: dict[tuple[str, int], Result]
) -> list[dict[str, Any]]:
    """The partitions' results in the request's order, each audited."""
    answered: list[dict[str, Any]] = []
    for topic in request.topics:
        partitions = []
        for asked in topic.partitions:
            index = int(asked.partition_index)
            error, message = results[(topic.name, index)]
            ctx.audit.record(
                ctx, "AlterPartitionReassignments", "partition", f"{topic.name}-{index}", error
            )
            partitions.append(
                {"partition_index": index, "error_code": error, "error_message": message}
            )
        answered.append({"name": topic.name, "partitions": partitions})
    return answered


def _whole(ctx: RequestContext, request: Any, error: ErrorCode, message: str | None) -> Reply:
    """The whole request refused: the top level, and every partition named (bounded by
    the caller or by the frame)."""
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=error,
        error_message=message,
        responses=[
            {
                "name": t.name,
                "partitions": [
                    {
                        "partition_index": p.partition_index,
                        "error_code": error,
                        "error_message": message,
                    }
                    for p in t.partitions
                ],
            }
            for t in request.topics
        ],
    )


def refuse_alter(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    return _whole(ctx, request, error, None)


async def list_partition_reassignments(ctx: RequestContext, request: Any) -> Reply:
    asked = request.topics
    if asked is not None and sum(1 + len(t.partition_indexes) for t in asked) > PARTITIONS_MAX:
        return refuse_list(ctx, request, ErrorCode.invalid_request)
    wanted = (
        None if asked is None else {(t.name, int(p)) for t in asked for p in t.partition_indexes}
    )
    topics: dict[str, list[dict[str, Any]]] = {}
    for move in await ctx.log.metadata.reassignments():
        if wanted is not None and (move.topic, move.partition) not in wanted:
            continue
        source = [move.source] if move.source not in (-1, move.target) else []
        topics.setdefault(move.topic, []).append(
            {
                "partition_index": move.partition,
                "replicas": [move.target, *source],
                "adding_replicas": [move.target],
                "removing_replicas": source,
            }
        )
    return await ctx.large_reply(
        sum(len(p) for p in topics.values()),
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        error_message=None,
        topics=[{"name": name, "partitions": parts} for name, parts in topics.items()],
    )


def refuse_list(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    return ctx.reply(throttle_time=ctx.throttle_ms, error_code=error, error_message=None, topics=[])
