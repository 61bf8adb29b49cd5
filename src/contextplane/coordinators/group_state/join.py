"""JoinGroup: who may join, new and returning members, static members and their
replacement (Kafka's classic-group join paths).

Rules of this file:

* Every JoinGroup is answered exactly once: at once with an error or the current
  generation, or parked on its member until the join phase completes (`rebalance.py`).
  A retried JoinGroup from the same member answers the one it replaces with
  REBALANCE_IN_PROGRESS.
* Errors, in Kafka's order: INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT (outside
  `group.min/max.session.timeout.ms`), UNKNOWN_MEMBER_ID for a member id the coordinator
  has no group for, GROUP_MAX_SIZE_REACHED, COORDINATOR_NOT_AVAILABLE (Dead),
  INCONSISTENT_GROUP_PROTOCOL (no protocol in common, or another protocol type), then
  UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID from member validation.
* From JoinGroup v4 a dynamic member without a member id is given one with
  MEMBER_ID_REQUIRED and is pending until it rejoins with it: the join phase waits for it
  for at most its session timeout.
* A static member (group instance id) that rejoins without a member id replaces its old
  member id, whose parked requests are fenced. In Stable, with the selected protocol
  unchanged, it takes over the old id's assignment without a rebalance.
* A new member's parked JoinGroup is bounded by `new_member_join_timeout_ms`, since a
  parked member cannot heartbeat.
"""

from __future__ import annotations

import logging

from contextplane.coordinators.group_state.classic_group import Group
from contextplane.coordinators.group_state.core import Core
from contextplane.coordinators.group_state.member import Member, complete_join
from contextplane.coordinators.group_state.messages import (
    UNKNOWN_MEMBER_ID,
    JoinRequest,
    Waiter,
    join_error,
)
from contextplane.coordinators.group_state.rebalance import Rebalance
from contextplane.coordinators.group_state.states import GroupState
from contextplane.coordinators.group_state.timers import HeartbeatExpiry, heartbeat_key
from contextplane.logsafe import escape
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)


class JoinPhase:
    def __init__(self, core: Core, rebalance: Rebalance) -> None:
        self._core = core
        self._rebalance = rebalance

    def join(self, request: JoinRequest, waiter: Waiter) -> None:
        config = self._core.config
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
        group = self._core.groups.get(request.group_id)
        if group is None:
            if not is_unknown:
                waiter(join_error(request.member_id, ErrorCode.unknown_member_id))
                return
            group = self._core.get_or_create(request.group_id)
        if not self._accept_joining_member(group, request.member_id):
            group.remove(request.member_id)
            waiter(join_error(UNKNOWN_MEMBER_ID, ErrorCode.group_max_size_reached))
        elif is_unknown:
            self._join_new_member(group, request, waiter)
        else:
            self._join_existing_member(group, request, waiter)

    def _accept_joining_member(self, group: Group, member_id: str) -> bool:
        limit = self._core.config.max_group_size
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
        new_id = f"{prefix}-{self._core.config.member_id_suffix()}"
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
            self._core.schedule(HeartbeatExpiry(group.group_id, new_id), request.session_timeout_ms)
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
        self._rebalance.maybe_prepare_or_complete_join(group, f"member {member.member_id} rejoins")

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
        self._core.reschedule_heartbeat(group, member, self._core.config.new_member_join_timeout_ms)
        self._rebalance.maybe_prepare_or_complete_join(group, f"new member {member_id} joins")

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
        self._core.cancel(heartbeat_key(group.group_id, old_id))
        self._core.reschedule_heartbeat(group, new)
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
                # Kafka stores the group here, before the answer: the new member id is
                # the one that counts from now on.
                self._core.group_stored(group)
                complete_join(new, response)
            else:
                self._rebalance.maybe_prepare_or_complete_join(
                    group, f"static member {new_id} changes the selected protocol"
                )
        elif group.is_in(GroupState.COMPLETING_REBALANCE):
            # The leader may already have been sent the old member id: rebalance again.
            self._rebalance.prepare(group, f"static member {new_id} rejoins")
        elif group.is_in(GroupState.PREPARING_REBALANCE):
            self._rebalance.maybe_complete_join_phase(group)
        else:
            # Empty has no members and Dead groups were refused above.
            raise RuntimeError(
                f"group {escape(group.group_id, quote=True)} in state {group.state.value} "
                "cannot have a known static member"
            )
