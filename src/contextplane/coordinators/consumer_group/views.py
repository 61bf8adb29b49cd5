"""ConsumerGroupDescribe's view of a group (assignments by topic name; the handler adds
topic ids). Rules of this file: nothing here changes a group."""

from __future__ import annotations

from typing import Any

from contextplane.coordinators.consumer_group.assignors import TopicPartition
from contextplane.coordinators.consumer_group.group import ConsumerGroup, ConsumerMember
from contextplane.protocol.error_codes import ErrorCode


def describe_member(member: ConsumerMember, target: frozenset[TopicPartition]) -> dict[str, Any]:
    """One member of ConsumerGroupDescribe (assignments by topic name)."""
    return {
        "member_id": member.member_id,
        "instance_id": member.instance_id,
        "rack_id": member.rack_id,
        "member_epoch": member.epoch,
        "client_id": member.client_id,
        "client_host": member.client_host,
        "subscribed_topic_names": sorted(member.subscribed_topics),
        "subscribed_topic_regex": None,
        # What the member holds, including what it is still revoking (as Kafka shows it).
        "assignment": member.assigned | member.revoking,
        "target_assignment": target,
    }


def describe_group(group: ConsumerGroup) -> dict[str, Any]:
    return {
        "error_code": ErrorCode.none,
        "error_message": None,
        "group_id": group.group_id,
        "group_state": group.state().value,
        "group_epoch": group.group_epoch,
        "assignment_epoch": group.assignment_epoch,
        "assignor_name": group.assignor_name,
        "members": [
            describe_member(m, group.target.get(m.member_id, frozenset()))
            for m in group.members.values()
        ],
    }
