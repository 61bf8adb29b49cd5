"""What holds between any two calls into the machine.

Rules of this file: it only reads. `check_invariants` returns one sentence per broken
invariant (empty when all hold); the simulation calls it after every step, and a test or a
debugging session may call it at any time. Each invariant is a fact the phases rely on
without re-checking it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from contextplane.coordinators.group_state.classic_group import Group
from contextplane.coordinators.group_state.states import GroupState
from contextplane.coordinators.group_state.timers import (
    GroupTimer,
    SyncDeadline,
    Timers,
    heartbeat_key,
    join_key,
    sync_key,
)
from contextplane.logsafe import escape

_REBALANCED = (GroupState.COMPLETING_REBALANCE, GroupState.STABLE)


def check_invariants(groups: Mapping[str, Group], timers: Timers[GroupTimer]) -> list[str]:
    broken: list[str] = []
    for group_id, group in groups.items():
        name = escape(group_id, quote=True)
        facts = _group(group, timers)
        broken.extend(f"group {name} ({group.state.value}): {fact}" for fact in facts)
        if group.group_id != group_id:
            broken.append(f"group {name} is filed under another id")
    return broken


def _group(group: Group, timers: Timers[GroupTimer]) -> list[str]:
    return [
        *_state(group),
        *_membership(group),
        *_waiters(group),
        *_timers(group, timers),
    ]


def _state(group: Group) -> list[str]:
    broken = []
    if group.state is GroupState.DEAD:
        broken.append("a Dead group is still held")
    if group.generation_id < 0:
        broken.append(f"generation {group.generation_id} is negative")
    if group.state is GroupState.EMPTY and group.members:
        broken.append("an Empty group has members")
    if group.state in _REBALANCED:
        if not group.members:
            broken.append("a rebalanced group has no members")
        name = group.protocol_name
        if name is None or group.supported.get(name, 0) != len(group.members):
            broken.append(f"selected protocol {escape(name)} is not supported by every member")
    for member in group.members.values():
        if member.protocol_type != group.protocol_type:
            broken.append(f"member {escape(member.member_id)} has another protocol type")
        if member.is_new and group.state is not GroupState.PREPARING_REBALANCE:
            broken.append(f"new member {escape(member.member_id)} outside a join phase")
    return broken


def _membership(group: Group) -> list[str]:
    broken = []
    if group.members:
        if group.leader_id not in group.members:
            broken.append(f"leader {escape(group.leader_id)} is not a member")
    elif group.leader_id is not None:
        broken.append(f"leader {escape(group.leader_id)} of a group without members")
    static = {
        m.group_instance_id: m.member_id
        for m in group.members.values()
        if m.group_instance_id is not None
    }
    if static != group.static_members:
        broken.append(f"static members {group.static_members} do not match members {static}")
    counted = Counter(name for m in group.members.values() for name in m.protocol_names())
    supported = {name: count for name, count in group.supported.items() if count != 0}
    if supported != dict(counted):
        broken.append(f"protocol counts {supported} do not match members {dict(counted)}")
    if group.pending_join & group.members.keys():
        broken.append("a pending member is also a member")
    if not group.pending_sync <= group.members.keys():
        broken.append("a member that is gone is still expected to sync")
    if group.pending_sync and group.state not in _REBALANCED:
        broken.append("members are expected to sync outside a generation")
    return broken


def _waiters(group: Group) -> list[str]:
    broken = []
    for member in group.members.values():
        if member.awaiting_join and group.state is not GroupState.PREPARING_REBALANCE:
            broken.append(f"member {escape(member.member_id)} has a JoinGroup parked")
        if member.awaiting_sync and group.state is not GroupState.COMPLETING_REBALANCE:
            broken.append(f"member {escape(member.member_id)} has a SyncGroup parked")
    return broken


def _timers(group: Group, timers: Timers[GroupTimer]) -> list[str]:
    broken = []
    group_id = group.group_id
    preparing = group.state is GroupState.PREPARING_REBALANCE
    if preparing != (join_key(group_id) in timers):
        broken.append("the join phase timer does not match the state")
    sync = timers.get(sync_key(group_id))
    if group.pending_sync and not (
        isinstance(sync, SyncDeadline) and sync.generation_id == group.generation_id
    ):
        broken.append("members are expected to sync but no sync deadline is set")
    for member_id in group.pending_join:
        if heartbeat_key(group_id, member_id) not in timers:
            broken.append(f"pending member {escape(member_id)} can never expire")
    for member in group.members.values():
        if not member.has_satisfied_heartbeat() and (
            heartbeat_key(group_id, member.member_id) not in timers
        ):
            broken.append(f"member {escape(member.member_id)} can never expire")
    return broken
