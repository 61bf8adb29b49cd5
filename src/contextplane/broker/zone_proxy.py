"""Which broker of a client's zone stands in for the leader of a partition led in another
zone (RFC 0004 §7, `zone.produce.proxy.enable`), and which requests it hands on.

A client of a known zone (broker/zones.py: its client.id token, else its Fetch's
`client.rack`) is told by Metadata that such a partition is led by a live broker of its
own zone: the one the read-replica selector picks (rendezvous of the partition over the
zone's brokers, replica_selector.py), so one broker per zone serves a partition's reads
from uploaded data and takes its writes (handlers/produce_zoned.py). The leader's epoch
is listed unchanged, so a client's epoch checks still follow the real leadership.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from contextplane.broker.replica_selector import connection_zone, rendezvous, serving_nodes
from contextplane.broker.zones import OTHER

if TYPE_CHECKING:
    from contextplane.broker.context import RequestContext
    from contextplane.cluster.registry import Registry


class ZoneProxies:
    """The stand-in leaders for clients of one zone, as the registry lists brokers now."""

    def __init__(
        self,
        registry: Registry,
        node_id: int,
        rack: str | None,
        zone: str,
        unreachable: frozenset[int] = frozenset(),
    ) -> None:
        self._zone = zone
        self._unreachable = unreachable
        self._racks = {b.node_id: b.rack for b in registry.brokers}
        if rack is not None:
            self._racks[node_id] = rack
        # Only brokers with the proxy on stand in (this one has it: it lists them); one
        # with it off, while the setting is rolled out, serves its own partitions only.
        self._nodes = serving_nodes(registry, node_id, rack, zone, proxied=True)

    def of(self, topic: str, index: int, leader: int) -> int:
        """The broker of the zone listed as the partition's leader; -1: the leader itself
        (no live leader, a leader of this zone or of no known rack, one the proxy cannot
        reach now, or no broker here)."""
        if leader == -1 or not self._nodes or leader in self._unreachable:
            return -1
        if self._racks.get(leader) in (None, self._zone):
            return -1
        return rendezvous(topic, index, self._nodes)


def client_zone(ctx: RequestContext) -> str:
    """The zone whose stand-ins this connection's Metadata lists; "" for none (the proxy
    is off here, or the client named no zone)."""
    if ctx.services.zone_router is None:
        return ""
    zone = connection_zone(ctx, None)
    return zone.zone if zone.known and zone.zone != OTHER else ""


def led_in_other_zones(
    ctx: RequestContext, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """Of `partitions`, those this broker stands in for, for this connection: led by a
    live broker of another zone while the client is of this broker's zone; -> leader."""
    rack = ctx.settings.broker_rack
    if not rack or client_zone(ctx) != rack:
        return {}
    cluster = ctx.cluster
    racks = {b.node_id: b.rack for b in cluster.registry.brokers}
    live = cluster.registry.reachable_ids
    router = ctx.services.zone_router
    unreachable = frozenset() if router is None else router.unreachable.nodes()
    found = {}
    for name, index in partitions:
        leader, _ = cluster.leaders.of(name, index)
        if leader in (-1, cluster.node_id) or leader not in live or leader in unreachable:
            continue
        if racks.get(leader) not in (None, rack):
            found[(name, index)] = leader
    return found
