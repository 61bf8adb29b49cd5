"""Which offset operations a group allows now (the offsets themselves live in the metadata
store, not here).

Rules of this file:

* OffsetCommit from a member is fenced like a heartbeat: UNKNOWN_MEMBER_ID /
  FENCED_INSTANCE_ID from member validation, then ILLEGAL_GENERATION; during
  CompletingRebalance, REBALANCE_IN_PROGRESS. A commit that passes keeps the member's
  session alive, as a heartbeat does.
* A commit with generation -1 and no member (a simple consumer, an admin client) is
  allowed only while the group is Empty, and creates the group if it does not exist; a
  commit with a generation for an unknown group is GROUP_ID_NOT_FOUND (v9+) or
  ILLEGAL_GENERATION (older versions).
* TxnOffsetCommit (v3+ names the member) is validated the same way, as Kafka's
  validateTransactionalOffsetCommit: a generation for an unknown group is
  GROUP_ID_NOT_FOUND from v6 (KIP-1319), ILLEGAL_GENERATION before; a commit without
  member and generation is accepted whatever the group's state, and it keeps no session
  alive.
* DeleteGroups needs an Empty group; OffsetDelete needs Empty, or a consumer group (then
  the handler refuses the topics the group is subscribed to).
"""

from __future__ import annotations

from contextplane.coordinators.group_state.core import Core
from contextplane.coordinators.group_state.states import GroupState
from contextplane.protocol.error_codes import ErrorCode


class OffsetRules:
    def __init__(self, core: Core) -> None:
        self._core = core

    def validate_offset_commit(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        api_version: int,
        transactional: bool = False,
    ) -> ErrorCode | None:
        """None if the commit may proceed. A generation of -1 from a non-member (a simple
        consumer or an admin client) creates the group if it does not exist."""
        group = self._core.groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                # OffsetCommit v9+ and TxnOffsetCommit v6+ say so; older versions keep
                # ILLEGAL_GENERATION.
                says_not_found = api_version >= (6 if transactional else 9)
                return (
                    ErrorCode.group_id_not_found if says_not_found else ErrorCode.illegal_generation
                )
            group = self._core.get_or_create(group_id)
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
        elif not transactional and not group.is_in(GroupState.EMPTY):
            # No member id and no generation: only an empty group accepts such commits.
            return ErrorCode.unknown_member_id
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            return ErrorCode.rebalance_in_progress
        if not transactional and group.is_in(GroupState.STABLE, GroupState.PREPARING_REBALANCE):
            member = group.members.get(member_id)
            if member is not None:
                # An offset commit keeps the session alive, as a heartbeat does.
                self._core.reschedule_heartbeat(group, member)
        return None

    def validate_delete_group(self, group_id: str, has_offsets: bool) -> ErrorCode | None:
        group = self._core.groups.get(group_id)
        if group is None:
            return None if has_offsets else ErrorCode.group_id_not_found
        if group.is_in(GroupState.DEAD):
            return ErrorCode.group_id_not_found
        if not group.is_in(GroupState.EMPTY):
            return ErrorCode.non_empty_group
        return None

    def validate_offset_delete(self, group_id: str) -> ErrorCode | None:
        group = self._core.groups.get(group_id)
        if group is None or group.is_in(GroupState.DEAD):
            return ErrorCode.group_id_not_found
        if not group.is_in(GroupState.EMPTY) and not group.uses_consumer_protocol():
            return ErrorCode.non_empty_group
        return None

    def is_subscribed_to_topic(self, group_id: str, topic: str) -> bool:
        group = self._core.groups.get(group_id)
        return group is not None and group.is_subscribed_to_topic(topic)
