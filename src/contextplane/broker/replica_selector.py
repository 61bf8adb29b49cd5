"""Which broker a consumer of another zone should fetch a partition from (KIP-392, RFC
0004 §7): `replica.selector.class` as Kafka names it.

Kafka's default (`LeaderSelector`, or the setting left empty) keeps every consumer on the
leader; `RackAwareReplicaSelector` sends a consumer whose rack differs from the leader's to
a replica in its own rack. Here any live broker of that rack can serve the partition from
uploaded data (storage/read_replica.py), so the leader picks one by rendezvous hashing of
the partition (topic and index) over the live brokers of the client's rack: one broker per zone
warms its block cache for a partition, and the choice stays put while those brokers do
(librdkafka backs off a partition whose preferred replica changes within a minute).

The client's zone is its connection's (broker/zones.py: a `client.id` token, else the
Fetch's `rack_id`). read_committed consumers are sent too, as Kafka sends them: the
replica answers the last stable offset and aborted transactions of the stored
transaction state (storage/read_replica.py).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from contextplane.broker.zones import OTHER, ZoneCell

if TYPE_CHECKING:
    from contextplane.broker.context import RequestContext
    from contextplane.cluster.registry import Registry

LEADER_SELECTOR = "org.apache.kafka.common.replica.LeaderSelector"
RACK_AWARE_SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
SELECTORS = ("", LEADER_SELECTOR, RACK_AWARE_SELECTOR)
# Fetch v11 carries the client's rack and PreferredReadReplica (KIP-392).
PREFERRED_REPLICA_FROM = 11


def connection_zone(ctx: RequestContext, rack_id: str | None) -> ZoneCell:
    """The connection's zone cell: its client.id's, else the rack_id of its first Fetch
    that names one (kept on the connection from then on)."""
    connection = ctx.connection
    zone = connection.zone
    if zone is not None and zone.known:  # the steady state
        return zone
    zones = ctx.services.stats.zones
    if zone is None:
        zone = zones.for_client_id(ctx.header.client_id)
    if zone is zones.unknown:
        zone = zones.for_fetch(zone, rack_id)
    connection.zone = zone
    return zone


def _consumer_zone(ctx: RequestContext, request: Any) -> str | None:
    """The zone of a consumer's Fetch that may be served by a replica; None when it may
    not (selector off and no zone writes' proxy, no broker rack, an old version, a
    replica's fetch, or a zone the client did not name)."""
    settings = ctx.settings
    # The zone writes' proxy stands in for other zones' leaders: it serves their reads.
    rack_aware = settings.replica_selector_class == RACK_AWARE_SELECTOR
    if not (rack_aware or settings.zone_produce_proxy_enable) or not settings.broker_rack:
        return None
    if ctx.api_version < PREFERRED_REPLICA_FROM:
        return None
    state = getattr(request, "replica_state", None)  # v15+; before, replica_id
    replica_id = state.replica_id if state is not None else getattr(request, "replica_id", -1)
    if replica_id >= 0:
        return None
    zone = connection_zone(ctx, getattr(request, "rack_id", None))
    if not zone.known or zone.zone == OTHER:
        return None
    return zone.zone


def rendezvous(topic: str, index: int, nodes: list[int]) -> int:
    """The node of `nodes` whose rendezvous weight for the partition is highest; -1 for
    none. Keyed by topic and index, so every broker computes it from what it knows."""
    best, best_weight = -1, b""
    for node in nodes:
        key = f"{topic}/{index}/{node}".encode()
        weight = hashlib.blake2b(key, digest_size=8).digest()
        if weight > best_weight:
            best, best_weight = node, weight
    return best


def rack_nodes(registry: Registry, node_id: int, own_rack: str | None, rack: str) -> list[int]:
    """The live (and bound) brokers of `rack`: this one (`node_id`, in `own_rack`) and
    the registry's."""
    nodes = [
        b.node_id
        for b in registry.brokers
        if b.rack == rack and b.state == "live" and b.node_id in registry.reachable_ids
    ]
    if own_rack == rack and node_id not in nodes:
        nodes.append(node_id)
    return nodes


def serving_nodes(
    registry: Registry, node_id: int, own_rack: str | None, rack: str, proxied: bool
) -> list[int]:
    """The brokers of `rack` a partition's reads (and, with the zone writes' proxy,
    writes) may be sent to: with `proxied` (this broker has the proxy on), only those
    whose registration had it on too, this one included, so a broker with it still off
    is never named; else `rack_nodes`."""
    nodes = rack_nodes(registry, node_id, own_rack, rack)
    if not proxied:
        return nodes
    on = {b.node_id for b in registry.brokers if b.zone_proxy} | {node_id}
    return [n for n in nodes if n in on]


def _chosen(ctx: RequestContext, topic: str, index: int, rack: str) -> int:
    cluster = ctx.cluster
    proxied = ctx.settings.zone_produce_proxy_enable
    nodes = serving_nodes(cluster.registry, cluster.node_id, cluster.rack, rack, proxied)
    return rendezvous(topic, index, nodes)


def preferred_replica(ctx: RequestContext, request: Any, topic: str, index: int) -> int:
    """The leader's answer for one partition: the broker the consumer should fetch it from
    instead, or -1 (serve it here)."""
    zone = _consumer_zone(ctx, request)
    if zone is None or zone == ctx.settings.broker_rack:
        return -1
    chosen = _chosen(ctx, topic, index, zone)
    return -1 if chosen == ctx.cluster.node_id else chosen


def may_serve_as_replica(ctx: RequestContext, request: Any) -> bool:
    """Whether a Fetch for a partition led elsewhere may be served here (which broker
    of the zone serves the partition: `is_chosen`): the consumer is in this broker's
    zone and may be sent to a replica."""
    zone = _consumer_zone(ctx, request)
    return zone is not None and zone == ctx.settings.broker_rack


def is_chosen(ctx: RequestContext, topic: str, index: int) -> bool:
    """Whether this broker is the one its zone's consumers of the partition are sent to."""
    rack = ctx.settings.broker_rack
    return rack is not None and _chosen(ctx, topic, index, rack) == ctx.cluster.node_id
