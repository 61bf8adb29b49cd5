"""`GroupStateMachine`: every classic group of one coordinator, as one pure state machine.

Rules of this file:

* The machine is the only entry point: the async shell (`coordinators/group.py`), the
  tests and the simulation call these methods, never the phases directly.
* Every method runs to completion without blocking and without reading a clock (time is
  the injected `now_ms`). Waiting requests are answered through their `Waiter`, exactly
  once, possibly before the method returns.
* Timers are data: the owner calls `fire_due_timers()` once `next_deadline()` has passed,
  and this file alone decides which phase handles each kind of timer.
* Deleting a group (`remove_group`) or unloading all of them (`shutdown`) answers every
  parked request and drops the group's timers: nothing waits on a group that is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from contextplane.coordinators.group_state.classic_group import Group
from contextplane.coordinators.group_state.core import CoordinatorConfig, Core
from contextplane.coordinators.group_state.join import JoinPhase
from contextplane.coordinators.group_state.member import complete_join, complete_sync
from contextplane.coordinators.group_state.messages import (
    JoinRequest,
    SyncRequest,
    Waiter,
    join_error,
    sync_error,
)
from contextplane.coordinators.group_state.offsets import OffsetRules
from contextplane.coordinators.group_state.rebalance import Rebalance
from contextplane.coordinators.group_state.sessions import Sessions
from contextplane.coordinators.group_state.states import GroupEvent
from contextplane.coordinators.group_state.sync import SyncPhase
from contextplane.coordinators.group_state.timers import (
    GroupTimer,
    HeartbeatExpiry,
    InitialRebalanceDelay,
    JoinDeadline,
    SyncDeadline,
    Timers,
    heartbeat_key,
    join_key,
    sync_key,
)
from contextplane.coordinators.group_state.views import (
    describe_group,
    list_groups,
    removable_empty_groups,
)
from contextplane.protocol.error_codes import ErrorCode

# Bound on timers run by one `fire_due_timers` call.
_TIMER_ACTIONS_PER_CALL_MAX = 100_000


class GroupStateMachine:
    """All classic groups of this coordinator. Every method runs to completion without
    blocking; waiting requests are answered through their `Waiter`."""

    def __init__(self, now_ms: Callable[[], int], config: CoordinatorConfig | None = None) -> None:
        self._core = core = Core(now_ms, config or CoordinatorConfig())
        self._rebalance = Rebalance(core)
        self._join = JoinPhase(core, self._rebalance)
        self._sync = SyncPhase(core, self._rebalance)
        self._sessions = Sessions(core, self._rebalance)
        self._offsets = OffsetRules(core)

    @property
    def now_ms(self) -> Callable[[], int]:
        return self._core.now_ms

    @property
    def config(self) -> CoordinatorConfig:
        return self._core.config

    @property
    def groups(self) -> dict[str, Group]:
        return self._core.groups

    @property
    def timers(self) -> Timers[GroupTimer]:
        return self._core.timers

    def set_group_stored_listener(self, listener: Callable[[Group], None] | None) -> None:
        """Call `listener` with each group whose metadata Kafka would store (a completed
        rebalance: the leader's assignment, or nobody left; a static member replaced in a
        Stable group)."""
        self._core.on_group_stored = listener

    # -- timers -------------------------------------------------------------------------

    def next_deadline(self) -> int | None:
        return self._core.timers.next_deadline()

    def fire_due_timers(self) -> int:
        """Run every timer whose deadline has passed (including ones they schedule for
        now). Returns how many ran."""
        fired = 0
        while fired < _TIMER_ACTIONS_PER_CALL_MAX:
            timer = self._core.timers.pop_due(self._core.now_ms())
            if timer is None:
                break
            self._fire(timer)
            fired += 1
        return fired

    def _fire(self, timer: GroupTimer) -> None:
        if isinstance(timer, HeartbeatExpiry):
            self._sessions.on_heartbeat_expiry(timer)
        elif isinstance(timer, InitialRebalanceDelay):
            self._rebalance.on_initial_delay(timer)
        elif isinstance(timer, JoinDeadline):
            self._rebalance.on_join_deadline(timer)
        elif isinstance(timer, SyncDeadline):
            self._sync.on_sync_deadline(timer)
        else:  # pragma: no cover - the union above is exhaustive
            raise TypeError(f"unknown group timer {timer!r}")

    # -- groups -------------------------------------------------------------------------

    def group(self, group_id: str) -> Group | None:
        return self._core.groups.get(group_id)

    def get_or_create(self, group_id: str) -> Group:
        return self._core.get_or_create(group_id)

    def load_empty_group(self, group_id: str) -> Group:
        """A group known only from its committed offsets (e.g. after a restart)."""
        return self._core.get_or_create(group_id)

    def load_group(self, group: Group) -> None:
        """A group as its stored metadata left it (`stored.loaded_group`; Kafka's
        loadGroup): each member's session starts now, and a group over the size limit
        (the limit may have changed) rebalances so its members can commit first."""
        core = self._core
        core.groups[group.group_id] = group
        for member in group.members.values():
            core.reschedule_heartbeat(group, member)
        if len(group.members) > core.config.max_group_size:
            self._rebalance.prepare(
                group, f"loaded with {len(group.members)} members, over the group size limit"
            )

    def adopt(self, group: Group, reason: str) -> None:
        """A consumer group converted back to a classic one (Stable, its members holding
        their last assignment): stored, its members' sessions start now, and a rebalance
        starts so that they agree again with a client-side leader."""
        self.load_group(group)
        self._core.group_stored(group)
        self._rebalance.prepare(group, reason)

    def answer_parked(self, group_id: str, code: ErrorCode) -> None:
        """Answer every parked JoinGroup and SyncGroup of the group with `code` (an
        upgrade to the consumer protocol tells them to rejoin)."""
        group = self._core.groups.get(group_id)
        if group is None:
            return
        for member in group.members.values():
            complete_join(member, join_error(member.member_id, code))
            complete_sync(member, sync_error(code))

    def remove_group(self, group_id: str) -> None:
        core = self._core
        group = core.groups.pop(group_id, None)
        if group is None:
            return
        for member_id in list(group.members) + sorted(group.pending_join):
            core.cancel(heartbeat_key(group_id, member_id))
            group.remove(member_id)
        core.cancel(join_key(group_id))
        core.cancel(sync_key(group_id))
        group.transition(GroupEvent.UNLOAD, core.now_ms())

    def shutdown(self, code: ErrorCode = ErrorCode.not_coordinator) -> None:
        """Unload every group: answer parked requests with `code`, drop all timers."""
        core = self._core
        for group in list(core.groups.values()):
            for member in group.members.values():
                complete_join(member, join_error(member.member_id, code))
                complete_sync(member, sync_error(code))
            group.transition(GroupEvent.UNLOAD, core.now_ms())
        core.groups.clear()
        core.timers = Timers()

    # -- requests -----------------------------------------------------------------------

    def join(self, request: JoinRequest, waiter: Waiter) -> None:
        self._join.join(request, waiter)

    def sync(self, request: SyncRequest, waiter: Waiter) -> None:
        self._sync.sync(request, waiter)

    def heartbeat(
        self,
        group_id: str,
        member_id: str,
        generation_id: int,
        group_instance_id: str | None = None,
    ) -> ErrorCode:
        return self._sessions.heartbeat(group_id, member_id, generation_id, group_instance_id)

    def leave(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[dict[str, Any]]]:
        """`members` are (member id, group instance id). Returns the top-level error and
        one response entry per member."""
        return self._sessions.leave(group_id, members)

    # -- offsets and administration -----------------------------------------------------

    def validate_offset_commit(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        api_version: int,
        transactional: bool = False,
    ) -> ErrorCode | None:
        """None if the commit may proceed (see `offsets.py`)."""
        return self._offsets.validate_offset_commit(
            group_id, member_id, group_instance_id, generation_id, api_version, transactional
        )

    def validate_delete_group(self, group_id: str, has_offsets: bool) -> ErrorCode | None:
        return self._offsets.validate_delete_group(group_id, has_offsets)

    def validate_offset_delete(self, group_id: str) -> ErrorCode | None:
        return self._offsets.validate_offset_delete(group_id)

    def is_subscribed_to_topic(self, group_id: str, topic: str) -> bool:
        return self._offsets.is_subscribed_to_topic(group_id, topic)

    def list_groups(
        self, states_filter: Iterable[str] = (), types_filter: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        return list_groups(self._core.groups, states_filter, types_filter)

    def describe_group(self, group_id: str) -> dict[str, Any]:
        return describe_group(group_id, self._core.groups.get(group_id))

    def removable_empty_groups(self) -> list[str]:
        """Empty groups with nobody waiting to join (candidates for cleanup once they have
        no committed offsets)."""
        return removable_empty_groups(self._core.groups)
