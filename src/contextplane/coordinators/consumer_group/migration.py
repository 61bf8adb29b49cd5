"""A group with members moving between the classic and the consumer protocol (KIP-848's
online upgrade and downgrade, Kafka's ConsumerGroup.fromClassicGroup and
ClassicGroup.fromConsumerGroup), as pure conversions.

Rules of this file:

* Upgrade: the consumer group starts at the classic generation (group epoch, target
  epoch and every member's epoch), each member keeps the partitions its last SyncGroup
  gave it as assignment and target, and keeps its classic metadata. A classic group that
  was rebalancing has its epoch bumped so the first heartbeat computes a fresh target,
  and a group that never completed a rebalance starts at epoch 1 with nothing assigned
  (Kafka 4.4.1's fixes of KAFKA-21581/21582/21584). Overlapping assignments are refused
  (Kafka 4.4 fails with UNKNOWN_SERVER_ERROR, KAFKA-21684).
* Downgrade: the classic group is Stable at the group epoch, each member holding its
  target assignment; the owner then starts a rebalance so the members agree again with
  a client-side leader.
* Refusals are Kafka's texts; nothing is converted when one is raised.
"""

from __future__ import annotations

from contextplane.coordinators.consumer_group.assignors import TopicPartition
from contextplane.coordinators.consumer_group.consumer_protocol import (
    MalformedProtocol,
    decode_assignment,
    decode_subscription,
    encode_assignment,
)
from contextplane.coordinators.consumer_group.group import (
    CONSUMER_GROUP_TYPE,
    ClassicMetadata,
    ConsumerGroup,
    ConsumerMember,
)
from contextplane.coordinators.consumer_group.messages import ConsumerGroupConfig
from contextplane.coordinators.group_state.classic_group import Group
from contextplane.coordinators.group_state.member import Member
from contextplane.coordinators.group_state.states import GroupState


class UpgradeRefused(Exception):
    """The classic group stays classic; the message is Kafka's (GROUP_ID_NOT_FOUND)."""


def upgrade_refusal(group: Group, config: ConsumerGroupConfig) -> str | None:
    """Kafka 4.4's validateOnlineUpgrade, as the message of its refusal."""
    prefix = f"Cannot upgrade classic group {group.group_id} to consumer group because"
    if not config.upgrade_enabled():
        return f"{prefix} online upgrade is disabled."
    if group.protocol_type != CONSUMER_GROUP_TYPE:
        return f"{prefix} the group does not use the consumer embedded protocol."
    if len(group.members) > config.max_size:
        return f"{prefix} the group size exceeds the consumer group maximum size."
    return None


def from_classic_group(group: Group, assignor: str) -> ConsumerGroup:
    """The consumer group a classic group becomes; raises `UpgradeRefused`."""
    prefix = f"Cannot upgrade classic group {group.group_id} to consumer group because"
    generation = group.generation_id
    epoch = max(generation, 1)
    converted = ConsumerGroup(
        group.group_id, group_epoch=epoch, assignment_epoch=epoch, assignor_name=assignor
    )
    held: set[TopicPartition] = set()
    for classic in group.members.values():
        try:
            metadata = classic.metadata(group.protocol_name) or _first_metadata(classic)
            subscription = decode_subscription(metadata)
            assignment = (
                decode_assignment(classic.assignment)
                if generation > 0 and classic.assignment
                else None
            )
        except MalformedProtocol:
            raise UpgradeRefused(f"{prefix} the embedded consumer protocol is malformed.") from None
        if assignment is not None and assignment.user_data:
            raise UpgradeRefused(
                f"{prefix} an unsupported custom assignor is in use. Please refer to the "
                f"documentation or switch to a default assignor before re-attempting the upgrade."
            )
        assigned = assignment.partitions if assignment is not None else frozenset()
        if assigned & held:
            raise UpgradeRefused(f"{prefix} two members are assigned the same partitions.")
        held |= assigned
        member = ConsumerMember(
            classic.member_id,
            instance_id=classic.group_instance_id,
            rack_id=subscription.rack_id,
            client_id=classic.client_id,
            client_host=classic.client_host,
            rebalance_timeout_ms=classic.rebalance_timeout_ms,
            subscribed_topics=frozenset(subscription.topics),
            epoch=epoch,
            previous_epoch=epoch,
            assigned=assigned,
            classic=ClassicMetadata(classic.session_timeout_ms, tuple(classic.protocols)),
        )
        converted.members[member.member_id] = member
        if assigned:
            converted.target[member.member_id] = assigned
        if member.instance_id is not None:
            converted.static_members[member.instance_id] = member.member_id
    if group.is_in(GroupState.PREPARING_REBALANCE, GroupState.COMPLETING_REBALANCE):
        converted.group_epoch += 1  # what the members hold is not what they agreed on
    return converted


def _first_metadata(member: Member) -> bytes:
    return member.protocols[0][1] if member.protocols else b""


def to_classic_group(group: ConsumerGroup, now_ms: int) -> Group:
    """The classic group a consumer group of classic members only becomes (Stable, at
    the group epoch); the caller starts its rebalance."""
    classic = Group(group.group_id, now_ms, GroupState.STABLE)
    classic.generation_id = group.group_epoch
    for member in group.members.values():
        metadata = member.classic
        if metadata is None:
            raise ValueError(f"member {member.member_id} does not use the classic protocol")
        target = group.target.get(member.member_id, member.assigned)
        classic.add(
            Member(
                member_id=member.member_id,
                group_instance_id=member.instance_id,
                client_id=member.client_id,
                client_host=member.client_host,
                rebalance_timeout_ms=member.rebalance_timeout_ms,
                session_timeout_ms=metadata.session_timeout_ms,
                protocol_type=CONSUMER_GROUP_TYPE,
                protocols=list(metadata.protocols),
                assignment=encode_assignment(target, _version(metadata)),
            ),
            None,
        )
    classic.protocol_name = classic.select_protocol()
    classic.subscribed_topics = classic.compute_subscribed_topics()
    return classic


def _version(metadata: ClassicMetadata) -> int:
    try:
        return decode_subscription(metadata.protocols[0][1]).version
    except (MalformedProtocol, IndexError):
        return 0
