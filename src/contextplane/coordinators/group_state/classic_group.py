"""One classic group's bookkeeping (Kafka's `ClassicGroup`), without timers or waiting.

Rules of this file:

* A group changes state only through `transition(event)`, which consults the table in
  `states.py`; it raises `InvalidTransition` for an event the state forbids.
* Membership changes keep these facts true together (`invariants.py` checks them): the
  leader is a member whenever there are members; `static_members` maps each static
  member's instance id to its member id and nothing else; `supported` counts, per
  protocol name, the members that support it; a pending member (`pending_join`, a member
  id handed out by MEMBER_ID_REQUIRED) is not a member yet; `pending_sync` holds members
  of the current generation that have not sent SyncGroup.
* A member leaving the group never leaves a request parked: `remove` answers its waiters
  with UNKNOWN_MEMBER_ID, `replace_static_member` fences the old member's with
  FENCED_INSTANCE_ID.
* Nothing here reads a clock: callers pass `now_ms`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from contextplane.coordinators.group_state.member import (
    Member,
    complete_join,
    complete_sync,
)
from contextplane.coordinators.group_state.messages import (
    CONSUMER_PROTOCOL_TYPE,
    UNKNOWN_MEMBER_ID,
    Protocols,
    Waiter,
    join_error,
    sync_error,
)
from contextplane.coordinators.group_state.states import (
    GroupEvent,
    GroupState,
    allows,
    next_state,
)
from contextplane.coordinators.group_state.subscription import parse_subscription_topics
from contextplane.logsafe import escape
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)


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
        return allows(self.state, GroupEvent.REBALANCE)

    def transition(self, event: GroupEvent, now_ms: int) -> None:
        target = next_state(self.group_id, self.state, event)
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
            self.transition(GroupEvent.JOIN_COMPLETE, now_ms)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition(GroupEvent.JOIN_COMPLETE_EMPTY, now_ms)
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
