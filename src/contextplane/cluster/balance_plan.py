"""Rebalance and drain plans (RFC 0004 §6): which partitions to move where, a pure
function of the brokers, who leads what and the measured load (cluster/load.py), as
`assignment_plan.py` is for placement. `contextplane cluster rebalance | drain` send
the moves as AlterPartitionReassignments.

- Drain: every partition led by a draining broker goes to a broker that is not
  draining, one of the source's rack when the rack has one: a loaded partition to the
  least loaded (the heaviest first, so the spread stays even), an idle one to the one
  leading fewest partitions (it carries no load: by load, all of them would go to the
  broker measured a few bytes a second lighter).
- Rebalance: at most `max_moves` moves, each taking one partition off the most loaded
  broker to the one that leaves the larger of the two lowest; a move within the source's
  rack is taken whenever one lowers that broker's load, one across racks only when none
  does. It stops when no move lowers the most loaded broker's load: the largest
  broker's load never grows, and a partition moves at most once per plan. Then, with
  `spread_idle` (`cluster rebalance`), within the same `max_moves`: partitions without
  load (a coordinator shard, a quiet topic) from the broker leading most to the one
  leading fewest, same rack first, until the counts differ by at most one (failovers
  leave them wherever they landed, and no load ever moves them back).

Load is bytes in plus out per second. A broker's load is the sum of its partitions' plus
what it measured beyond the partitions it listed (`Broker.unlisted`), which no move
can take off it. Nothing is ever placed on a draining broker.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from contextplane.cluster.load import decode

PartitionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Broker:
    node_id: int
    rack: str | None
    draining: bool = False
    unlisted: float = 0.0  # load measured on partitions its document did not list


@dataclass(frozen=True, slots=True)
class Led:
    """A partition, its leader and its measured load (bytes/s)."""

    key: PartitionKey
    leader: int
    load: float


@dataclass(frozen=True, slots=True)
class Move:
    key: PartitionKey
    source: int
    target: int
    load: float


class NoBrokerLeft(ValueError):
    """Every broker is draining: nowhere to move to."""


# Broker states that take no partitions and give theirs away: a drain, a controlled
# shutdown.
LEAVING_STATES = ("draining", "shutting_down")


def measured(
    rows: Sequence[tuple[int, str | None, bool, str]],
) -> tuple[list[Broker], dict[PartitionKey, float]]:
    """The brokers and the partitions' loads from each broker's (node id, rack, draining,
    load document): a broker's load not listed per partition stays on it (`unlisted`);
    a partition listed by both ends of a move counts its larger rate."""
    brokers: list[Broker] = []
    loads: dict[PartitionKey, float] = {}
    for node, rack, draining, document in rows:
        load = decode(document)
        unlisted = max(load.total - sum(load.partitions.values()), 0.0)
        brokers.append(Broker(node, rack, draining, unlisted))
        for key, rate in load.partitions.items():
            loads[key] = max(loads.get(key, 0.0), rate)
    return brokers, loads


def broker_loads(brokers: Sequence[Broker], partitions: Sequence[Led]) -> dict[int, float]:
    """Each broker's load: its partitions' plus what it measured unlisted."""
    loads = {b.node_id: b.unlisted for b in brokers}
    for led in partitions:
        if led.leader in loads:
            loads[led.leader] += led.load
    return loads


def plan(
    brokers: Sequence[Broker],
    partitions: Sequence[Led],
    max_moves: int,
    draining_only: bool = False,
    spread_idle: bool = False,
) -> list[Move]:
    """The moves of one run: every partition off the draining brokers, then (unless
    `draining_only`) up to `max_moves` balancing moves among the others: by load, then
    (`spread_idle`) idle partitions by count."""
    racks = {b.node_id: b.rack for b in brokers}
    eligible = sorted(b.node_id for b in brokers if not b.draining)
    loads = broker_loads(brokers, partitions)
    leaders = {led.key: led.leader for led in partitions}
    draining = {b.node_id for b in brokers if b.draining}
    moves: list[Move] = []
    counts = dict.fromkeys(eligible, 0)
    for led in partitions:
        if led.leader in counts:
            counts[led.leader] += 1
    off = [led for led in partitions if led.leader in draining]
    if off and not eligible:
        raise NoBrokerLeft("every broker is draining: nowhere to move their partitions")
    for led in sorted(off, key=lambda p: (-p.load, p.key)):
        same = [n for n in eligible if racks[n] == racks[led.leader]]
        # A loaded partition goes where the load is least; an idle one where the fewest
        # partitions are led (it changes no load, so by load they would all go to one).
        if led.load > 0:
            target = min(same or eligible, key=lambda n: (loads[n], counts[n], n))
        else:
            target = min(same or eligible, key=lambda n: (counts[n], loads[n], n))
        moves.append(Move(led.key, led.leader, target, led.load))
        loads[led.leader] -= led.load
        loads[target] += led.load
        counts[target] += 1
        leaders[led.key] = target
    if draining_only or len(eligible) < 2:
        return moves
    moved = {m.key for m in moves}
    # Each broker's movable partitions as (load, key), sorted: a move's best partition is
    # found by bisection, so a plan stays fast with tens of thousands of partitions.
    by_leader: dict[int, list[tuple[float, PartitionKey]]] = {n: [] for n in eligible}
    for led in partitions:
        if led.key not in moved and led.load > 0 and leaders[led.key] in by_leader:
            by_leader[leaders[led.key]].append((led.load, led.key))
    for held in by_leader.values():
        held.sort()
    left = max(max_moves, 0)
    for _ in range(left):
        move = _best_move(eligible, racks, loads, by_leader)
        if move is None:
            break
        moves.append(move)
        loads[move.source] -= move.load
        loads[move.target] += move.load
        counts[move.source] -= 1
        counts[move.target] += 1
        leaders[move.key] = move.target
        held = by_leader[move.source]
        held.pop(bisect.bisect_left(held, (move.load, move.key)))
        left -= 1
    if spread_idle:
        moves += _spread_idle(partitions, leaders, counts, racks, moved, left)
    return moves


def _spread_idle(
    partitions: Sequence[Led],
    leaders: Mapping[PartitionKey, int],
    counts: dict[int, int],
    racks: Mapping[int, str | None],
    moved: set[PartitionKey],
    left: int,
) -> list[Move]:
    """Up to `left` moves of partitions without load (none moved yet in the plan) from
    the broker leading most to the one leading fewest (same rack first), while the
    counts differ by more than one; loads stay as they are."""
    idle: dict[int, list[PartitionKey]] = {n: [] for n in counts}
    for led in sorted(partitions, key=lambda p: p.key, reverse=True):
        leader = leaders[led.key]
        if led.load == 0 and led.key not in moved and leader in idle:
            idle[leader].append(led.key)
    moves: list[Move] = []
    while len(moves) < left:
        holders = [n for n in counts if idle[n]]
        if not holders:
            break
        source = max(holders, key=lambda n: (counts[n], -n))
        fewest = min(counts.values())
        if counts[source] - fewest <= 1:
            break
        lowest = [n for n in counts if counts[n] == fewest]
        same = [n for n in lowest if racks[n] == racks[source]]
        target = min(same or lowest)
        moves.append(Move(idle[source].pop(), source, target, 0.0))
        counts[source] -= 1
        counts[target] += 1
    return moves


def _best_move(
    eligible: list[int],
    racks: Mapping[int, str | None],
    loads: dict[int, float],
    by_leader: dict[int, list[tuple[float, PartitionKey]]],
) -> Move | None:
    """The move off the most loaded broker that leaves the larger of the two lowest,
    within its rack if one lowers its load at all; None when none does.

    For a target `gap` below the peak, moving load `l` leaves max(peak - l, peak - gap +
    l): lower than the peak for 0 < l < gap, lowest at l = gap / 2, so only the
    partitions on either side of gap / 2 need a look."""
    source = max(eligible, key=lambda n: (loads[n], -n))
    peak = loads[source]
    held = by_leader[source]
    best: dict[bool, tuple[float, float, PartitionKey, int]] = {}
    for target in eligible:
        gap = peak - loads[target]
        if target == source or gap <= 0 or not held:
            continue
        middle = bisect.bisect_left(held, (gap / 2,))
        for index in (middle - 1, middle):
            if not 0 <= index < len(held):
                continue
            load, key = held[index]
            after = max(peak - load, loads[target] + load)
            if after >= peak:
                continue  # would not lower the peak of the pair
            across = racks[target] != racks[source]
            candidate = (after, -load, key, target)
            if across not in best or candidate < best[across]:
                best[across] = candidate
    chosen = best.get(False) or best.get(True)
    if chosen is None:
        return None
    after, negative_load, key, target = chosen
    return Move(key, source, target, -negative_load)
