"""Requests about a partition this broker stands in for (RFC 0004 §7, the zone writes'
proxy), asked of its leader in another zone: ListOffsets and OffsetsForLeaderEpoch carry
a few bytes each way, so they cross zones where the records do not. The client was
authorized here; the leader answers this broker (its inter-broker principal).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from contextplane import limits
from contextplane.broker.context import RequestContext
from contextplane.broker.zone_proxy import led_in_other_zones
from contextplane.cluster.peer_client import PeerUnavailable
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)

# (topic name, partition) -> the leader's answer for it (a response partition entity), or
# the error to answer it with.
Answers = dict[tuple[str, int], Any]


async def ask_leaders(
    ctx: RequestContext, request: Any, topic_field: str, partition_field: str
) -> Answers:
    """The answers, from their leaders, for the partitions of `request` this broker stands
    in for (none: {}); `request.topics[*].<topic_field>` names a topic and
    `.partitions[*].<partition_field>` a partition, as in the response."""
    wanted = [
        (getattr(topic, topic_field), getattr(p, partition_field))
        for topic in request.topics
        for p in topic.partitions
    ]
    leaders = led_in_other_zones(ctx, wanted)
    if not leaders:
        return {}
    by_leader: dict[int, set[tuple[str, int]]] = {}
    for key, leader in leaders.items():
        by_leader.setdefault(leader, set()).add(key)
    answers = await asyncio.gather(
        *(
            _ask(ctx, request, leader, keys, topic_field, partition_field)
            for leader, keys in by_leader.items()
        )
    )
    return {key: answer for found in answers for key, answer in found.items()}


async def _ask(
    ctx: RequestContext,
    request: Any,
    leader: int,
    keys: Iterable[tuple[str, int]],
    topic_field: str,
    partition_field: str,
) -> Answers:
    keys = set(keys)
    fields = dataclasses.asdict(request)
    fields["topics"] = [
        dict(topic, partitions=kept)
        for topic in fields["topics"]
        if (
            kept := [
                p for p in topic["partitions"] if (topic[topic_field], p[partition_field]) in keys
            ]
        )
    ]
    peers = ctx.cluster.peers
    try:
        if peers is None:
            raise PeerUnavailable("no inter-broker client")
        async with asyncio.timeout(limits.PEER_REQUEST_TIMEOUT_S):
            answer = await peers.request(leader, ctx.header.api_key, ctx.api_version, **fields)
    except (PeerUnavailable, TimeoutError) as exc:
        log.info("api key %d at node %d: %r", ctx.header.api_key, leader, exc)
        return dict.fromkeys(keys, ErrorCode.leader_not_available)
    found: Answers = dict.fromkeys(keys, ErrorCode.unknown_server_error)
    for topic in answer.topics:
        for partition in topic.partitions:
            key = (getattr(topic, topic_field), getattr(partition, partition_field))
            if key in found:
                found[key] = partition
    return found


def entry(answer: Any, error_entry: dict[str, Any]) -> dict[str, Any]:
    """A response partition entry from a leader's answer: its fields, or `error_entry`
    with the error when there is none."""
    if isinstance(answer, ErrorCode):
        return dict(error_entry, error_code=answer)
    return dataclasses.asdict(answer)
