"""The high watermarks of partitions other brokers lead, asked of their leaders with
ListOffsets (latest) over the inter-broker client, as Kafka's group coordinator does for
a share group's lag (DescribeShareGroupOffsets): a group's coordinator need not lead the
partitions its share group reads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, TypeAlias

from contextplane import limits
from contextplane.broker.context import RequestContext
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)

LIST_OFFSETS = 2
_VERSION = 7  # leader epochs (v4+), no timeout field (v10+)
_LATEST = -1
Partition: TypeAlias = tuple[str, int]
# A partition's (high watermark, leader epoch), or the error its end could not be read with.
End: TypeAlias = tuple[int, int] | ErrorCode


async def remote_ends(ctx: RequestContext, partitions: Iterable[Partition]) -> dict[Partition, End]:
    """Each of `partitions` another broker leads, by that leader; partitions led here, or
    by no broker, are left out (the caller reads or refuses them locally)."""
    by_leader: dict[int, list[Partition]] = {}
    for key in partitions:
        leader = ctx.log.led_elsewhere.get(key, (-1, -1))[0]
        if leader not in (-1, ctx.cluster.node_id) and ctx.cluster.peers is not None:
            by_leader.setdefault(leader, []).append(key)
    answers = await asyncio.gather(*(_ask(ctx, n, keys) for n, keys in by_leader.items()))
    return {key: end for answer in answers for key, end in answer.items()}


async def _ask(ctx: RequestContext, node: int, keys: list[Partition]) -> dict[Partition, End]:
    by_topic: dict[str, list[int]] = {}
    for topic, index in keys:
        by_topic.setdefault(topic, []).append(index)
    try:
        async with asyncio.timeout(limits.PEER_REQUEST_TIMEOUT_S):
            answer = await ctx.cluster.peers.request(  # type: ignore[union-attr]
                node,
                LIST_OFFSETS,
                _VERSION,
                replica_id=-1,
                isolation_level=0,
                topics=[
                    {"name": name, "partitions": [_latest(i) for i in indexes]}
                    for name, indexes in by_topic.items()
                ],
            )
    except (OSError, TimeoutError) as exc:
        log.info("ListOffsets at node %d: %r", node, exc)
        return dict.fromkeys(keys, ErrorCode.leader_not_available)
    ends: dict[Partition, End] = dict.fromkeys(keys, ErrorCode.unknown_server_error)
    for topic in answer.topics:
        for p in topic.partitions:
            key = (topic.name, int(p.partition_index))
            if key in ends:
                ends[key] = (
                    (int(p.offset), int(p.leader_epoch))
                    if p.error_code == ErrorCode.none
                    else _known(int(p.error_code))
                )
    return ends


def _latest(index: int) -> dict[str, Any]:
    return {"partition_index": index, "current_leader_epoch": -1, "timestamp": _LATEST}


def _known(code: int) -> ErrorCode:
    """A peer's error code as ours (one this broker does not know: unknown_server_error)."""
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.unknown_server_error
