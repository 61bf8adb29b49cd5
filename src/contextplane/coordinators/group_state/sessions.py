"""Member sessions: Heartbeat, session expiry and LeaveGroup.

Rules of this file:

* A heartbeat (or an offset commit, see `offsets.py`) from a current member of the current
  generation restarts its session; nothing else is changed by a heartbeat. Its answer tells
  the member what to do: REBALANCE_IN_PROGRESS means rejoin.
* Heartbeat errors, in Kafka's order: INVALID_GROUP_ID, UNKNOWN_MEMBER_ID (no such group),
  COORDINATOR_NOT_AVAILABLE (Dead), UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID from member
  validation, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID in Empty.
* A session expires only if the member's heartbeat is not satisfied (a member parked in
  JoinGroup or SyncGroup cannot heartbeat, unless it is new). An expired pending member
  is forgotten; an expired member is removed, its parked requests answered with
  UNKNOWN_MEMBER_ID, and the group rebalances (or its join phase completes).
* LeaveGroup removes each listed member (by member id, or by instance id alone: the
  administrative removal of a static member) with a per-member error, then rebalances
  once for all of them.
"""

from __future__ import annotations

import logging
from typing import Any

from contextplane.coordinators.group_state.classic_group import Group
from contextplane.coordinators.group_state.core import Core
from contextplane.coordinators.group_state.member import Member, complete_join
from contextplane.coordinators.group_state.messages import (
    UNKNOWN_MEMBER_ID,
    join_error,
    leave_entry,
)
from contextplane.coordinators.group_state.rebalance import Rebalance
from contextplane.coordinators.group_state.states import GroupState
from contextplane.coordinators.group_state.timers import HeartbeatExpiry, heartbeat_key
from contextplane.logsafe import escape, escape_all
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)


class Sessions:
    def __init__(self, core: Core, rebalance: Rebalance) -> None:
        self._core = core
        self._rebalance = rebalance

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
        group = self._core.groups.get(group_id)
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
        self._core.reschedule_heartbeat(group, group.members[member_id])
        if group.is_in(GroupState.PREPARING_REBALANCE):
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def on_heartbeat_expiry(self, timer: HeartbeatExpiry) -> None:
        group_id, member_id = timer.group_id, timer.member_id
        group = self._core.groups.get(group_id)
        if group is None or group.is_in(GroupState.DEAD):
            return
        if member_id in group.pending_join:
            log.info("group %s: pending member %s expired", escape(group_id), escape(member_id))
            group.remove(member_id)
            if group.is_in(GroupState.PREPARING_REBALANCE) and group.has_all_members_joined():
                self._rebalance.complete_join(group)
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
            self._rebalance.maybe_prepare_or_complete_join(group, reason)
        elif group.is_in(GroupState.PREPARING_REBALANCE) and group.has_all_members_joined():
            self._rebalance.complete_join(group)

    # -- LeaveGroup ---------------------------------------------------------------------

    def leave(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[dict[str, Any]]]:
        """`members` are (member id, group instance id). Returns the top-level error and
        one response entry per member."""
        if not group_id:
            return ErrorCode.invalid_group_id, []
        group = self._core.groups.get(group_id)
        if group is None:
            return ErrorCode.none, [
                leave_entry(mid, iid, ErrorCode.unknown_member_id) for mid, iid in members
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
                        leave_entry(member_id, instance_id, ErrorCode.unknown_member_id)
                    )
                    continue
                self._remove_current_member(group, target)
                left.append(target)
            elif member_id in group.pending_join:
                group.remove(member_id)
                self._core.cancel(heartbeat_key(group_id, member_id))
                left.append(member_id)
            else:
                error = group.validate_member(member_id, instance_id)
                if error is not None:
                    responses.append(leave_entry(member_id, instance_id, error))
                    continue
                self._remove_current_member(group, member_id)
                left.append(member_id)
            responses.append(leave_entry(member_id, instance_id, ErrorCode.none))
        if left:
            log.info("group %s: members left: %s", escape(group_id), escape_all(left))
            if group.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
                self._rebalance.maybe_prepare_or_complete_join(group, "members left the group")
            elif group.is_in(GroupState.PREPARING_REBALANCE):
                self._rebalance.maybe_complete_join_phase(group)
        return ErrorCode.none, responses

    def _remove_current_member(self, group: Group, member_id: str) -> None:
        self._core.cancel(heartbeat_key(group.group_id, member_id))
        member = group.members.get(member_id)
        if member is not None:
            complete_join(member, join_error(UNKNOWN_MEMBER_ID, ErrorCode.unknown_member_id))
        group.remove(member_id)
