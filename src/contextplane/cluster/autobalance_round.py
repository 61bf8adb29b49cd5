"""One round of the continuous balancer (RFC 0004 §6), decided: a pure function of the
brokers' measured loads, who leads what, the moves in flight and the partitions moved
lately, giving the moves to make (maybe none) and why. The moves are the rebalance
planner's (cluster/balance_plan.py), bounded per round; cluster/autobalancer.py runs it.

A round moves nothing unless the cluster is settled and the spread is worth it:
- no broker joined or left within the cool-down, and no move is in flight;
- at least two brokers are not draining (a draining broker is the drain's business: its
  partitions are left out, and nothing is ever placed on it);
- the most loaded broker is at or above `min_load` and more than `deviation` above the
  mean of the brokers' loads.
A partition moved within the cool-down stays where it is: its load counts on its leader
as load no move can take off (`Broker.unlisted`), so no partition ping-pongs.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from contextplane.cluster.balance_plan import Broker, Led, Move, PartitionKey, broker_loads, plan


@dataclass(frozen=True, slots=True)
class Limits:
    """The round's bounds (`autobalancer.controller.*`)."""

    deviation: float  # the peak's excess over the mean that calls for moves (0.2: 20 %)
    min_load: float  # bytes/s: a lower peak is never worth a move
    max_moves: int


@dataclass(frozen=True, slots=True)
class Round:
    moves: list[Move]
    reason: str  # why these moves, or why none


def decide(
    brokers: Sequence[Broker],
    partitions: Sequence[Led],
    limits: Limits,
    *,
    settled: bool = True,
    in_flight: int = 0,
    recent: Collection[PartitionKey] = (),
) -> Round:
    """The moves of one round and why (see the module)."""
    if not settled:
        return Round([], "a broker joined or left within the cool-down")
    if in_flight:
        return Round([], f"{in_flight} moves in flight")
    eligible = [b for b in brokers if not b.draining]
    if len(eligible) < 2:
        return Round([], "fewer than two brokers to balance over")
    loads = broker_loads(eligible, partitions)
    mean = sum(loads.values()) / len(loads)
    source = max(loads, key=lambda n: (loads[n], -n))
    peak = loads[source]
    spread = f"node {source} at {peak:.0f} B/s, the mean {mean:.0f} B/s"
    if peak < limits.min_load or peak <= mean * (1 + limits.deviation):
        return Round([], f"balanced enough: {spread}")
    held = {b.node_id for b in eligible}
    pinned = {node: 0.0 for node in held}
    movable: list[Led] = []
    for led in partitions:
        if led.leader not in held:
            continue
        if led.key in recent:
            pinned[led.leader] += led.load
        else:
            movable.append(led)
    planned = [replace(b, unlisted=b.unlisted + pinned[b.node_id]) for b in eligible]
    moves = plan(planned, movable, limits.max_moves)
    if not moves:
        return Round([], f"no move lowers the peak: {spread}")
    return Round(moves, f"unbalanced: {spread}")
