"""A classic group as Kafka stores it (GroupMetadataValue in `__consumer_offsets`) and
as a coordinator that takes the group loads it back (Kafka's `ClassicGroup.fromRecord`).

Rules of this file:

* What is stored is what Kafka writes at the points it writes it (the machine's
  `group_stored`): the generation, protocol type and name, leader and each member's ids,
  timeouts, subscription to the selected protocol and assignment.
* A loaded group is Stable at its stored generation, or Empty if it had no members; each
  member supports the selected protocol alone (its subscription), as in Kafka. Its
  sessions start when the machine takes it (`GroupStateMachine.load_group`), not here.
* A value that contradicts itself (members but no protocol, a member id or instance id
  twice, a leader that is not a member) raises ValueError: the group is not loaded.
"""

from __future__ import annotations

from contextplane.coordinators.group_state.classic_group import Group
from contextplane.coordinators.group_state.member import Member
from contextplane.coordinators.group_state.states import GroupState
from contextplane.protocol.offsets_records import GroupMetadata, MemberMetadata


def group_metadata(group: Group, now_wall_ms: int) -> GroupMetadata:
    """A group as Kafka's GroupMetadataValue holds it after a completed rebalance."""
    protocol = group.protocol_name
    return GroupMetadata(
        protocol_type=group.protocol_type or "",
        generation=group.generation_id,
        protocol=protocol,
        leader=group.leader_id,
        current_state_timestamp_ms=now_wall_ms,
        members=[
            MemberMetadata(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                rebalance_timeout_ms=m.rebalance_timeout_ms,
                session_timeout_ms=m.session_timeout_ms,
                subscription=m.metadata(protocol),
                assignment=m.assignment,
            )
            for m in group.members.values()
        ],
    )


def loaded_group(group_id: str, value: GroupMetadata, now_ms: int) -> Group:
    """The group `value` describes: Stable with its members, or Empty."""
    if value.generation < 0:
        raise ValueError(f"generation {value.generation} is negative")
    members = value.members
    if members and (not value.protocol_type or value.protocol is None):
        raise ValueError("members without a protocol type and name")
    group = Group(group_id, now_ms, GroupState.STABLE if members else GroupState.EMPTY)
    group.generation_id = value.generation
    group.protocol_type = value.protocol_type or None
    for stored in members:
        if stored.member_id in group.members:
            raise ValueError(f"member {stored.member_id!r} is stored twice")
        if stored.group_instance_id in group.static_members:
            raise ValueError(f"static member {stored.group_instance_id!r} is stored twice")
        group.add(_member(stored, value), None)
    if members:
        if value.leader not in group.members:
            raise ValueError(f"leader {value.leader!r} is not a member")
        group.leader_id = value.leader
        group.protocol_name = value.protocol
    group.subscribed_topics = group.compute_subscribed_topics()
    return group


def _member(stored: MemberMetadata, value: GroupMetadata) -> Member:
    return Member(
        member_id=stored.member_id,
        group_instance_id=stored.group_instance_id,
        client_id=stored.client_id,
        client_host=stored.client_host,
        rebalance_timeout_ms=stored.rebalance_timeout_ms,
        session_timeout_ms=stored.session_timeout_ms,
        protocol_type=value.protocol_type,
        protocols=[(value.protocol or "", stored.subscription)],
        assignment=stored.assignment,
    )
