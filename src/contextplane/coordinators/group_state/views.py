"""ListGroups and DescribeGroups: read-only views of the groups.

Rules of this file: nothing here changes a group. A group the coordinator does not know is
described as Dead with no error (as Kafka does); member metadata and assignments are shown
only in Stable, when they belong to a completed generation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from contextplane.coordinators.group_state.classic_group import Group
from contextplane.coordinators.group_state.messages import GROUP_TYPE
from contextplane.coordinators.group_state.states import GroupState
from contextplane.protocol.error_codes import ErrorCode


def list_groups(
    groups: Mapping[str, Group],
    states_filter: Iterable[str] = (),
    types_filter: Iterable[str] = (),
) -> list[dict[str, Any]]:
    states = {s.strip().lower() for s in states_filter}
    types = {t.strip().lower() for t in types_filter}
    if types and GROUP_TYPE not in types:
        return []
    return [
        {
            "group_id": g.group_id,
            "protocol_type": g.protocol_type or "",
            "group_state": g.state.value,
            "group_type": GROUP_TYPE,
        }
        for g in groups.values()
        if not states or g.state.value.lower() in states
    ]


def describe_group_error(group_id: str, code: ErrorCode, state: str = "") -> dict[str, Any]:
    """DescribeGroups' entry for a group it cannot describe (or an unknown one: Dead)."""
    return {
        "error_code": code,
        "group_id": group_id,
        "group_state": state,
        "protocol_type": "",
        "protocol_data": "",
        "members": [],
    }


def describe_group(group_id: str, group: Group | None) -> dict[str, Any]:
    if group is None:
        return describe_group_error(group_id, ErrorCode.none, GroupState.DEAD.value)
    stable = group.is_in(GroupState.STABLE)
    members = [
        {
            "member_id": m.member_id,
            "group_instance_id": m.group_instance_id,
            "client_id": m.client_id,
            "client_host": m.client_host,
            "member_metadata": m.metadata(group.protocol_name) if stable else b"",
            "member_assignment": m.assignment if stable else b"",
        }
        for m in group.members.values()
    ]
    return {
        "error_code": ErrorCode.none,
        "group_id": group_id,
        "group_state": group.state.value,
        "protocol_type": group.protocol_type or "",
        "protocol_data": (group.protocol_name or "") if stable else "",
        "members": members,
    }


def removable_empty_groups(groups: Mapping[str, Group]) -> list[str]:
    """Empty groups with nobody waiting to join (candidates for cleanup once they have no
    committed offsets)."""
    return [
        g.group_id
        for g in groups.values()
        if g.is_in(GroupState.EMPTY) and not g.members and not g.pending_join
    ]
