"""One consumer group of the KIP-848 protocol and its members, as data.

Rules of this file:

* The group epoch only grows: it is bumped whenever what the assignor sees changes
  (subscriptions, members leaving, partition counts of subscribed topics). The target
  assignment catches up (`assignment_epoch = group_epoch`) at the first heartbeat the
  assignment interval allows; until then the group is Assigning.
* `target` holds an entry per member the last target was computed for, and no member
  that has gone; `static_members` maps each static member's instance id to its member id
  and nothing else.
* Across members, the partitions assigned or being revoked never overlap (reconcile.py
  keeps it; `invariants()` checks it in tests).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from contextplane.coordinators.consumer_group.assignors import TopicPartition
from contextplane.coordinators.consumer_group.reconcile import MemberState, Reconciliation

# The member epoch of a static member that left meaning to come back (KIP-848).
LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2
LEAVE_GROUP_MEMBER_EPOCH = -1
CONSUMER_GROUP_TYPE = "consumer"


@dataclass(frozen=True, slots=True)
class ClassicMetadata:
    """What a member that speaks the classic protocol (JoinGroup / SyncGroup / Heartbeat)
    inside a consumer group joined with (Kafka's ClassicMemberMetadata)."""

    session_timeout_ms: int
    # (protocol name, ConsumerProtocolSubscription bytes), in the member's preference.
    protocols: tuple[tuple[str, bytes], ...]

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]


class ConsumerGroupState(enum.Enum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(eq=False, slots=True)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = 0
    subscribed_topics: frozenset[str] = frozenset()
    # A regex subscription (RE2 syntax) and the topics it matched when last evaluated.
    subscribed_regex: str | None = None
    regex_topics: frozenset[str] = frozenset()
    server_assignor: str | None = None
    epoch: int = 0
    previous_epoch: int = 0
    state: MemberState = MemberState.STABLE
    assigned: frozenset[TopicPartition] = frozenset()
    revoking: frozenset[TopicPartition] = frozenset()
    # Set for a member of the classic protocol (joined by JoinGroup, or upgraded with its
    # classic group); None for a ConsumerGroupHeartbeat member.
    classic: ClassicMetadata | None = None

    def reconciliation(self) -> Reconciliation:
        return Reconciliation(self.state, self.epoch, self.assigned, self.revoking)

    def apply(self, step: Reconciliation, recomputed: bool) -> None:
        """Take a reconciliation step. A recomputed step moves the previous epoch up to
        the current one even when the epoch stays (as Kafka's builder does), so only the
        epoch of the last answer that changed something is accepted as a lost response."""
        if recomputed:
            self.previous_epoch = self.epoch
            self.epoch = step.epoch
        self.state = step.state
        self.assigned = step.assigned
        self.revoking = step.revoking

    def topics(self) -> frozenset[str]:
        """Every topic the member subscribes to, by name or by its regex."""
        if not self.regex_topics:
            return self.subscribed_topics
        return self.subscribed_topics | self.regex_topics

    def has_left_statically(self) -> bool:
        return self.epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH


@dataclass(eq=False)
class ConsumerGroup:
    group_id: str
    # A new group starts at epoch 1, its target too (Kafka 4.3+'s ModernGroup).
    group_epoch: int = 1
    assignment_epoch: int = 1
    last_assignment_ms: int | None = None
    assignor_name: str = ""
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    target: dict[str, frozenset[TopicPartition]] = field(default_factory=dict)
    # topic -> partition count, for the topics some member subscribes to
    subscription_metadata: dict[str, int] = field(default_factory=dict)
    # The topic table's version the metadata was read at (None: read at every heartbeat).
    metadata_topics_version: int | None = None
    # Kafka's resolved regular expressions: one result per regex the members subscribe
    # to, resolved for all of them together, and when (ms; None: not since a load).
    resolved_regexes: dict[str, frozenset[str]] = field(default_factory=dict)
    regexes_resolved_ms: int | None = None

    def state(self) -> ConsumerGroupState:
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.group_epoch > self.assignment_epoch:
            return ConsumerGroupState.ASSIGNING
        for member in self.members.values():
            # A static member away with epoch -2 counts as not reconciled, as in Kafka.
            if member.epoch != self.assignment_epoch or member.state is not MemberState.STABLE:
                return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    def subscribed_topics(self) -> set[str]:
        # Members sharing a regex share its result, one set: each distinct set once.
        distinct: dict[int, frozenset[str]] = {}
        for member in self.members.values():
            distinct[id(member.subscribed_topics)] = member.subscribed_topics
            distinct[id(member.regex_topics)] = member.regex_topics
        topics: set[str] = set()
        for found in distinct.values():
            topics |= found
        return topics

    def known_partitions(self) -> Callable[[str], int]:
        """Without the topic table: the partition counts the group last saw."""
        counts = dict(self.subscription_metadata)
        return lambda topic: counts.get(topic, 0)

    def subscribed_regexes(self) -> set[str]:
        return {m.subscribed_regex for m in self.members.values() if m.subscribed_regex}

    def members_take_resolved_regexes(self) -> bool:
        """Every member's regex topics become its regex's group-wide result (none while
        it is not resolved yet); True if a member's topics changed."""
        changed = False
        # Members sharing a regex share their old set too: each pair compared once.
        compared: dict[tuple[int, int], bool] = {}
        for member in self.members.values():
            pattern = member.subscribed_regex
            found = self.resolved_regexes.get(pattern, frozenset()) if pattern else frozenset()
            held = member.regex_topics
            if found is not held:
                key = (id(found), id(held))
                differs = compared.get(key)
                if differs is None:
                    differs = compared[key] = found != held
                changed |= differs
                # The group's one set, even when equal: later unions and compares are
                # then by identity.
                member.regex_topics = found
        return changed

    def forget_unused_regexes(self) -> None:
        """Drop the results of regexes no member subscribes to any more (Kafka writes
        their tombstones), so a later subscriber resolves them afresh."""
        if self.resolved_regexes:
            used = self.subscribed_regexes()
            for pattern in [p for p in self.resolved_regexes if p not in used]:
                del self.resolved_regexes[pattern]

    def held_by_others(self, member_id: str) -> set[TopicPartition]:
        held: set[TopicPartition] = set()
        for other in self.members.values():
            if other.member_id != member_id:
                held |= other.assigned
                held |= other.revoking
        return held

    def classic_members(self) -> list[ConsumerMember]:
        return [m for m in self.members.values() if m.classic is not None]

    def all_classic_except(self, leaving: set[str]) -> bool:
        """Whether every member but `leaving` speaks the classic protocol (and some do):
        the group may go back to being a classic group once they have left."""
        rest = [m for m in self.members.values() if m.member_id not in leaving]
        return bool(rest) and all(m.classic is not None for m in rest)

    def supports_classic_protocols(self, protocol_type: str, names: list[str]) -> bool:
        """Kafka's supportsClassicProtocols: a classic member may join if it speaks the
        consumer embedded protocol and offers a protocol every classic member supports."""
        if protocol_type != CONSUMER_GROUP_TYPE or not names:
            return False
        classic = self.classic_members()
        return any(
            all(name in m.classic.protocol_names() for m in classic if m.classic) for name in names
        )

    def invariants(self) -> list[str]:
        """What must hold between any two calls; an empty list when it does."""
        problems = []
        seen: dict[TopicPartition, str] = {}
        for member in self.members.values():
            for tp in member.assigned | member.revoking:
                if tp in seen:
                    problems.append(f"{tp} held by {seen[tp]} and {member.member_id}")
                seen[tp] = member.member_id
            if member.assigned & member.revoking:
                problems.append(f"{member.member_id} both holds and revokes a partition")
        if not set(self.target) <= set(self.members):
            problems.append("the target assigns partitions to a member that has gone")
        if self.assignment_epoch > self.group_epoch:
            problems.append("the target is ahead of the group epoch")
        for instance_id, member_id in self.static_members.items():
            static = self.members.get(member_id)
            if static is None or static.instance_id != instance_id:
                problems.append(f"static member {instance_id} maps to {member_id}")
        return problems
