"""The rebalance: from PreparingRebalance to a new generation, and its assignment.

Rules of this file:

* A rebalance starts only in `prepare` (event REBALANCE). Starting one from
  CompletingRebalance first answers every parked SyncGroup with REBALANCE_IN_PROGRESS.
* The join phase ends only in `complete_join`, when every member has rejoined (and no
  pending member is still expected), or when its timer fires: the initial delay
  (`group.initial.rebalance.delay.ms`, extended while new members keep arriving, at most
  to the rebalance timeout) for a group's first rebalance, otherwise the rebalance timeout.
* Completing the join phase drops the dynamic members that did not rejoin (static members
  stay), picks a leader among those that did, starts the next generation (event
  JOIN_COMPLETE, or JOIN_COMPLETE_EMPTY when nobody is left), answers every parked
  JoinGroup (the leader's with the member list), restarts every session and gives the
  members a rebalance timeout to send SyncGroup.
* Nobody rejoined but members remain: the join phase is extended by another rebalance
  timeout, so session expiry can clear the silent members (Kafka does the same).
* `propagate_assignment` answers every parked SyncGroup and restarts those members'
  sessions: a member's session starts again once it has its assignment.
"""

from __future__ import annotations

import logging

from contextplane.coordinators.group_state.classic_group import Group
from contextplane.coordinators.group_state.core import Core
from contextplane.coordinators.group_state.member import complete_join, complete_sync
from contextplane.coordinators.group_state.states import GroupEvent, GroupState
from contextplane.coordinators.group_state.timers import (
    InitialRebalanceDelay,
    JoinDeadline,
    SyncDeadline,
    heartbeat_key,
    join_key,
    sync_key,
)
from contextplane.logsafe import escape, escape_all
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)


class Rebalance:
    def __init__(self, core: Core) -> None:
        self._core = core

    # -- starting -----------------------------------------------------------------------

    def maybe_prepare_or_complete_join(self, group: Group, reason: str) -> None:
        if group.can_rebalance():
            self.prepare(group, reason)
        else:
            self.maybe_complete_join_phase(group)

    def maybe_complete_join_phase(self, group: Group) -> None:
        if not group.is_in(GroupState.PREPARING_REBALANCE):
            return
        if group.previous_state is GroupState.EMPTY:
            return  # the initial rebalance completes on its delay timer only
        if not group.has_all_members_joined():
            return
        self.complete_join(group)

    def prepare(self, group: Group, reason: str) -> None:
        core = self._core
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            self.reset_and_propagate_assignment(group, ErrorCode.rebalance_in_progress)
        self.remove_sync_expiration(group)
        initial = group.is_in(GroupState.EMPTY)
        if initial:
            delay = core.config.initial_rebalance_delay_ms
            remaining = max(group.rebalance_timeout_ms() - delay, 0)
            core.schedule(InitialRebalanceDelay(group.group_id, delay, remaining), delay)
        group.transition(GroupEvent.REBALANCE, core.now_ms())
        log.info(
            "group %s: preparing to rebalance (old generation %d): %s",
            escape(group.group_id),
            group.generation_id,
            escape(reason),
        )
        if not initial:
            if group.has_all_members_joined():
                self.complete_join(group)
            else:
                self._schedule_join_deadline(group)

    # -- timers -------------------------------------------------------------------------

    def on_initial_delay(self, timer: InitialRebalanceDelay) -> None:
        core = self._core
        group = core.groups.get(timer.group_id)
        if group is None:
            return
        if group.new_member_added and timer.remaining_ms != 0:
            group.new_member_added = False
            delay = min(core.config.initial_rebalance_delay_ms, timer.remaining_ms)
            remaining = max(timer.remaining_ms - timer.delay_ms, 0)
            core.schedule(InitialRebalanceDelay(group.group_id, delay, remaining), delay)
        else:
            self.complete_join(group)

    def on_join_deadline(self, timer: JoinDeadline) -> None:
        group = self._core.groups.get(timer.group_id)
        if group is not None:
            self.complete_join(group)

    def _schedule_join_deadline(self, group: Group) -> None:
        self._core.schedule(JoinDeadline(group.group_id), group.rebalance_timeout_ms())

    # -- completing the join phase ------------------------------------------------------

    def complete_join(self, group: Group) -> None:
        core = self._core
        core.cancel(join_key(group.group_id))
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
            core.cancel(heartbeat_key(group.group_id, member_id))
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
        group.init_next_generation(core.now_ms())
        if group.is_in(GroupState.EMPTY):
            log.info(
                "group %s generation %d is now empty", escape(group.group_id), group.generation_id
            )
            core.group_stored(group)
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
            core.reschedule_heartbeat(group, member)
            member.is_new = False
            group.pending_sync.add(member.member_id)
        core.schedule(
            SyncDeadline(group.group_id, group.generation_id), group.rebalance_timeout_ms()
        )

    # -- the assignment -----------------------------------------------------------------

    def reset_and_propagate_assignment(self, group: Group, error: ErrorCode) -> None:
        for member in group.members.values():
            member.assignment = b""
        self.propagate_assignment(group, error)

    def propagate_assignment(self, group: Group, error: ErrorCode) -> None:
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
                self._core.reschedule_heartbeat(group, member)

    def remove_sync_expiration(self, group: Group) -> None:
        group.pending_sync.clear()
        self._core.cancel(sync_key(group.group_id))
