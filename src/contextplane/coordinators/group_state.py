"""The classic consumer group protocol as a pure state machine.

This follows Apache Kafka's group coordinator for classic groups (`GroupMetadataManager`
classic-group paths, `ClassicGroup`, `ClassicGroupMember`): the same states, the same
transitions, the same error codes. It owns no event loop, no sockets and no storage:

* Time comes from an injected `now_ms` callable. Timers (heartbeat expiry, the join
  phase deadline, the initial rebalance delay, the pending-sync deadline) are entries in
  `Timers`, keyed like Kafka's timer keys; scheduling a key replaces its previous entry.
  The owner calls `fire_due_timers()` when `next_deadline()` has passed.
* A request that may have to wait (JoinGroup, SyncGroup) carries a `Waiter`: a callable
  that receives the response as a dict of the response's field values. The machine calls
  it exactly once, possibly before the request method returns.
* Committed offsets are not kept here; `validate_offset_commit` and friends only decide
  whether an offset operation is allowed.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
import struct
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from contextplane import limits
from contextplane.logsafe import escape, escape_all
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)

UNKNOWN_MEMBER_ID = ""
CONSUMER_PROTOCOL_TYPE = "consumer"
GROUP_TYPE = "classic"
# Kafka's classicGroupNewMemberJoinTimeoutMs: a new member whose JoinGroup is parked is
# dropped after this long if the join phase has not completed.
NEW_MEMBER_JOIN_TIMEOUT_MS = 300_000
# Kafka's group.max.size default (Integer.MAX_VALUE).
GROUP_MAX_SIZE = 2**31 - 1
# Bound on timer actions run by one `fire_due_timers` call.
_TIMER_ACTIONS_PER_CALL_MAX = 100_000

Waiter = Callable[[dict[str, Any]], None]
Protocols = list[tuple[str, bytes]]


class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_VALID_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.PREPARING_REBALANCE: frozenset(
        {GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY}
    ),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.DEAD: frozenset(GroupState),
}


class InvalidTransition(RuntimeError):
    """A programmer error: the machine was asked for a transition its state forbids."""


# -- requests ------------------------------------------------------------------------


@dataclass(slots=True)
class JoinRequest:
    group_id: str
    member_id: str
    protocol_type: str
    protocols: Protocols
    session_timeout_ms: int
    rebalance_timeout_ms: int
    group_instance_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    api_version: int = 9
    reason: str | None = None


@dataclass(slots=True)
class SyncRequest:
    group_id: str
    generation_id: int
    member_id: str
    assignments: dict[str, bytes]
    group_instance_id: str | None = None
    protocol_type: str | None = None
    protocol_name: str | None = None


# -- responses -----------------------------------------------------------------------


def join_error(member_id: str, code: ErrorCode) -> dict[str, Any]:
    return {
        "error_code": code,
        "generation_id": -1,
        "protocol_type": None,
        "protocol_name": None,
        "leader": UNKNOWN_MEMBER_ID,
        "skip_assignment": False,
        "member_id": member_id,
        "members": [],
    }


def sync_error(code: ErrorCode) -> dict[str, Any]:
    return {"error_code": code, "protocol_type": None, "protocol_name": None, "assignment": b""}


# -- members and groups --------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    assignment: bytes = b""
    join_waiter: Waiter | None = None
    sync_waiter: Waiter | None = None
    is_new: bool = False

    @property
    def awaiting_join(self) -> bool:
        return self.join_waiter is not None

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_waiter is not None

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def metadata(self, protocol_name: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol_name:
                return metadata
        return b""

    def has_satisfied_heartbeat(self) -> bool:
        if self.is_new:
            # New members can be expired even while awaiting join.
            return False
        # Members awaiting a rebalance automatically satisfy expected heartbeats.
        return self.awaiting_join or self.awaiting_sync

    def matches(self, protocols: Protocols) -> bool:
        return list(protocols) == list(self.protocols)

    def vote(self, candidates: set[str]) -> str:
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise ValueError("member does not support any of the candidate protocols")


class Group:
    """One classic group: the `ClassicGroup` bookkeeping, without timers."""

    def __init__(self, group_id: str, now_ms: int, state: GroupState = GroupState.EMPTY) -> None:
        self.group_id = group_id
        self.state = state
        self.previous_state: GroupState | None = None
        self.state_timestamp_ms = now_ms
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.generation_id = 0
        self.leader_id: str | None = None
        self.members: dict[str, Member] = {}
        self.static_members: dict[str, str] = {}
        self.pending_join: set[str] = set()
        self.pending_sync: set[str] = set()
        self.supported: dict[str, int] = {}
        self.new_member_added = False
        self.subscribed_topics: set[str] | None = None

    # -- state --------------------------------------------------------------------------

    def is_in(self, *states: GroupState) -> bool:
        return self.state in states

    def can_rebalance(self) -> bool:
        return self.state in _VALID_PREVIOUS[GroupState.PREPARING_REBALANCE]

    def transition_to(self, target: GroupState, now_ms: int) -> None:
        if self.state not in _VALID_PREVIOUS[target]:
            raise InvalidTransition(
                f"group {self.group_id}: {self.state.value} -> {target.value} is not a valid "
                "transition"
            )
        self.previous_state = self.state
        self.state = target
        self.state_timestamp_ms = now_ms

    # -- membership ---------------------------------------------------------------------

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id is not None and self.leader_id == member_id

    def has_member(self, member_id: str) -> bool:
        return member_id in self.members

    def num_awaiting_join(self) -> int:
        return sum(1 for m in self.members.values() if m.awaiting_join)

    def has_all_members_joined(self) -> bool:
        return self.num_awaiting_join() == len(self.members) and not self.pending_join

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def uses_consumer_protocol(self) -> bool:
        return self.protocol_type == CONSUMER_PROTOCOL_TYPE

    def add(self, member: Member, waiter: Waiter | None) -> None:
        if member.group_instance_id is not None:
            if member.group_instance_id in self.static_members:
                raise RuntimeError(
                    f"static member {member.group_instance_id} is already in group {self.group_id}"
                )
            self.static_members[member.group_instance_id] = member.member_id
        if not self.members:
            self.protocol_type = member.protocol_type
        if self.protocol_type != member.protocol_type:
            raise RuntimeError("the group and member's protocol type must be the same")
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        self._count_protocols(member, 1)
        member.join_waiter = waiter
        self.pending_join.discard(member.member_id)

    def remove(self, member_id: str) -> Member | None:
        """Drop a member (or a pending member). Any response it still waits for is
        answered with UNKNOWN_MEMBER_ID so that no request stays parked forever."""
        member = self.members.pop(member_id, None)
        if member is not None:
            self._count_protocols(member, -1)
            if member.group_instance_id is not None:
                self.static_members.pop(member.group_instance_id, None)
            complete_join(member, join_error(UNKNOWN_MEMBER_ID, ErrorCode.unknown_member_id))
            complete_sync(member, sync_error(ErrorCode.unknown_member_id))
        if self.is_leader(member_id):
            self.leader_id = next(iter(self.members), None)
        self.pending_join.discard(member_id)
        self.pending_sync.discard(member_id)
        return member

    def maybe_elect_new_joined_leader(self) -> bool:
        if self.leader_id is None:
            return False
        leader = self.members.get(self.leader_id)
        if leader is not None and leader.awaiting_join:
            return True
        for member in self.members.values():
            if member.awaiting_join:
                log.info(
                    "group %s: leader %s failed to join before the rebalance timeout; member "
                    "%s is the new leader",
                    escape(self.group_id),
                    escape(self.leader_id),
                    escape(member.member_id),
                )
                self.leader_id = member.member_id
                return True
        return False

    def replace_static_member(self, instance_id: str, old_id: str, new_id: str) -> Member:
        old = self.members.pop(old_id, None)
        if old is None:
            raise KeyError(f"cannot replace non-existing member id {old_id}")
        # Fence a duplicate of the old member that still waits for a join or sync response.
        fenced = join_error(old_id, ErrorCode.fenced_instance_id)
        complete_join(old, fenced)
        complete_sync(old, sync_error(ErrorCode.fenced_instance_id))
        new = Member(
            member_id=new_id,
            group_instance_id=old.group_instance_id,
            client_id=old.client_id,
            client_host=old.client_host,
            rebalance_timeout_ms=old.rebalance_timeout_ms,
            session_timeout_ms=old.session_timeout_ms,
            protocol_type=old.protocol_type,
            protocols=old.protocols,
            assignment=old.assignment,
        )
        self.members[new_id] = new
        if self.is_leader(old_id):
            self.leader_id = new_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_id)
        self.static_members[instance_id] = new_id
        return new

    def update_member(
        self,
        member: Member,
        protocols: Protocols,
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        waiter: Waiter | None,
    ) -> None:
        self._count_protocols(member, -1)
        member.protocols = list(protocols)
        self._count_protocols(member, 1)
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        if member.join_waiter is not None and waiter is not None:
            # A retried JoinGroup replaces the parked one; answer the old one so that its
            # connection is not blocked behind it. The client rejoins on this error.
            complete_join(member, join_error(member.member_id, ErrorCode.rebalance_in_progress))
        member.join_waiter = waiter

    def validate_member(self, member_id: str, instance_id: str | None) -> ErrorCode | None:
        if instance_id is not None:
            existing = self.static_members.get(instance_id)
            if existing is None:
                return ErrorCode.unknown_member_id
            if existing != member_id:
                log.info(
                    "group %s: member %s for static member %s is fenced by %s",
                    escape(self.group_id),
                    escape(member_id),
                    escape(instance_id),
                    escape(existing),
                )
                return ErrorCode.fenced_instance_id
        if member_id not in self.members:
            return ErrorCode.unknown_member_id
        return None

    # -- protocols ----------------------------------------------------------------------

    def _count_protocols(self, member: Member, delta: int) -> None:
        for name in member.protocol_names():
            self.supported[name] = self.supported.get(name, 0) + delta

    def supports_protocols(self, protocol_type: str, names: Iterable[str]) -> bool:
        names = list(names)
        if self.state is GroupState.EMPTY:
            return bool(protocol_type) and bool(names)
        return self.protocol_type == protocol_type and any(
            self.supported.get(name, 0) == len(self.members) for name in names
        )

    def select_protocol(self) -> str:
        if not self.members:
            raise RuntimeError(f"cannot select a protocol for empty group {self.group_id}")
        candidates = {name for name, count in self.supported.items() if count == len(self.members)}
        votes: dict[str, int] = {}
        for member in self.members.values():
            choice = member.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        # Most votes wins; a tie goes to the protocol voted for first.
        return max(votes, key=lambda name: votes[name])

    def compute_subscribed_topics(self) -> set[str] | None:
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        if not self.members:
            return set()
        if self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            parsed = parse_subscription_topics(member.metadata(self.protocol_name))
            if parsed is None:
                log.warning(
                    "group %s: cannot parse the consumer protocol subscription of %s",
                    escape(self.group_id),
                    escape(member.member_id),
                )
                return None
            topics.update(parsed)
        return topics

    def is_subscribed_to_topic(self, topic: str) -> bool:
        if self.subscribed_topics is not None:
            return topic in self.subscribed_topics
        return self.uses_consumer_protocol()

    def init_next_generation(self, now_ms: int) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.EMPTY, now_ms)
        self.pending_sync.clear()

    def current_members(self) -> list[dict[str, Any]]:
        """The member list the leader receives in its JoinGroup response."""
        return [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "metadata": m.metadata(self.protocol_name),
            }
            for m in self.members.values()
        ]

    def join_response(self, member_id: str, *, with_members: bool) -> dict[str, Any]:
        return {
            "error_code": ErrorCode.none,
            "generation_id": self.generation_id,
            "protocol_type": self.protocol_type,
            "protocol_name": self.protocol_name,
            "leader": self.leader_id or UNKNOWN_MEMBER_ID,
            "skip_assignment": False,
            "member_id": member_id,
            "members": self.current_members() if with_members else [],
        }


def complete_join(member: Member, response: dict[str, Any]) -> bool:
    waiter = member.join_waiter
    if waiter is None:
        return False
    member.join_waiter = None
    waiter(response)
    return True


def complete_sync(member: Member, response: dict[str, Any]) -> bool:
    waiter = member.sync_waiter
    if waiter is None:
        return False
    member.sync_waiter = None
    waiter(response)
    return True


def parse_subscription_topics(metadata: bytes) -> list[str] | None:
    """Topics of a ConsumerProtocolSubscription, read as its v0 prefix (as Kafka does)."""
    try:
        position = 2  # version
        (count,) = struct.unpack_from(">i", metadata, position)
        position += 4
        if count < 0 or count > len(metadata):
            return None
        topics = []
        for _ in range(count):
            (length,) = struct.unpack_from(">h", metadata, position)
            position += 2
            if length < 0 or position + length > len(metadata):
                return None
            topics.append(metadata[position : position + length].decode())
            position += length
        return topics
    except (struct.error, UnicodeDecodeError):
        return None


# -- timers --------------------------------------------------------------------------


class Timers:
    """Keyed one-shot timers on a heap; scheduling a key replaces its previous entry."""

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], tuple[int, int, Callable[[], None]]] = {}
        self._heap: list[tuple[int, int, tuple[Any, ...]]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple[Any, ...]) -> bool:
        return key in self._entries

    def deadline(self, key: tuple[Any, ...]) -> int | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def schedule(self, key: tuple[Any, ...], deadline_ms: int, action: Callable[[], None]) -> None:
        seq = next(self._seq)
        self._entries[key] = (deadline_ms, seq, action)
        heapq.heappush(self._heap, (deadline_ms, seq, key))
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._entries):
            self._compact()

    def cancel(self, key: tuple[Any, ...]) -> None:
        self._entries.pop(key, None)

    def _compact(self) -> None:
        self._heap = [(d, s, k) for k, (d, s, _) in self._entries.items()]
        heapq.heapify(self._heap)

    def _drop_stale_top(self) -> None:
        while self._heap:
            deadline, seq, key = self._heap[0]
            entry = self._entries.get(key)
            if entry is not None and entry[1] == seq:
                return
            heapq.heappop(self._heap)

    def next_deadline(self) -> int | None:
        self._drop_stale_top()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int) -> Callable[[], None] | None:
        self._drop_stale_top()
        if not self._heap or self._heap[0][0] > now_ms:
            return None
        _, _, key = heapq.heappop(self._heap)
        _, _, action = self._entries.pop(key)
        return action


# -- the state machine ---------------------------------------------------------------


@dataclass
class CoordinatorConfig:
    initial_rebalance_delay_ms: int = 3000
    session_timeout_ms_min: int = limits.GROUP_SESSION_TIMEOUT_MS_MIN
    session_timeout_ms_max: int = limits.GROUP_SESSION_TIMEOUT_MS_MAX
    new_member_join_timeout_ms: int = NEW_MEMBER_JOIN_TIMEOUT_MS
    max_group_size: int = GROUP_MAX_SIZE
    member_id_suffix: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))


def _heartbeat_key(group_id: str, member_id: str) -> tuple[str, str, str]:
    return ("heartbeat", group_id, member_id)


def _join_key(group_id: str) -> tuple[str, str]:
    return ("join", group_id)


def _sync_key(group_id: str) -> tuple[str, str]:
    return ("sync", group_id)


class GroupStateMachine:
    """All classic groups of this coordinator. Every method runs to completion without
    blocking; waiting requests are answered through their `Waiter`."""

    def __init__(self, now_ms: Callable[[], int], config: CoordinatorConfig | None = None) -> None:
        self.now_ms = now_ms
        self.config = config or CoordinatorConfig()
        self.groups: dict[str, Group] = {}
        self.timers = Timers()

    # -- timers -------------------------------------------------------------------------

    def next_deadline(self) -> int | None:
        return self.timers.next_deadline()

    def fire_due_timers(self) -> int:
        """Run every timer whose deadline has passed (including ones they schedule for
        now). Returns how many ran."""
        fired = 0
        while fired < _TIMER_ACTIONS_PER_CALL_MAX:
            action = self.timers.pop_due(self.now_ms())
            if action is None:
                break
            action()
            fired += 1
        return fired

    def _schedule(self, key: tuple[Any, ...], delay_ms: int, action: Callable[[], None]) -> None:
        self.timers.schedule(key, self.now_ms() + max(0, delay_ms), action)

    def _reschedule_heartbeat(
        self, group: Group, member: Member, timeout_ms: int | None = None
    ) -> None:
        group_id, member_id = group.group_id, member.member_id
        self._schedule(
            _heartbeat_key(group_id, member_id),
            member.session_timeout_ms if timeout_ms is None else timeout_ms,
            lambda: self._expire_heartbeat(group_id, member_id),
        )

    # -- groups -------------------------------------------------------------------------

    def group(self, group_id: str) -> Group | None:
        return self.groups.get(group_id)

    def get_or_create(self, group_id: str) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            group = Group(group_id, self.now_ms())
            self.groups[group_id] = group
        return group

    def load_empty_group(self, group_id: str) -> Group:
        """A group known only from its committed offsets (e.g. after a restart)."""
        return self.get_or_create(group_id)

    def remove_group(self, group_id: str) -> None:
        group = self.groups.pop(group_id, None)
        if group is None:
            return
        for member_id in list(group.members) + list(group.pending_join):
            self.timers.cancel(_heartbeat_key(group_id, member_id))
            group.remove(member_id)
        self.timers.cancel(_join_key(group_id))
        self.timers.cancel(_sync_key(group_id))
        group.transition_to(GroupState.DEAD, self.now_ms())

    def shutdown(self, code: ErrorCode = ErrorCode.not_coordinator) -> None:
        """Unload every group: answer parked requests with `code`, drop all timers."""
        for group in list(self.groups.values()):
            for member in group.members.values():
                complete_join(member, join_error(member.member_id, code))
                complete_sync(member, sync_error(code))
            group.transition_to(GroupState.DEAD, self.now_ms())
        self.groups.clear()
        self.timers = Timers()

    # -- JoinGroup ----------------------------------------------------------------------

    def join(self, request: JoinRequest, waiter: Waiter) -> None:
        config = self.config
        if not request.group_id:
            waiter(join_error(request.member_id, ErrorCode.invalid_group_id))
            return
        if not (
            config.session_timeout_ms_min
            <= request.session_timeout_ms
            <= config.session_timeout_ms_max
        ):
            waiter(join_error(request.member_id, ErrorCode.invalid_session_timeout))
            return
        is_unknown = request.member_id == UNKNOWN_MEMBER_ID
        group = self.groups.get(request.group_id)
        if group is None:
            if not is_unknown:
                waiter(join_error(request.member_id, ErrorCode.unknown_member_id))
                return
            group = self.get_or_create(request.group_id)
        if not self._accept_joining_member(group, request.member_id):
            group.remove(request.member_id)
            waiter(join_error(UNKNOWN_MEMBER_ID, ErrorCode.group_max_size_reached))
        elif is_unknown:
            self._join_new_member(group, request, waiter)
        else:
            self._join_existing_member(group, request, waiter)

    def _accept_joining_member(self, group: Group, member_id: str) -> bool:
        limit = self.config.max_group_size
        if group.is_in(GroupState.EMPTY, GroupState.DEAD):
            return True
        if group.is_in(GroupState.PREPARING_REBALANCE):
            member = group.members.get(member_id)
            return (member is not None and member.awaiting_join) or (
                group.num_awaiting_join() < limit
            )
        return group.has_member(member_id) or len(group.members) < limit

    def _join_new_member(self, group: Group, request: JoinRequest, waiter: Waiter) -> None:
        if group.is_in(GroupState.DEAD):
            waiter(join_error(UNKNOWN_MEMBER_ID, ErrorCode.coordinator_not_available))
            return
        names = [name for name, _ in request.protocols]
        if not group.supports_protocols(request.protocol_type, names):
            waiter(join_error(UNKNOWN_MEMBER_ID, ErrorCode.inconsistent_group_protocol))
            return
        prefix = request.group_instance_id or request.client_id
        new_id = f"{prefix}-{self.config.member_id_suffix()}"
        if request.group_instance_id is not None:
            existing = group.static_members.get(request.group_instance_id)
            if existing is not None:
                log.info(
                    "group %s: static member %s rejoins with an unknown member id in state "
                    "%s; replacing member %s",
                    escape(group.group_id),
                    escape(request.group_instance_id),
                    group.state.value,
                    escape(existing),
                )
                self._update_static_member(group, request, existing, new_id, waiter)
            else:
                self._add_member_and_rebalance(group, request, new_id, waiter)
        elif request.api_version >= 4:
            # The member must rejoin with this id; until then it is pending and the join
            # phase waits for it (at most a session timeout).
            group.pending_join.add(new_id)
            group_id = group.group_id
            self._schedule(
                _heartbeat_key(group_id, new_id),
                request.session_timeout_ms,
                lambda: self._expire_heartbeat(group_id, new_id),
            )
            waiter(join_error(new_id, ErrorCode.member_id_required))
        else:
            self._add_member_and_rebalance(group, request, new_id, waiter)

    def _join_existing_member(self, group: Group, request: JoinRequest, waiter: Waiter) -> None:
        member_id = request.member_id
        if group.is_in(GroupState.DEAD):
            waiter(join_error(member_id, ErrorCode.coordinator_not_available))
            return
        names = [name for name, _ in request.protocols]
        if not group.supports_protocols(request.protocol_type, names):
            waiter(join_error(member_id, ErrorCode.inconsistent_group_protocol))
            return
        if member_id in group.pending_join:
            if request.group_instance_id is not None:
                # A pending member is always dynamic; a static one never gets here.
                waiter(join_error(member_id, ErrorCode.invalid_request))
                return
            self._add_member_and_rebalance(group, request, member_id, waiter)
            return
        error = group.validate_member(member_id, request.group_instance_id)
        if error is not None:
            waiter(join_error(member_id, error))
            return
        member = group.members[member_id]
        if group.is_in(GroupState.PREPARING_REBALANCE):
            self._update_member_and_rebalance(group, member, request, waiter)
        elif group.is_in(GroupState.COMPLETING_REBALANCE):
            if member.matches(request.protocols):
                # Same metadata (the member probably lost the JoinGroup response): return
                # the current generation again.
                waiter(group.join_response(member_id, with_members=group.is_leader(member_id)))
            else:
                self._update_member_and_rebalance(group, member, request, waiter)
        elif group.is_in(GroupState.STABLE):
            if group.is_leader(member_id) or not member.matches(request.protocols):
                # A leader's JoinGroup forces a rebalance (it noticed a metadata change);
                # so does a follower whose metadata changed.
                self._update_member_and_rebalance(group, member, request, waiter)
            else:
                waiter(group.join_response(member_id, with_members=False))
        else:
            log.warning(
                "group %s: member %s rejoins in unexpected state %s",
                escape(group.group_id),
                escape(member_id),
                group.state.value,
            )
            waiter(join_error(member_id, ErrorCode.unknown_member_id))

    def _update_member_and_rebalance(
        self, group: Group, member: Member, request: JoinRequest, waiter: Waiter
    ) -> None:
        group.update_member(
            member,
            request.protocols,
            request.rebalance_timeout_ms,
            request.session_timeout_ms,
            waiter,
        )
        self._maybe_prepare_rebalance_or_complete_join(group, f"member {member.member_id} rejoins")

    def _add_member_and_rebalance(
        self, group: Group, request: JoinRequest, member_id: str, waiter: Waiter
    ) -> None:
        member = Member(
            member_id=member_id,
            group_instance_id=request.group_instance_id,
            client_id=request.client_id,
            client_host=request.client_host,
            rebalance_timeout_ms=request.rebalance_timeout_ms,
            session_timeout_ms=request.session_timeout_ms,
            protocol_type=request.protocol_type,
            protocols=list(request.protocols),
            is_new=True,
        )
        if group.is_in(GroupState.PREPARING_REBALANCE) and group.previous_state is GroupState.EMPTY:
            # A new member during the initial rebalance extends the initial delay.
            group.new_member_added = True
        group.add(member, waiter)
        # A parked JoinGroup cannot heartbeat, so bound how long a new member may wait.
        self._reschedule_heartbeat(group, member, self.config.new_member_join_timeout_ms)
        self._maybe_prepare_rebalance_or_complete_join(group, f"new member {member_id} joins")

    def _update_static_member(
        self,
        group: Group,
        request: JoinRequest,
        old_id: str,
        new_id: str,
        waiter: Waiter,
    ) -> None:
        assert request.group_instance_id is not None
        current_leader = group.leader_id
        new = group.replace_static_member(request.group_instance_id, old_id, new_id)
        self.timers.cancel(_heartbeat_key(group.group_id, old_id))
        self._reschedule_heartbeat(group, new)
        group.update_member(
            new,
            request.protocols,
            request.rebalance_timeout_ms,
            request.session_timeout_ms,
            waiter,
        )
        if group.is_in(GroupState.STABLE):
            if group.protocol_name == group.select_protocol():
                # The selected protocol stays: no rebalance, the new member id takes over
                # the old one's assignment.
                log.info(
                    "group %s: static member %s rejoined as %s without a rebalance",
                    escape(group.group_id),
                    escape(request.group_instance_id),
                    escape(new_id),
                )
                if request.api_version >= 9:
                    is_leader = group.is_leader(new_id)
                    response = group.join_response(new_id, with_members=is_leader)
                    response["skip_assignment"] = is_leader
                else:
                    # Older clients must not run the assignor: they are told the old
                    # leader id, so none of them believes it leads.
                    response = group.join_response(new_id, with_members=False)
                    response["leader"] = current_leader or UNKNOWN_MEMBER_ID
                complete_join(new, response)
            else:
                self._maybe_prepare_rebalance_or_complete_join(
                    group, f"static member {new_id} changes the selected protocol"
                )
        elif group.is_in(GroupState.COMPLETING_REBALANCE):
            # The leader may already have been sent the old member id: rebalance again.
            self._prepare_rebalance(group, f"static member {new_id} rejoins")
        elif group.is_in(GroupState.PREPARING_REBALANCE):
            self._maybe_complete_join_phase(group)
        else:
            raise InvalidTransition(
                f"group {group.group_id} in state {group.state.value} cannot have a known "
                "static member"
            )

    # -- rebalancing --------------------------------------------------------------------

    def _maybe_prepare_rebalance_or_complete_join(self, group: Group, reason: str) -> None:
        if group.can_rebalance():
            self._prepare_rebalance(group, reason)
        else:
            self._maybe_complete_join_phase(group)

    def _maybe_complete_join_phase(self, group: Group) -> None:
        if not group.is_in(GroupState.PREPARING_REBALANCE):
            return
        if group.previous_state is GroupState.EMPTY:
            return  # the initial rebalance completes on its delay timer only
        if not group.has_all_members_joined():
            return
        self._complete_join(group)

    def _prepare_rebalance(self, group: Group, reason: str) -> None:
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            self._reset_and_propagate_assignment(group, ErrorCode.rebalance_in_progress)
        self._remove_sync_expiration(group)
        initial = group.is_in(GroupState.EMPTY)
        if initial:
            delay = self.config.initial_rebalance_delay_ms
            remaining = max(group.rebalance_timeout_ms() - delay, 0)
            self._schedule_initial_join(group.group_id, delay, remaining)
        group.transition_to(GroupState.PREPARING_REBALANCE, self.now_ms())
        log.info(
            "group %s: preparing to rebalance (old generation %d): %s",
            escape(group.group_id),
            group.generation_id,
            escape(reason),
        )
        if not initial:
            self._maybe_complete_join_else_schedule(group)

    def _schedule_initial_join(self, group_id: str, delay_ms: int, remaining_ms: int) -> None:
        self._schedule(
            _join_key(group_id),
            delay_ms,
            lambda: self._try_complete_initial_rebalance(group_id, delay_ms, remaining_ms),
        )

    def _try_complete_initial_rebalance(
        self, group_id: str, delay_ms: int, remaining_ms: int
    ) -> None:
        group = self.groups.get(group_id)
        if group is None:
            return
        if group.new_member_added and remaining_ms != 0:
            group.new_member_added = False
            new_delay = min(self.config.initial_rebalance_delay_ms, remaining_ms)
            new_remaining = max(remaining_ms - delay_ms, 0)
            self._schedule_initial_join(group_id, new_delay, new_remaining)
        else:
            self._complete_join(group)

    def _maybe_complete_join_else_schedule(self, group: Group) -> None:
        if group.has_all_members_joined():
            self._complete_join(group)
        else:
            self._schedule_join_deadline(group)

    def _schedule_join_deadline(self, group: Group) -> None:
        group_id = group.group_id
        self._schedule(
            _join_key(group_id),
            group.rebalance_timeout_ms(),
            lambda: self._complete_join_by_id(group_id),
        )

    def _complete_join_by_id(self, group_id: str) -> None:
        group = self.groups.get(group_id)
        if group is not None:
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        self.timers.cancel(_join_key(group.group_id))
        if not group.is_in(GroupState.PREPARING_REBALANCE):
            return
        # Dynamic members that did not rejoin in time are removed; static ones stay.
        failed = [
            m.member_id
            for m in group.members.values()
            if not m.awaiting_join and m.group_instance_id is None
        ]
        for member_id in failed:
            group.remove(member_id)
            self.timers.cancel(_heartbeat_key(group.group_id, member_id))
        if failed:
            log.info(
                "group %s: removed members that did not rejoin: %s",
                escape(group.group_id),
                escape_all(failed),
            )
        if not group.maybe_elect_new_joined_leader() and group.members:
            # Nobody rejoined: wait another rebalance timeout for session expiry to clear
            # the non-responsive members.
            log.warning(
                "group %s: no member rejoined; extending the join phase", escape(group.group_id)
            )
            self._schedule_join_deadline(group)
            return
        group.init_next_generation(self.now_ms())
        if group.is_in(GroupState.EMPTY):
            log.info(
                "group %s generation %d is now empty", escape(group.group_id), group.generation_id
            )
            return
        log.info(
            "group %s: generation %d stabilising with %d members (protocol %s)",
            escape(group.group_id),
            group.generation_id,
            len(group.members),
            escape(group.protocol_name),
        )
        for member in list(group.members.values()):
            response = group.join_response(
                member.member_id, with_members=group.is_leader(member.member_id)
            )
            complete_join(member, response)
            self._reschedule_heartbeat(group, member)
            member.is_new = False
            group.pending_sync.add(member.member_id)
        group_id, generation = group.group_id, group.generation_id
        self._schedule(
            _sync_key(group_id),
            group.rebalance_timeout_ms(),
            lambda: self._expire_pending_sync(group_id, generation),
        )

    def _reset_and_propagate_assignment(self, group: Group, error: ErrorCode) -> None:
        for member in group.members.values():
            member.assignment = b""
        self._propagate_assignment(group, error)

    def _propagate_assignment(self, group: Group, error: ErrorCode) -> None:
        ok = error == ErrorCode.none
        for member in list(group.members.values()):
            response = {
                "error_code": error,
                "protocol_type": group.protocol_type if ok else None,
                "protocol_name": group.protocol_name if ok else None,
                "assignment": member.assignment,
            }
            if complete_sync(member, response):
                # The member's session restarts once it has its assignment.
                self._reschedule_heartbeat(group, member)

    def _remove_sync_expiration(self, group: Group) -> None:
        group.pending_sync.clear()
        self.timers.cancel(_sync_key(group.group_id))

    def _expire_pending_sync(self, group_id: str, generation_id: int) -> None:
        group = self.groups.get(group_id)
        if group is None or group.generation_id != generation_id:
            return
        if not group.is_in(GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            return
        if not group.pending_sync:
            return
        missing = sorted(group.pending_sync)
        for member_id in missing:
            group.remove(member_id)
            self.timers.cancel(_heartbeat_key(group_id, member_id))
        log.info(
            "group %s: removed members that did not send SyncGroup: %s",
            escape(group_id),
            escape_all(missing),
        )
        self._prepare_rebalance(group, "members did not sync in time")

    def _expire_heartbeat(self, group_id: str, member_id: str) -> None:
        group = self.groups.get(group_id)
        if group is None or group.is_in(GroupState.DEAD):
            return
        if member_id in group.pending_join:
            log.info("group %s: pending member %s expired", escape(group_id), escape(member_id))
            group.remove(member_id)
            if group.is_in(GroupState.PREPARING_REBALANCE) and group.has_all_members_joined():
                self._complete_join(group)
            return
        member = group.members.get(member_id)
        if member is None or member.has_satisfied_heartbeat():
            return
        log.info(
            "group %s: member %s session expired; removing it", escape(group_id), escape(member_id)
        )
        self._remove_member_and_update(group, member, "session timeout")

    def _remove_member_and_update(self, group: Group, member: Member, reason: str) -> None:
        # Answer a parked JoinGroup first: UNKNOWN_MEMBER_ID makes a live client rejoin.
        complete_join(member, join_error(UNKNOWN_MEMBER_ID, ErrorCode.unknown_member_id))
        group.remove(member.member_id)
        if group.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance_or_complete_join(group, reason)
        elif group.is_in(GroupState.PREPARING_REBALANCE) and group.has_all_members_joined():
            self._complete_join(group)

    # -- SyncGroup ----------------------------------------------------------------------

    def sync(self, request: SyncRequest, waiter: Waiter) -> None:
        if not request.group_id:
            waiter(sync_error(ErrorCode.invalid_group_id))
            return
        group = self.groups.get(request.group_id)
        if group is None or group.is_in(GroupState.EMPTY):
            waiter(sync_error(ErrorCode.unknown_member_id))
            return
        error = self._validate_sync(group, request)
        if error is not None:
            waiter(sync_error(error))
        elif group.is_in(GroupState.PREPARING_REBALANCE):
            waiter(sync_error(ErrorCode.rebalance_in_progress))
        elif group.is_in(GroupState.COMPLETING_REBALANCE):
            member = group.members[request.member_id]
            if member.sync_waiter is not None:
                complete_sync(member, sync_error(ErrorCode.rebalance_in_progress))
            member.sync_waiter = waiter
            self._remove_pending_sync_member(group, request.member_id)
            if group.is_leader(request.member_id):
                log.info(
                    "group %s: assignment received from leader %s for generation %d",
                    escape(group.group_id),
                    escape(request.member_id),
                    group.generation_id,
                )
                for m in group.members.values():
                    m.assignment = request.assignments.get(m.member_id, b"")
                self._propagate_assignment(group, ErrorCode.none)
                group.transition_to(GroupState.STABLE, self.now_ms())
        elif group.is_in(GroupState.STABLE):
            self._remove_pending_sync_member(group, request.member_id)
            member = group.members[request.member_id]
            waiter(
                {
                    "error_code": ErrorCode.none,
                    "protocol_type": group.protocol_type,
                    "protocol_name": group.protocol_name,
                    "assignment": member.assignment,
                }
            )
        else:
            waiter(sync_error(ErrorCode.coordinator_not_available))

    def _validate_sync(self, group: Group, request: SyncRequest) -> ErrorCode | None:
        if group.is_in(GroupState.DEAD):
            return ErrorCode.coordinator_not_available
        error = group.validate_member(request.member_id, request.group_instance_id)
        if error is not None:
            return error
        if request.generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        if _inconsistent(request.protocol_type, group.protocol_type) or _inconsistent(
            request.protocol_name, group.protocol_name
        ):
            return ErrorCode.inconsistent_group_protocol
        return None

    def _remove_pending_sync_member(self, group: Group, member_id: str) -> None:
        group.pending_sync.discard(member_id)
        if not group.is_in(GroupState.COMPLETING_REBALANCE, GroupState.STABLE) or (
            not group.pending_sync
        ):
            self.timers.cancel(_sync_key(group.group_id))

    # -- Heartbeat ----------------------------------------------------------------------

    def heartbeat(
        self,
        group_id: str,
        member_id: str,
        generation_id: int,
        group_instance_id: str | None = None,
    ) -> ErrorCode:
        if not group_id:
            return ErrorCode.invalid_group_id
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        if group.is_in(GroupState.DEAD):
            return ErrorCode.coordinator_not_available
        error = group.validate_member(member_id, group_instance_id)
        if error is not None:
            return error
        if generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        if group.is_in(GroupState.EMPTY):
            return ErrorCode.unknown_member_id
        self._reschedule_heartbeat(group, group.members[member_id])
        if group.is_in(GroupState.PREPARING_REBALANCE):
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    # -- LeaveGroup ---------------------------------------------------------------------

    def leave(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[dict[str, Any]]]:
        """`members` are (member id, group instance id). Returns the top-level error and
        one response entry per member."""
        if not group_id:
            return ErrorCode.invalid_group_id, []
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.none, [
                _leave_entry(mid, iid, ErrorCode.unknown_member_id) for mid, iid in members
            ]
        if group.is_in(GroupState.DEAD):
            return ErrorCode.coordinator_not_available, []
        responses = []
        left = []
        for member_id, instance_id in members:
            if member_id == UNKNOWN_MEMBER_ID:
                # Administrative removal of a static member by its instance id.
                target = group.static_members.get(instance_id) if instance_id else None
                if target is None:
                    responses.append(
                        _leave_entry(member_id, instance_id, ErrorCode.unknown_member_id)
                    )
                    continue
                self._remove_current_member(group, target)
                left.append(target)
            elif member_id in group.pending_join:
                group.remove(member_id)
                self.timers.cancel(_heartbeat_key(group_id, member_id))
                left.append(member_id)
            else:
                error = group.validate_member(member_id, instance_id)
                if error is not None:
                    responses.append(_leave_entry(member_id, instance_id, error))
                    continue
                self._remove_current_member(group, member_id)
                left.append(member_id)
            responses.append(_leave_entry(member_id, instance_id, ErrorCode.none))
        if left:
            log.info("group %s: members left: %s", escape(group_id), escape_all(left))
            if group.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
                self._maybe_prepare_rebalance_or_complete_join(group, "members left the group")
            elif group.is_in(GroupState.PREPARING_REBALANCE):
                self._maybe_complete_join_phase(group)
        return ErrorCode.none, responses

    def _remove_current_member(self, group: Group, member_id: str) -> None:
        self.timers.cancel(_heartbeat_key(group.group_id, member_id))
        member = group.members.get(member_id)
        if member is not None:
            complete_join(member, join_error(UNKNOWN_MEMBER_ID, ErrorCode.unknown_member_id))
        group.remove(member_id)

    # -- offsets ------------------------------------------------------------------------

    def validate_offset_commit(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        api_version: int,
    ) -> ErrorCode | None:
        """None if the commit may proceed. A generation of -1 from a non-member (a simple
        consumer or an admin client) creates the group if it does not exist."""
        group = self.groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                # v9+ says so; older versions keep ILLEGAL_GENERATION for compatibility.
                return (
                    ErrorCode.group_id_not_found
                    if api_version >= 9
                    else ErrorCode.illegal_generation
                )
            group = self.get_or_create(group_id)
        if group.is_in(GroupState.DEAD):
            return ErrorCode.coordinator_not_available
        if generation_id < 0 and group.is_in(GroupState.EMPTY):
            return None
        if generation_id >= 0 or member_id or group_instance_id is not None:
            error = group.validate_member(member_id, group_instance_id)
            if error is not None:
                return error
            if generation_id != group.generation_id:
                return ErrorCode.illegal_generation
        elif not group.is_in(GroupState.EMPTY):
            # No member id and no generation: only an empty group accepts such commits.
            return ErrorCode.unknown_member_id
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            return ErrorCode.rebalance_in_progress
        if group.is_in(GroupState.STABLE, GroupState.PREPARING_REBALANCE):
            member = group.members.get(member_id)
            if member is not None:
                # An offset commit keeps the session alive, as a heartbeat does.
                self._reschedule_heartbeat(group, member)
        return None

    def validate_delete_group(self, group_id: str, has_offsets: bool) -> ErrorCode | None:
        group = self.groups.get(group_id)
        if group is None:
            return None if has_offsets else ErrorCode.group_id_not_found
        if group.is_in(GroupState.DEAD):
            return ErrorCode.group_id_not_found
        if not group.is_in(GroupState.EMPTY):
            return ErrorCode.non_empty_group
        return None

    def validate_offset_delete(self, group_id: str) -> ErrorCode | None:
        group = self.groups.get(group_id)
        if group is None or group.is_in(GroupState.DEAD):
            return ErrorCode.group_id_not_found
        if not group.is_in(GroupState.EMPTY) and not group.uses_consumer_protocol():
            return ErrorCode.non_empty_group
        return None

    def is_subscribed_to_topic(self, group_id: str, topic: str) -> bool:
        group = self.groups.get(group_id)
        return group is not None and group.is_subscribed_to_topic(topic)

    # -- listing ------------------------------------------------------------------------

    def list_groups(
        self, states_filter: Iterable[str] = (), types_filter: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        states = {s.strip().lower() for s in states_filter}
        types = {t.strip().lower() for t in types_filter}
        if types and GROUP_TYPE not in types:
            return []
        return [
            {
                "group_id": g.group_id,
                "protocol_type": g.protocol_type or "",
                "group_state": g.state.value,
                "group_type": GROUP_TYPE,
            }
            for g in self.groups.values()
            if not states or g.state.value.lower() in states
        ]

    def describe_group(self, group_id: str) -> dict[str, Any]:
        group = self.groups.get(group_id)
        if group is None:
            return {
                "error_code": ErrorCode.none,
                "group_id": group_id,
                "group_state": GroupState.DEAD.value,
                "protocol_type": "",
                "protocol_data": "",
                "members": [],
            }
        stable = group.is_in(GroupState.STABLE)
        members = [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "member_metadata": m.metadata(group.protocol_name) if stable else b"",
                "member_assignment": m.assignment if stable else b"",
            }
            for m in group.members.values()
        ]
        return {
            "error_code": ErrorCode.none,
            "group_id": group_id,
            "group_state": group.state.value,
            "protocol_type": group.protocol_type or "",
            "protocol_data": (group.protocol_name or "") if stable else "",
            "members": members,
        }

    def removable_empty_groups(self) -> list[str]:
        """Empty groups with nobody waiting to join (candidates for cleanup once they have
        no committed offsets)."""
        return [
            g.group_id
            for g in self.groups.values()
            if g.is_in(GroupState.EMPTY) and not g.members and not g.pending_join
        ]


def _inconsistent(requested: str | None, current: str | None) -> bool:
    return requested is not None and current is not None and requested != current


def _leave_entry(member_id: str, instance_id: str | None, code: ErrorCode) -> dict[str, Any]:
    return {"member_id": member_id, "group_instance_id": instance_id, "error_code": code}
