"""Which member a ConsumerGroupHeartbeat names, by Kafka's rules: a new member, one
rejoining (epoch 0: whatever it held is lost), a static member taken over under a new
member id, or one whose epoch is checked (Kafka's throwIfMemberEpochIsInvalid); and what
the request's fields change in it. A refusal raises `HeartbeatRefused` with Kafka's
message, before anything changed."""

from __future__ import annotations

from contextplane.coordinators.consumer_group.group import ConsumerGroup, ConsumerMember
from contextplane.coordinators.consumer_group.messages import ConsumerHeartbeat, HeartbeatRefused
from contextplane.coordinators.consumer_group.reconcile import MemberState
from contextplane.protocol.error_codes import ErrorCode


def heartbeat_member(
    group: ConsumerGroup, request: ConsumerHeartbeat
) -> tuple[ConsumerMember, bool, ConsumerMember | None]:
    """(member, whether it is new, the static member it replaces)."""
    joining = request.member_epoch == 0
    if request.instance_id is None:
        member = group.members.get(request.member_id)
        if member is None:
            if not joining:
                raise HeartbeatRefused(
                    ErrorCode.unknown_member_id,
                    f"Member {request.member_id} is not a member of group {group.group_id}.",
                )
            return ConsumerMember(request.member_id), True, None
        if joining:
            # The member rejoins (e.g. after being fenced): whatever it held is lost.
            _restart(member)
            return member, False, None
        _check_epoch(member, request)
        return member, False, None
    static_id = group.static_members.get(request.instance_id)
    static = group.members.get(static_id) if static_id is not None else None
    if joining:
        if static is None:
            existing = group.members.get(request.member_id)
            if existing is not None:
                _restart(existing)
                return existing, False, None
            return ConsumerMember(request.member_id), True, None
        if static.member_id == request.member_id:
            _restart(static)
            return static, False, None
        if not static.has_left_statically():
            raise HeartbeatRefused(
                ErrorCode.unreleased_instance_id,
                f"Static member {request.member_id} with instance id {request.instance_id} "
                f"cannot join the group because the instance id is owned by "
                f"{static.member_id} member.",
            )
        # The successor inherits what the assignor saw, so nothing is rebalanced.
        successor = ConsumerMember(
            request.member_id,
            rack_id=static.rack_id,
            rebalance_timeout_ms=static.rebalance_timeout_ms,
            subscribed_topics=static.subscribed_topics,
            subscribed_regex=static.subscribed_regex,
            regex_topics=static.regex_topics,
            server_assignor=static.server_assignor,
            assigned=static.assigned,
        )
        return successor, True, static
    if static is None:
        raise HeartbeatRefused(
            ErrorCode.unknown_member_id, f"Instance id {request.instance_id} is unknown."
        )
    if static.member_id != request.member_id:
        raise HeartbeatRefused(
            ErrorCode.fenced_instance_id,
            f"Static member {request.member_id} with instance id {request.instance_id} was "
            f"fenced by member {static.member_id}.",
        )
    _check_epoch(static, request)
    return static, False, None


def _restart(member: ConsumerMember) -> None:
    member.epoch = 0
    member.previous_epoch = 0
    member.state = MemberState.STABLE
    member.assigned = frozenset()
    member.revoking = frozenset()


def _check_epoch(member: ConsumerMember, request: ConsumerHeartbeat) -> None:
    """Kafka's throwIfMemberEpochIsInvalid: a heartbeat at the member's previous epoch
    is accepted if it owns only partitions it still has (its last response was lost)."""
    received = request.member_epoch
    if received > member.epoch:
        raise HeartbeatRefused(
            ErrorCode.fenced_member_epoch,
            f"The consumer group member has a greater member epoch ({received}) than the "
            f"one known by the group coordinator ({member.epoch}). The member must "
            f"abandon all its partitions and rejoin.",
        )
    if received < member.epoch:
        held_topics = {topic for topic, _ in member.assigned}
        lost_response = (
            received == member.previous_epoch
            and request.owned is not None
            and request.owned <= member.assigned
            and request.owned_topics <= held_topics
        )
        if not lost_response:
            raise HeartbeatRefused(
                ErrorCode.fenced_member_epoch,
                f"The consumer group member has a smaller member epoch ({received}) than "
                f"the one known by the group coordinator ({member.epoch}). The member "
                f"must abandon all its partitions and rejoin.",
            )


def apply_request(member: ConsumerMember, request: ConsumerHeartbeat) -> bool:
    """Apply the fields the request sets; True if the assignor's input changed."""
    changed = False
    if request.instance_id is not None:
        member.instance_id = request.instance_id
    if request.rack_id is not None:
        member.rack_id = request.rack_id
    if request.rebalance_timeout_ms != -1:
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
    if request.server_assignor is not None and request.server_assignor != member.server_assignor:
        member.server_assignor = request.server_assignor
        changed = True
    if request.subscribed_topic_names is not None:
        topics = frozenset(request.subscribed_topic_names)
        if topics != member.subscribed_topics:
            member.subscribed_topics = topics
            changed = True
    if request.subscribed_topic_regex is not None:
        pattern = request.subscribed_topic_regex or None  # "": no regex
        if pattern != member.subscribed_regex:
            member.subscribed_regex = pattern
            changed = True  # its matches are evaluated by the caller
    member.client_id = request.client_id
    member.client_host = request.client_host
    return changed


def leaving_member(group: ConsumerGroup, request: ConsumerHeartbeat) -> ConsumerMember:
    """The member a leave (epoch -1 or -2) names."""
    if request.instance_id is None:
        member = group.members.get(request.member_id)
        if member is None:
            raise HeartbeatRefused(
                ErrorCode.unknown_member_id,
                f"Member {request.member_id} is not a member of group {group.group_id}.",
            )
    else:
        static_id = group.static_members.get(request.instance_id)
        member = group.members.get(static_id) if static_id is not None else None
        if member is None:
            raise HeartbeatRefused(
                ErrorCode.unknown_member_id, f"Instance id {request.instance_id} is unknown."
            )
        if member.member_id != request.member_id:
            raise HeartbeatRefused(
                ErrorCode.fenced_instance_id,
                f"Static member {request.member_id} with instance id "
                f"{request.instance_id} was fenced by member {member.member_id}.",
            )
    return member
