"""DescribeQuorum (API 55, v0-2), a documented deliberate difference
(docs/differences.md): a broker here has no KRaft quorum; the metadata store (SQLite or
PostgreSQL) is the replicated state. So that `kafka-metadata-quorum.sh describe` prints a
consistent picture, the answer names the controller (the node holding the controller's
lease, RFC 0004 §2, the broker itself with SQLite) as the one voter and leader, with the
controller epoch as the leader epoch, and every other live broker as an observer. There
is no metadata log: the high watermark and every log end offset are 0 (no lag), the
fetch and caught-up times now. Only `__cluster_metadata` partition 0 is described, as in
Kafka; any other is UNKNOWN_TOPIC_OR_PARTITION."""

from __future__ import annotations

from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.handlers.cluster import controller_id, live_brokers
from contextplane.protocol.error_codes import ErrorCode

METADATA_TOPIC = "__cluster_metadata"


def _described(request: Any) -> bool:
    """Kafka's check: one topic, the metadata topic, with one partition, 0."""
    if len(request.topics) != 1 or request.topics[0].topic_name != METADATA_TOPIC:
        return False
    partitions = request.topics[0].partitions
    return len(partitions) == 1 and partitions[0].partition_index == 0


def _unknown(ctx: RequestContext, request: Any) -> Reply:
    return ctx.reply(
        error_code=ErrorCode.none,
        error_message=None,
        topics=[
            {
                "topic_name": t.topic_name,
                "partitions": [
                    {
                        "partition_index": p.partition_index,
                        "error_code": ErrorCode.unknown_topic_or_partition,
                        "error_message": None,
                        "leader_id": -1,
                        "leader_epoch": -1,
                        "high_watermark": -1,
                        "current_voters": [],
                        "observers": [],
                    }
                    for p in t.partitions
                ],
            }
            for t in request.topics
        ],
        nodes=[],
    )


async def describe_quorum(ctx: RequestContext, request: Any) -> Reply:
    if not _described(request):
        return _unknown(ctx, request)
    now_ms = ctx.clock.wall_ms()
    leader = controller_id(ctx)

    def replica(node: int) -> dict[str, Any]:
        return {
            "replica_id": node,
            "replica_directory_id": None,
            "log_end_offset": 0,
            "last_fetch_timestamp": now_ms,
            "last_caught_up_timestamp": now_ms,
        }

    brokers = live_brokers(ctx)
    listener = ctx.connection.listener
    return ctx.reply(
        error_code=ErrorCode.none,
        error_message=None,
        topics=[
            {
                "topic_name": METADATA_TOPIC,
                "partitions": [
                    {
                        "partition_index": 0,
                        "error_code": ErrorCode.none,
                        "error_message": None,
                        "leader_id": leader,
                        "leader_epoch": ctx.cluster.registry.controller.epoch,
                        "high_watermark": 0,
                        "current_voters": [replica(leader)],
                        "observers": [replica(n) for n, *_ in brokers if n != leader],
                    }
                ],
            }
        ],
        nodes=[
            {"node_id": node, "listeners": [{"name": listener, "host": host, "port": port}]}
            for node, host, port, _rack in brokers
            if node == leader
        ],
    )


def refuse(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    return ctx.reply(error_code=error, error_message=None, topics=[], nodes=[])
