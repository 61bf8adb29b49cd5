"""NOT_LEADER_OR_FOLLOWER with the current leader (KIP-951): Produce (v10+) and Fetch
(v16+) name the partition's leader and epoch in the error, and the response lists that
leader's endpoint, so a client moves to it without a Metadata round trip first.

As Kafka's KafkaApis does: the leader is the one Metadata lists (broker/leaders.py), and
its endpoint is the one of the listener the request came in on; a leader without that
listener is named all the same, its endpoint left out; a partition with no live leader
is named -1 at the epoch the metadata store last held for it (Kafka's `getCurrentLeader`
takes `leaderEpoch` from its metadata cache beside NO_LEADER_ID), and (-1, -1), which the
encoders leave out (the tagged field's default), only for one this broker has not read.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any

from contextplane.broker.context import RequestContext
from contextplane.broker.handlers.cluster import live_brokers


def name_current_leaders(
    ctx: RequestContext,
    partitions: Iterable[tuple[str | None, int, dict[str, Any]]],
    errors: Container[int],
) -> list[dict[str, Any]]:
    """Give each (topic, index, response entry) whose error is one of `errors` its
    `current_leader`; the NodeEndpoints of the leaders named."""
    leaders = ctx.cluster.leaders
    named: set[int] = set()
    for topic, index, entry in partitions:
        if topic is None or entry["error_code"] not in errors:
            continue
        leader_id, epoch = leaders.listed(topic, index)
        entry["current_leader"] = {"leader_id": leader_id, "leader_epoch": epoch}
        if leader_id != -1:
            named.add(leader_id)
    if not named:
        return []
    return [
        {"node_id": node, "host": host, "port": port, "rack": rack}
        for node, host, port, rack in live_brokers(ctx)
        if node in named
    ]
