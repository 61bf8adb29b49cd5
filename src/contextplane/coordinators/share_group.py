"""`ShareGroupMachine`: every KIP-932 share group of one coordinator, as one pure state
machine (Kafka's `GroupMetadataManager.shareGroupHeartbeat`).

Rules of this file, as `consumer_group/machine.py`'s: no clock (`now_ms` is injected), no
asyncio, session deadlines as data the owner expires once `next_deadline()` passed.

A share group is the consumer protocol without revocation: a partition may be assigned
to several members at once (they share its records, the share partition decides who gets
which), so a member moves to the group's epoch and assignment at its next heartbeat.
Any change of what the assignor sees (a member joins, leaves, expires, changes its
subscription, or a subscribed topic's partition count changes) bumps the group epoch; the
`simple` assignor computes the new target then, or, within the group's assignment
interval (`share.assignment.interval.ms`, else `group.share.assignment.interval.ms`) of the
last one, at the first heartbeat after it (Kafka's maybeUpdateTargetAssignment): members
stay at the assignment epoch meanwhile.

Kafka 4.4's epochs, step by step: a group starts at epoch 1 (assignment epoch 1); the
assignor deals only the share partitions whose state is initialized, and Kafka initializes
a subscribed topic's partitions after the heartbeat that first sees them (asynchronously,
so the heartbeat itself has none of them). contextplane's share-partition state is made at
once, but the epochs follow Kafka's: a member joining a topic no member subscribed to yet
gets epoch 2 and no partitions, its next heartbeat epoch 3 and the partitions (Kafka's
initializedAssignmentPending bumps the group epoch once the initialized partitions are not
all in the target); a topic's new partitions likewise take a second epoch. A leave bumps
the group epoch and leaves the target to the next heartbeat (the last member's leave sets
the assignment epoch too). A heartbeat carries the assignment when it joins, names its
topics, or its partitions changed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from contextplane.protocol.error_codes import ErrorCode

SHARE_GROUP_TYPE = "share"
SIMPLE_ASSIGNOR = "simple"
LEAVE_GROUP_MEMBER_EPOCH = -1

TopicPartition = tuple[str, int]
PartitionCounts = Callable[[str], int]
# A group's (session timeout, heartbeat interval): its own configs, else the broker's.
GroupTiming = Callable[[str], tuple[int, int]]
# A group's assignment interval: its own config, else the broker's.
GroupInterval = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class ShareGroupConfig:
    """Kafka's `group.share.*` broker settings that membership uses."""

    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 5_000
    max_size: int = 200
    assignment_interval_ms: int = 1_000


@dataclass(frozen=True, slots=True)
class ShareHeartbeat:
    group_id: str
    member_id: str
    member_epoch: int
    rack_id: str | None
    subscribed_topic_names: tuple[str, ...] | None
    client_id: str = ""
    client_host: str = ""


@dataclass(slots=True)
class ShareMember:
    member_id: str
    member_epoch: int
    subscribed: tuple[str, ...]
    rack_id: str | None
    client_id: str
    client_host: str
    assignment: frozenset[TopicPartition] = frozenset()
    session_deadline_ms: int = 0
    topics: frozenset[str] = frozenset()  # `subscribed`, to look names up in

    def subscribe(self, names: tuple[str, ...]) -> None:
        self.subscribed, self.topics = names, frozenset(names)


@dataclass(slots=True)
class ShareGroup:
    group_id: str
    group_epoch: int = 1
    assignment_epoch: int = 1
    members: dict[str, ShareMember] = field(default_factory=dict)
    # The partition counts the assignment was computed from (subscribed topics that
    # exist): a change bumps the epoch.
    partition_counts: dict[str, int] = field(default_factory=dict)
    target: dict[str, frozenset[TopicPartition]] = field(default_factory=dict)
    # The topic table's generation the counts were read at: a steady heartbeat in the
    # same generation reads none (a member may subscribe to 100,000 names).
    topics_version: int | None = None
    # When the target was last computed (not stored: after a load the next is at once).
    last_assignment_ms: int | None = None
    # Per topic, how many of its partitions have their share state initialized (Kafka's
    # ShareGroupStatePartitionMetadata): the assignor deals only those.
    initialized: dict[str, int] = field(default_factory=dict)

    def state(self) -> str:
        return "Stable" if self.members else "Empty"

    def subscribed_topics(self) -> set[str]:
        return {name for m in self.members.values() for name in m.topics}


def heartbeat_error(code: ErrorCode, message: str | None = None) -> dict[str, Any]:
    return {
        "error_code": code,
        "error_message": message,
        "member_id": None,
        "member_epoch": 0,
        "heartbeat_interval_ms": 0,
        "assignment": None,
    }


class HeartbeatRefused(Exception):
    def __init__(self, code: ErrorCode, message: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _validate(request: ShareHeartbeat) -> None:
    """Kafka's throwIfShareGroupHeartbeatRequestIsInvalid (ids and names longer than
    Kafka's 32,767-byte string bound never get here: the decoder refuses them)."""
    if not request.group_id:
        raise HeartbeatRefused(ErrorCode.invalid_request, "GroupId can't be empty.")
    if request.rack_id is not None and not request.rack_id:
        raise HeartbeatRefused(ErrorCode.invalid_request, "RackId can't be empty.")
    if not request.member_id:
        raise HeartbeatRefused(ErrorCode.invalid_request, "MemberId can't be empty.")
    if request.member_epoch == 0:
        if not request.subscribed_topic_names:
            raise HeartbeatRefused(
                ErrorCode.invalid_request, "SubscribedTopicNames must be set in first request."
            )
    elif request.member_epoch < LEAVE_GROUP_MEMBER_EPOCH:
        raise HeartbeatRefused(
            ErrorCode.invalid_request, f"MemberEpoch is {request.member_epoch}, but must be >= -1."
        )


def simple_assignment(
    subscriptions: dict[str, Sequence[str]], partition_counts: PartitionCounts
) -> dict[str, frozenset[TopicPartition]]:
    """The `simple` assignor's rules (Kafka's SimpleAssignor), topic by topic: every
    partition of a subscribed topic goes to at least one of its subscribers and every
    subscriber gets at least one of its partitions; with more partitions than subscribers
    they are dealt round the subscribers, with more subscribers than partitions a
    partition is shared by several. Members are in id order, so the answer is stable.
    Linear in the names subscribed: a member may name 100,000 topics that do not exist."""
    topics = {m: frozenset(names) for m, names in subscriptions.items()}
    named = {t for names in topics.values() for t in names}
    return _deal(topics, {t: n for t in named if (n := partition_counts(t)) > 0})


def _deal(
    topics: dict[str, frozenset[str]], counts: dict[str, int]
) -> dict[str, frozenset[TopicPartition]]:
    """The simple assignor over the subscribed topics that exist (`counts`): each
    topic's subscribers found member by member, so the cost is those topics times the
    members, whatever else they named."""
    assignment: dict[str, set[TopicPartition]] = {m: set() for m in topics}
    for topic in sorted(counts):
        count = counts[topic]
        members = sorted(m for m, names in topics.items() if topic in names)
        for index in range(max(count, len(members))):
            assignment[members[index % len(members)]].add((topic, index % count))
    return {m: frozenset(parts) for m, parts in assignment.items()}


@dataclass(frozen=True, slots=True)
class _Counts:
    """Partition counts, and the names of the topics there are when known."""

    partition_counts: PartitionCounts
    existing: Collection[str] | None

    def of(self, group: ShareGroup) -> dict[str, int]:
        """The group's subscribed topics that exist, with their partition counts: from
        the fewer of the topics there are and the names subscribed (a member may name
        a million topics that do not exist)."""
        members = group.members.values()
        named = sum(len(m.topics) for m in members)
        names: Iterable[str]
        if self.existing is not None and len(self.existing) * len(members) < named:
            names = (t for t in self.existing if any(t in m.topics for m in members))
        else:
            names = group.subscribed_topics()
        return {t: n for t in names if (n := self.partition_counts(t)) > 0}


def _initialized_pending(group: ShareGroup) -> bool:
    """Kafka's initializedAssignmentPending: a subscribed topic has initialized partitions
    the target does not deal (each is dealt to a member at least once when dealt)."""
    if not group.members or not group.initialized:
        return False
    dealt: dict[str, set[int]] = {}
    for parts in group.target.values():
        for topic, index in parts:
            dealt.setdefault(topic, set()).add(index)
    for topic, count in group.initialized.items():
        subscribed = any(topic in m.topics for m in group.members.values())
        if subscribed and dealt.get(topic, set()) != set(range(count)):
            return True
    return False


class ShareGroupMachine:
    def __init__(
        self,
        now_ms: Callable[[], int],
        config: ShareGroupConfig | None = None,
        timing: GroupTiming | None = None,
        interval: GroupInterval | None = None,
    ) -> None:
        self._now_ms = now_ms
        self.config = config or ShareGroupConfig()
        self.groups: dict[str, ShareGroup] = {}
        self._timing = timing
        self._interval = interval
        # Groups whose stored form changed since the owner last took them (`take_changed`).
        self.changed: set[str] = set()

    def timing(self, group_id: str) -> tuple[int, int]:
        """The group's session timeout and heartbeat interval (its `share.*` configs
        apply from its members' next heartbeats)."""
        if self._timing is None:
            return self.config.session_timeout_ms, self.config.heartbeat_interval_ms
        return self._timing(group_id)

    def group(self, group_id: str) -> ShareGroup | None:
        return self.groups.get(group_id)

    def ensure_group(self, group_id: str) -> None:
        """An empty share group (AlterShareGroupOffsets of a group never seen creates
        one, as Kafka's coordinator does)."""
        if group_id not in self.groups:
            self.groups[group_id] = ShareGroup(group_id)
            self.changed.add(group_id)

    def initialize(self, group_id: str, partitions: Iterable[TopicPartition]) -> None:
        """Share partitions whose state AlterShareGroupOffsets wrote count as initialized
        (as Kafka's alterShareGroupOffsets records them): a member joining is dealt them
        at its join. Kept per topic as a count, so partitions from 0 on without a gap."""
        group = self.groups[group_id]
        written: dict[str, set[int]] = {}
        for topic, index in partitions:
            written.setdefault(topic, set()).add(index)
        for topic, indexes in written.items():
            count = group.initialized.get(topic, 0)
            while count in indexes:
                count += 1
            if count:
                group.initialized[topic] = count
        self.changed.add(group_id)

    def uninitialize(self, group_id: str, topics: Collection[str]) -> None:
        """DeleteShareGroupOffsets removed the topics' share-partition state: a member
        subscribing again waits for it to be initialized anew."""
        group = self.groups.get(group_id)
        if group is not None and any(group.initialized.pop(t, None) for t in list(topics)):
            self.changed.add(group_id)

    def load_group(self, group: ShareGroup) -> None:
        """A stored group, its members' sessions starting now."""
        deadline = self._now_ms() + self.timing(group.group_id)[0]
        for member in group.members.values():
            member.session_deadline_ms = deadline
        self.groups[group.group_id] = group

    def take_changed(self) -> set[str]:
        taken, self.changed = self.changed, set()
        return taken

    # -- heartbeats ---------------------------------------------------------------------

    def heartbeat(
        self,
        request: ShareHeartbeat,
        partition_counts: PartitionCounts,
        topics_version: int | None = None,
        existing: Collection[str] | None = None,
    ) -> tuple[dict[str, Any], list[str]]:
        """The response values (assignment by topic name) and the members that left.
        `existing`: the names of the topics there are, when known (an assignment then
        reads the fewer of them and the names subscribed)."""
        try:
            _validate(request)
            return self._heartbeat(request, partition_counts, topics_version, existing)
        except HeartbeatRefused as refused:
            return heartbeat_error(refused.code, refused.message), []

    def _heartbeat(
        self,
        request: ShareHeartbeat,
        partition_counts: PartitionCounts,
        topics_version: int | None,
        existing: Collection[str] | None,
    ) -> tuple[dict[str, Any], list[str]]:
        counts = _Counts(partition_counts, existing)
        group = self.groups.get(request.group_id)
        if group is None:
            if request.member_epoch != 0:
                raise HeartbeatRefused(
                    ErrorCode.group_id_not_found, f"Group {request.group_id} not found."
                )
            group = self.groups[request.group_id] = ShareGroup(request.group_id)
        member = group.members.get(request.member_id)
        if request.member_epoch == LEAVE_GROUP_MEMBER_EPOCH:
            if member is None:
                raise HeartbeatRefused(
                    ErrorCode.unknown_member_id,
                    f"Member {request.member_id} is not a member of group {request.group_id}.",
                )
            self._remove(group, request.member_id, counts)
            answer = self._answer(group.group_id, request.member_id, LEAVE_GROUP_MEMBER_EPOCH, None)
            return answer, [request.member_id]
        changed = False
        if member is None:
            if request.member_epoch != 0:
                raise HeartbeatRefused(
                    ErrorCode.unknown_member_id,
                    f"Member {request.member_id} is not a member of group {request.group_id}.",
                )
            if len(group.members) >= self.config.max_size:
                raise HeartbeatRefused(
                    ErrorCode.group_max_size_reached,
                    f"The share group has reached its maximum capacity of "
                    f"{self.config.max_size} members.",
                )
            member = ShareMember(
                request.member_id, 0, (), request.rack_id, request.client_id, request.client_host
            )
            group.members[request.member_id] = member
            member.subscribe(tuple(request.subscribed_topic_names or ()))
            changed = True
        elif request.member_epoch not in (0, member.member_epoch):
            raise HeartbeatRefused(
                ErrorCode.fenced_member_epoch,
                f"The share group member has a smaller member epoch ({request.member_epoch}) "
                f"than the one known by the group coordinator ({member.member_epoch}). The "
                f"member must abandon all its partitions and rejoin."
                if request.member_epoch < member.member_epoch
                else f"The share group member has a greater member epoch "
                f"({request.member_epoch}) than the one known by the group coordinator "
                f"({member.member_epoch}). The member must abandon all its partitions and "
                f"rejoin.",
            )
        names = request.subscribed_topic_names
        if names is not None and tuple(names) != member.subscribed:
            member.subscribe(tuple(names))
            changed = True
        if request.rack_id is not None and request.rack_id != member.rack_id:
            member.rack_id = request.rack_id
            self.changed.add(group.group_id)
        topics_changed = topics_version is None or topics_version != group.topics_version
        if group.assignment_epoch >= group.group_epoch and _initialized_pending(group):
            changed = True  # partitions initialized since the target: a new epoch deals them
        if changed or (topics_changed and counts.of(group) != group.partition_counts):
            self._reassign(group, counts)
        elif group.group_epoch > group.assignment_epoch and self._assignment_due(group):
            self._new_target(group)
        group.topics_version = topics_version
        member.session_deadline_ms = self._now_ms() + self.timing(group.group_id)[0]
        before = member.assignment
        if member.member_epoch != group.assignment_epoch:
            member.member_epoch = group.assignment_epoch
            member.assignment = group.target.get(member.member_id, frozenset())
            self.changed.add(group.group_id)
        # Kafka initializes the subscribed partitions after this heartbeat: the next deals them.
        if group.initialized != (initialized := {**group.initialized, **group.partition_counts}):
            group.initialized = initialized
            self.changed.add(group.group_id)
        sent = (
            member.assignment
            if request.member_epoch == 0 or names is not None or member.assignment != before
            else None
        )
        return self._answer(group.group_id, member.member_id, member.member_epoch, sent), []

    def _answer(
        self,
        group_id: str,
        member_id: str,
        epoch: int,
        assignment: frozenset[TopicPartition] | None,
    ) -> dict[str, Any]:
        return {
            "error_code": ErrorCode.none,
            "error_message": None,
            "member_id": member_id,
            "member_epoch": epoch,
            "heartbeat_interval_ms": self.timing(group_id)[1],
            "assignment": assignment,
        }

    def _reassign(self, group: ShareGroup, counts: _Counts) -> None:
        """What the assignor sees changed: a new group epoch, and its target now if the
        assignment interval allows."""
        self.changed.add(group.group_id)
        group.group_epoch += 1
        group.partition_counts = counts.of(group)
        if self._assignment_due(group):
            self._new_target(group)

    def _assignment_due(self, group: ShareGroup) -> bool:
        last = group.last_assignment_ms
        if last is None:
            return True
        interval = (
            self.config.assignment_interval_ms
            if self._interval is None
            else self._interval(group.group_id)
        )
        return self._now_ms() - last >= interval

    def _new_target(self, group: ShareGroup) -> None:
        """The target of the group epoch, from its members and the partition counts read
        at its last change."""
        self.changed.add(group.group_id)
        group.last_assignment_ms = self._now_ms()
        topics = {m.member_id: m.topics for m in group.members.values()}
        assignable = {
            t: n
            for t, count in group.partition_counts.items()
            if (n := min(count, group.initialized.get(t, 0))) > 0
        }
        group.target = _deal(topics, assignable)
        group.assignment_epoch = group.group_epoch

    def _remove(self, group: ShareGroup, member_id: str, counts: _Counts) -> None:
        """Kafka's shareGroupFenceMember: a new group epoch, the target left to the next
        heartbeat; the last member's leave makes the (empty) target that epoch's."""
        del group.members[member_id]
        group.target.pop(member_id, None)
        self.changed.add(group.group_id)
        group.group_epoch += 1
        group.partition_counts = counts.of(group)
        if not group.members:
            group.assignment_epoch = group.group_epoch
            group.last_assignment_ms = None

    # -- sessions -----------------------------------------------------------------------

    def next_deadline(self) -> int | None:
        return min(
            (m.session_deadline_ms for g in self.groups.values() for m in g.members.values()),
            default=None,
        )

    def expire_sessions(
        self, partition_counts: PartitionCounts, existing: Collection[str] | None = None
    ) -> list[tuple[str, str]]:
        """Remove members whose session passed, as a leave does: (group, member) each."""
        counts = _Counts(partition_counts, existing)
        now = self._now_ms()
        expired = []
        for group in self.groups.values():
            for member in list(group.members.values()):
                if member.session_deadline_ms <= now:
                    self._remove(group, member.member_id, counts)
                    expired.append((group.group_id, member.member_id))
        return expired

    def restart_sessions(self) -> None:
        now = self._now_ms()
        for group in self.groups.values():
            session_ms = self.timing(group.group_id)[0]
            for member in group.members.values():
                member.session_deadline_ms = now + session_ms

    # -- describe and list --------------------------------------------------------------

    def describe(self, group_id: str) -> dict[str, Any] | None:
        group = self.groups.get(group_id)
        if group is None:
            return None
        return {
            "error_code": ErrorCode.none,
            "error_message": None,
            "group_id": group_id,
            "group_state": group.state(),
            "group_epoch": group.group_epoch,
            "assignment_epoch": group.assignment_epoch,
            "assignor_name": SIMPLE_ASSIGNOR,
            "members": [
                {
                    "member_id": m.member_id,
                    "rack_id": m.rack_id,
                    "member_epoch": m.member_epoch,
                    "client_id": m.client_id,
                    "client_host": m.client_host,
                    "subscribed_topic_names": list(m.subscribed),
                    "assignment": m.assignment,
                }
                for m in group.members.values()
            ],
        }

    def list_groups(
        self, states_filter: Iterable[str] = (), types_filter: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        states = {s.strip().lower() for s in states_filter}
        types = {t.strip().lower() for t in types_filter}
        if types and SHARE_GROUP_TYPE not in types:
            return []
        return [
            {
                "group_id": g.group_id,
                "protocol_type": SHARE_GROUP_TYPE,
                "group_state": g.state(),
                "group_type": SHARE_GROUP_TYPE,
            }
            for g in self.groups.values()
            if not states or g.state().lower() in states
        ]

    def remove_group(self, group_id: str) -> None:
        if self.groups.pop(group_id, None) is not None:
            self.changed.add(group_id)
