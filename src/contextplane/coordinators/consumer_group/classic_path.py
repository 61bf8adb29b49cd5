"""Classic members inside a consumer group (Kafka's classicGroupJoinToConsumerGroup and its
sync, heartbeat and leave siblings): a consumer of the classic protocol keeps speaking
JoinGroup / SyncGroup / Heartbeat / LeaveGroup while the coordinator assigns its
partitions with the consumer group's own server-side assignor.

Rules of this file:

* A classic member is a `ConsumerMember` with `classic` metadata; its generation is its
  member epoch. JoinGroup answers with no leader and no member list (no client-side
  assignor runs); SyncGroup hands out what the member holds, encoded at the version of
  the subscription it offered first.
* Revocation is signalled by Heartbeat's REBALANCE_IN_PROGRESS: the member rejoins and
  its JoinGroup's owned partitions drive the same reconciliation as a
  ConsumerGroupHeartbeat's (reconcile.py). Each such answer starts a join timer; a
  JoinGroup starts a sync timer; both are bounded by the member's rebalance timeout and
  fence it when they expire.
* Errors are Kafka's; a refused request changes nothing.
"""

from __future__ import annotations

import base64
import uuid
from typing import TYPE_CHECKING, Any

from contextplane.coordinators.consumer_group.consumer_protocol import (
    MalformedProtocol,
    decode_subscription,
    encode_assignment,
)
from contextplane.coordinators.consumer_group.group import (
    CONSUMER_GROUP_TYPE,
    ClassicMetadata,
    ConsumerGroup,
    ConsumerMember,
)
from contextplane.coordinators.consumer_group.reconcile import MemberState
from contextplane.coordinators.consumer_group.regex import RegexTopics
from contextplane.coordinators.consumer_group.timers import ClassicDeadline, SessionExpiry
from contextplane.coordinators.group_state.messages import (
    JoinRequest,
    SyncRequest,
    join_error,
    leave_entry,
    sync_error,
)
from contextplane.protocol.error_codes import ErrorCode

if TYPE_CHECKING:
    from contextplane.coordinators.consumer_group.machine import (
        ConsumerGroupMachine,
        PartitionCounts,
    )


def _new_member_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class ClassicPath:
    def __init__(self, machine: ConsumerGroupMachine) -> None:
        self._machine = machine

    # -- JoinGroup ----------------------------------------------------------------------

    def join(
        self,
        group: ConsumerGroup,
        request: JoinRequest,
        partitions: PartitionCounts,
        topics_version: int | None,
        regex_topics: RegexTopics,
    ) -> dict[str, Any]:
        machine = self._machine
        if machine.config.migration_policy == "disabled":
            return join_error(request.member_id, ErrorCode.inconsistent_group_protocol)
        member_id = request.member_id or _new_member_id()
        existing = self._existing(group, member_id, request.group_instance_id)
        if existing is None and len(group.members) >= machine.config.max_size:
            return join_error(request.member_id, ErrorCode.group_max_size_reached)
        names = [name for name, _ in request.protocols]
        if not group.supports_classic_protocols(request.protocol_type, names):
            return join_error(request.member_id, ErrorCode.inconsistent_group_protocol)
        if not request.member_id and request.group_instance_id is None and request.api_version >= 4:
            return join_error(member_id, ErrorCode.member_id_required)
        try:
            subscription = decode_subscription(request.protocols[0][1])
        except MalformedProtocol:
            return join_error(request.member_id, ErrorCode.inconsistent_group_protocol)
        member = self._member(group, member_id, request.group_instance_id, existing)
        bump = self._update(member, request, subscription.topics, subscription.rack_id)
        if member.instance_id is not None:
            group.static_members[member.instance_id] = member.member_id
        machine._advance(
            group, member, bump, subscription.owned, partitions, topics_version, regex_topics
        )
        self._restart_session(group, member)
        machine.timers.cancel(self._deadline(group, member, "join").key)
        machine._schedule(self._deadline(group, member, "sync"), member.rebalance_timeout_ms)
        return {
            "error_code": ErrorCode.none,
            "generation_id": member.epoch,
            "protocol_type": CONSUMER_GROUP_TYPE,
            "protocol_name": names[0],
            "leader": "",
            "skip_assignment": False,
            "member_id": member.member_id,
            "members": [],
        }

    @staticmethod
    def _existing(
        group: ConsumerGroup, member_id: str, instance_id: str | None
    ) -> ConsumerMember | None:
        if instance_id is not None:
            static_id = group.static_members.get(instance_id)
            if static_id is not None:
                return group.members.get(static_id)
        return group.members.get(member_id)

    def _member(
        self,
        group: ConsumerGroup,
        member_id: str,
        instance_id: str | None,
        existing: ConsumerMember | None,
    ) -> ConsumerMember:
        if existing is not None and existing.member_id == member_id:
            return existing
        member = ConsumerMember(member_id, instance_id=instance_id)
        group.members[member_id] = member
        if existing is not None:
            # A classic static member replaces the instance's member of either protocol
            # and inherits its assignment, as Kafka does (no UNRELEASED_INSTANCE_ID).
            member.assigned = existing.assigned
            member.subscribed_topics = existing.subscribed_topics
            group.target[member_id] = group.target.pop(existing.member_id, frozenset())
            self._machine._drop(group, existing)
        return member

    @staticmethod
    def _update(
        member: ConsumerMember, request: JoinRequest, topics: tuple[str, ...], rack: str | None
    ) -> bool:
        """The member as its JoinGroup describes it; True if the assignor's input changed."""
        changed = (
            frozenset(topics) != member.subscribed_topics
            or member.subscribed_regex is not None
            or member.server_assignor is not None
        )
        member.subscribed_topics = frozenset(topics)
        member.subscribed_regex = None
        member.regex_topics = frozenset()
        member.server_assignor = None
        member.rack_id = rack
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        member.client_id = request.client_id
        member.client_host = request.client_host
        member.classic = ClassicMetadata(
            request.session_timeout_ms, tuple((n, bytes(m)) for n, m in request.protocols)
        )
        return changed

    # -- SyncGroup ----------------------------------------------------------------------

    def sync(self, group: ConsumerGroup, request: SyncRequest) -> dict[str, Any]:
        member, code = self._validate(
            group, request.member_id, request.group_instance_id, request.generation_id
        )
        if member is None or member.classic is None:
            return sync_error(code)
        first = member.classic.protocols[0][0] if member.classic.protocols else None
        if (request.protocol_type is not None and request.protocol_type != CONSUMER_GROUP_TYPE) or (
            request.protocol_name is not None and request.protocol_name != first
        ):
            return sync_error(ErrorCode.inconsistent_group_protocol)
        if self._must_rejoin_before_sync(group, member):
            self._start_join_timer(group, member)
            return sync_error(ErrorCode.rebalance_in_progress)
        self._machine.timers.cancel(self._deadline(group, member, "sync").key)
        self._restart_session(group, member)
        return {
            "error_code": ErrorCode.none,
            "protocol_type": CONSUMER_GROUP_TYPE,
            "protocol_name": first,
            "assignment": encode_assignment(member.assigned, _subscription_version(member)),
        }

    @staticmethod
    def _must_rejoin_before_sync(group: ConsumerGroup, member: ConsumerMember) -> bool:
        return (
            group.assignment_epoch > member.epoch
            and member.state is not MemberState.UNREVOKED_PARTITIONS
        )

    # -- Heartbeat ----------------------------------------------------------------------

    def heartbeat(
        self, group: ConsumerGroup, member_id: str, generation_id: int, instance_id: str | None
    ) -> ErrorCode:
        member, code = self._validate(group, member_id, instance_id, generation_id)
        if member is None:
            return code
        machine = self._machine
        self._restart_session(group, member)
        if group.group_epoch > group.assignment_epoch and machine._assignment_due(group):
            machine._new_target(group)
        if self._must_rejoin(group, member):
            self._start_join_timer(group, member)
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    @staticmethod
    def _must_rejoin(group: ConsumerGroup, member: ConsumerMember) -> bool:
        """A newer target, partitions to give up, or partitions now free to take."""
        if member.epoch < group.assignment_epoch:
            return True
        if member.state is MemberState.UNREVOKED_PARTITIONS:
            return True
        if member.state is MemberState.UNRELEASED_PARTITIONS:
            pending = group.target.get(member.member_id, frozenset()) - member.assigned
            return bool(pending - group.held_by_others(member.member_id))
        return False

    # -- LeaveGroup ---------------------------------------------------------------------

    def leave(
        self, group: ConsumerGroup, members: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[dict[str, Any]]]:
        entries = []
        for member_id, instance_id in members:
            code = self._leave_one(group, member_id, instance_id)
            entries.append(leave_entry(member_id, instance_id, code))
        return ErrorCode.none, entries

    def _leave_one(
        self, group: ConsumerGroup, member_id: str, instance_id: str | None
    ) -> ErrorCode:
        if instance_id is not None:
            static_id = group.static_members.get(instance_id)
            member = group.members.get(static_id) if static_id is not None else None
            if member is None:
                return ErrorCode.unknown_member_id
            if member_id and member.member_id != member_id:
                return ErrorCode.fenced_instance_id
        else:
            member = group.members.get(member_id)
            if member is None:
                return ErrorCode.unknown_member_id
        if member.classic is None:
            return ErrorCode.unknown_member_id  # "does not use the classic protocol"
        self._machine._remove_member(group, member)
        return ErrorCode.none

    # -- shared -------------------------------------------------------------------------

    @staticmethod
    def _validate(
        group: ConsumerGroup, member_id: str, instance_id: str | None, generation_id: int
    ) -> tuple[ConsumerMember | None, ErrorCode]:
        """Kafka's validateConsumerGroupMember then the generation check."""
        if instance_id is not None:
            static_id = group.static_members.get(instance_id)
            if static_id is None:
                return None, ErrorCode.unknown_member_id
            if static_id != member_id:
                return None, ErrorCode.fenced_instance_id
        member = group.members.get(member_id)
        if member is None or member.classic is None:
            return None, ErrorCode.unknown_member_id
        if generation_id != member.epoch:
            return None, ErrorCode.illegal_generation
        return member, ErrorCode.none

    def _restart_session(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        machine = self._machine
        machine._schedule(
            SessionExpiry(group.group_id, member.member_id),
            machine.member_session_ms(group.group_id, member),
        )

    def _start_join_timer(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        timer = self._deadline(group, member, "join")
        if self._machine.timers.deadline(timer.key) is None:
            self._machine._schedule(timer, member.rebalance_timeout_ms)

    @staticmethod
    def _deadline(group: ConsumerGroup, member: ConsumerMember, kind: str) -> ClassicDeadline:
        return ClassicDeadline(group.group_id, member.member_id, kind)


def _subscription_version(member: ConsumerMember) -> int:
    if member.classic is None or not member.classic.protocols:
        return 0
    try:
        return decode_subscription(member.classic.protocols[0][1]).version
    except MalformedProtocol:
        return 0
