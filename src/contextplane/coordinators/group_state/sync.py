"""SyncGroup: the leader hands in the generation's assignment, everyone receives theirs.

Rules of this file:

* Every SyncGroup is answered exactly once: at once, or parked on its member in
  CompletingRebalance until the leader's assignment arrives (or a rebalance, removal or
  shutdown answers it). A retried SyncGroup answers the one it replaces with
  REBALANCE_IN_PROGRESS.
* Errors, in Kafka's order: INVALID_GROUP_ID; UNKNOWN_MEMBER_ID for an unknown or Empty
  group; COORDINATOR_NOT_AVAILABLE (Dead); UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID from
  member validation; ILLEGAL_GENERATION; INCONSISTENT_GROUP_PROTOCOL when the request's
  protocol type or name differs from the group's; REBALANCE_IN_PROGRESS while the group
  prepares a rebalance.
* Only the leader's SyncGroup in CompletingRebalance sets the assignment (event
  ASSIGNMENT); a member the leader left out gets empty bytes. Assignments sent by anyone
  else are ignored. In Stable, SyncGroup returns the stored assignment.
* Members of a generation that have not sent SyncGroup within the rebalance timeout are
  removed and the group rebalances (the sync timer, keyed by generation: a timer of an
  older generation does nothing).
"""

from __future__ import annotations

import logging

from contextplane.coordinators.group_state.classic_group import Group
from contextplane.coordinators.group_state.core import Core
from contextplane.coordinators.group_state.member import complete_sync
from contextplane.coordinators.group_state.messages import SyncRequest, Waiter, sync_error
from contextplane.coordinators.group_state.rebalance import Rebalance
from contextplane.coordinators.group_state.states import GroupEvent, GroupState
from contextplane.coordinators.group_state.timers import SyncDeadline, heartbeat_key, sync_key
from contextplane.logsafe import escape, escape_all
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)


class SyncPhase:
    def __init__(self, core: Core, rebalance: Rebalance) -> None:
        self._core = core
        self._rebalance = rebalance

    def sync(self, request: SyncRequest, waiter: Waiter) -> None:
        if not request.group_id:
            waiter(sync_error(ErrorCode.invalid_group_id))
            return
        group = self._core.groups.get(request.group_id)
        if group is None or group.is_in(GroupState.EMPTY):
            waiter(sync_error(ErrorCode.unknown_member_id))
            return
        error = self._validate(group, request)
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
                # Stored before the members are told, as Kafka answers them once the
                # record is written.
                self._core.group_stored(group)
                self._rebalance.propagate_assignment(group, ErrorCode.none)
                group.transition(GroupEvent.ASSIGNMENT, self._core.now_ms())
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

    def _validate(self, group: Group, request: SyncRequest) -> ErrorCode | None:
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
            self._core.cancel(sync_key(group.group_id))

    def on_sync_deadline(self, timer: SyncDeadline) -> None:
        group_id = timer.group_id
        group = self._core.groups.get(group_id)
        if group is None or group.generation_id != timer.generation_id:
            return
        if not group.is_in(GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            return
        if not group.pending_sync:
            return
        missing = sorted(group.pending_sync)
        for member_id in missing:
            group.remove(member_id)
            self._core.cancel(heartbeat_key(group_id, member_id))
        log.info(
            "group %s: removed members that did not send SyncGroup: %s",
            escape(group_id),
            escape_all(missing),
        )
        self._rebalance.prepare(group, "members did not sync in time")


def _inconsistent(requested: str | None, current: str | None) -> bool:
    return requested is not None and current is not None and requested != current
