"""The server-side assignors of the consumer group protocol (KIP-848): `uniform` and
`range`, as pure functions.

Rules of this file:

* An assignor sees only the members' subscribed topics, the partition counts of those
  topics and the current target assignment; it returns a new target in which every
  partition of a subscribed topic is given to exactly one member subscribed to it.
* `uniform` (Kafka's UniformAssignor) balances the number of partitions per member to
  within one among the members that could take them, and keeps each member's current
  partitions where the balance allows, so a join or a leave moves about P/M partitions.
  With identical subscriptions it makes Kafka's choices (checked against Kafka 4.4 by
  the differential scenarios); with different ones the balance is the same, the
  partitions chosen may differ.
* `range` (Kafka's RangeAssignor) gives each member subscribed to a topic a contiguous
  range of its partitions, in member-id order: the first P mod M members one more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

TopicPartition = tuple[str, int]
# member id -> the topics it subscribes to
Subscriptions = Mapping[str, frozenset[str]]
# member id -> its partitions
Assignment = dict[str, frozenset[TopicPartition]]
Assignor = Callable[
    [Subscriptions, Mapping[str, int], Mapping[str, frozenset[TopicPartition]]], Assignment
]

UNIFORM = "uniform"
RANGE = "range"


def uniform(
    subscriptions: Subscriptions,
    partition_counts: Mapping[str, int],
    current: Mapping[str, frozenset[TopicPartition]],
) -> Assignment:
    if len(set(subscriptions.values())) == 1:
        return _uniform_homogeneous(subscriptions, partition_counts, current)
    return _uniform_heterogeneous(subscriptions, partition_counts, current)


def _uniform_homogeneous(
    subscriptions: Subscriptions,
    partition_counts: Mapping[str, int],
    current: Mapping[str, frozenset[TopicPartition]],
) -> Assignment:
    """Every member subscribes to the same topics (Kafka's homogeneous uniform builder):
    each gets ⌊P/M⌋ partitions and P mod M of them one more. A member keeps its current
    partitions (lowest first) up to its quota; the rest fill the members in member-id
    order, lowest partitions first."""
    members = sorted(subscriptions)
    topics = next(iter(subscriptions.values()))
    partitions = [(t, p) for t in sorted(topics) for p in range(partition_counts.get(t, 0))]
    valid = set(partitions)
    quota, extra = divmod(len(partitions), len(members))
    owned: dict[str, list[TopicPartition]] = {}
    taken: set[TopicPartition] = set()
    for member in members:
        kept = [tp for tp in sorted(current.get(member, ())) if tp in valid and tp not in taken]
        size = min(len(kept), quota)
        if len(kept) > quota and extra > 0:
            size = quota + 1
            extra -= 1
        owned[member] = kept[:size]
        taken.update(owned[member])
    free = iter([tp for tp in partitions if tp not in taken])
    for member in members:
        while len(owned[member]) < quota:
            owned[member].append(next(free))
    for member in members:
        if extra == 0:
            break
        if len(owned[member]) == quota:
            owned[member].append(next(free))
            extra -= 1
    return {m: frozenset(parts) for m, parts in owned.items()}


def _uniform_heterogeneous(
    subscriptions: Subscriptions,
    partition_counts: Mapping[str, int],
    current: Mapping[str, frozenset[TopicPartition]],
) -> Assignment:
    """Members subscribe to different topics: each partition goes to the least loaded
    member subscribed to its topic, after every member kept what it had, then partitions
    move from a member to one holding at least two fewer until none can."""
    owned: dict[str, set[TopicPartition]] = {m: set() for m in subscriptions}
    taken: set[TopicPartition] = set()
    # 1. Stickiness: every member keeps what it had that is still valid (once).
    for member in sorted(subscriptions):
        for topic, partition in sorted(current.get(member, ())):
            tp = (topic, partition)
            if tp in taken or topic not in subscriptions[member]:
                continue
            if partition >= partition_counts.get(topic, 0):
                continue
            owned[member].add(tp)
            taken.add(tp)
    eligible = _eligible_members(subscriptions, partition_counts)
    # 2. Every partition nobody holds goes to the least loaded member that may take it.
    for topic in sorted(eligible):
        for partition in range(partition_counts[topic]):
            tp = (topic, partition)
            if tp in taken:
                continue
            target = min(eligible[topic], key=lambda m: (len(owned[m]), m))
            owned[target].add(tp)
            taken.add(tp)
    # 3. Balance: move partitions from a member to an eligible member holding at least
    # two fewer. Each move lowers the sum of squared loads, so this ends; the bound
    # guards the loop against a mistake rather than a real input.
    moves_left = sum(partition_counts.get(t, 0) for t in eligible) * max(1, len(owned))
    moved = True
    while moved and moves_left > 0:
        moved = False
        for giver in sorted(owned, key=lambda m: (-len(owned[m]), m)):
            for tp in sorted(owned[giver], reverse=True):
                takers = [m for m in eligible[tp[0]] if len(owned[m]) <= len(owned[giver]) - 2]
                if not takers:
                    continue
                taker = min(takers, key=lambda m: (len(owned[m]), m))
                owned[giver].discard(tp)
                owned[taker].add(tp)
                moves_left -= 1
                moved = True
                break
            if moved:
                break
    return {m: frozenset(parts) for m, parts in owned.items()}


def range_assignor(
    subscriptions: Subscriptions,
    partition_counts: Mapping[str, int],
    current: Mapping[str, frozenset[TopicPartition]],
) -> Assignment:
    owned: dict[str, set[TopicPartition]] = {m: set() for m in subscriptions}
    for topic, members in _eligible_members(subscriptions, partition_counts).items():
        ordered = sorted(members)
        count = partition_counts[topic]
        quota, extra = divmod(count, len(ordered))
        start = 0
        for index, member in enumerate(ordered):
            size = quota + (1 if index < extra else 0)
            owned[member].update((topic, p) for p in range(start, start + size))
            start += size
    return {m: frozenset(parts) for m, parts in owned.items()}


def _eligible_members(
    subscriptions: Subscriptions, partition_counts: Mapping[str, int]
) -> dict[str, list[str]]:
    """topic -> the members subscribed to it, for each existing topic with partitions."""
    eligible: dict[str, list[str]] = {}
    for member, topics in subscriptions.items():
        for topic in topics:
            if partition_counts.get(topic, 0) > 0:
                eligible.setdefault(topic, []).append(member)
    return eligible


ASSIGNORS: dict[str, Assignor] = {UNIFORM: uniform, RANGE: range_assignor}
