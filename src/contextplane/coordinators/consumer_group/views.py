"""ConsumerGroupDescribe's view of a group (assignments by topic name; the handler adds
topic ids), and DescribeGroups' (the classic shape). Rules of this file: nothing here
changes a group."""

from __future__ import annotations

from typing import Any

from contextplane.coordinators.consumer_group.assignors import TopicPartition
from contextplane.coordinators.consumer_group.group import ConsumerGroup, ConsumerMember
from contextplane.protocol.error_codes import ErrorCode

CLASSIC_MEMBER_TYPE = 0
CONSUMER_MEMBER_TYPE = 1


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
        "subscribed_topic_regex": member.subscribed_regex,
        # What the member holds, including what it is still revoking (as Kafka shows it).
        "assignment": member.assigned | member.revoking,
        "target_assignment": target,
        # ConsumerGroupDescribe v1: 0 for a classic member, 1 for a consumer-protocol one.
        "member_type": CLASSIC_MEMBER_TYPE if member.classic is not None else CONSUMER_MEMBER_TYPE,
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


def describe_error(group_id: str, code: ErrorCode, message: str | None) -> dict[str, Any]:
    return {
        "error_code": code,
        "error_message": message,
        "group_id": group_id,
        "group_state": "",
        "group_epoch": 0,
        "assignment_epoch": 0,
        "assignor_name": "",
        "members": [],
    }


def classic_view(group: ConsumerGroup) -> dict[str, Any]:
    """A consumer group as DescribeGroups shows it: its state, protocol type `consumer`,
    the assignor as protocol, the members without classic metadata."""
    return {
        "error_code": ErrorCode.none,
        "group_id": group.group_id,
        "group_state": group.state().value,
        "protocol_type": "consumer",
        "protocol_data": group.assignor_name,
        "members": [
            {
                "member_id": m.member_id,
                "group_instance_id": m.instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "member_metadata": b"",
                "member_assignment": b"",
            }
            for m in group.members.values()
        ],
    }
