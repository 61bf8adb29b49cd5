"""A KIP-848 consumer group as the metadata store keeps it (Kafka keeps the same facts as
ConsumerGroupMetadata, ConsumerGroupMemberMetadata, TargetAssignment and
CurrentMemberAssignment records in `__consumer_offsets`), and what changed since the last
save.

Rules of this file:

* A group's document holds its epochs, assignor and the partition counts its target was
  computed from; a member's document holds what it subscribes to, its epochs,
  reconciliation state, current and target assignment. Timers and the time of the last
  target are not stored: a loaded group restarts its members' sessions (as Kafka does)
  and may compute a target at its first heartbeat.
* `SavedGroups.changes` finds what differs from the last successful save without
  encoding anything that did not change: a steady heartbeat writes nothing, and costs a
  comparison of one member's fields (by identity first: the machine replaces a set only
  when it changes, and tuples compare their elements identity first).
* Only a member's own heartbeat changes that member alone; whatever changes others (a new
  target, a member added, removed or replaced) changes the group's epochs or its member
  set, which makes `changes` compare every member.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from contextplane.coordinators.consumer_group.assignors import TopicPartition
from contextplane.coordinators.consumer_group.group import (
    ClassicMetadata,
    ConsumerGroup,
    ConsumerMember,
)
from contextplane.coordinators.consumer_group.reconcile import MemberState
from contextplane.metadata.records import ConsumerGroupWrite, MemberWrite, StoredConsumerGroup

_DOCUMENT_VERSION = 1

GroupSnapshot = tuple[Any, ...]
# (metadata, assignment): each saved on its own when it alone changed.
MemberSnapshot = tuple[tuple[Any, ...], tuple[Any, ...]]


def _group_snapshot(group: ConsumerGroup) -> GroupSnapshot:
    return (
        group.group_epoch,
        group.assignment_epoch,
        group.assignor_name,
        group.subscription_metadata,
        group.regexes_resolved_ms,
    )


def _member_snapshot(member: ConsumerMember, target: frozenset[TopicPartition]) -> MemberSnapshot:
    metadata = (
        member.instance_id,
        member.rack_id,
        member.client_id,
        member.client_host,
        member.rebalance_timeout_ms,
        member.subscribed_topics,
        member.subscribed_regex,
        member.regex_topics,
        member.server_assignor,
        member.classic,
    )
    assignment = (
        member.epoch,
        member.previous_epoch,
        member.state,
        member.assigned,
        member.revoking,
        target,
    )
    return metadata, assignment


def _partitions(partitions: Iterable[TopicPartition]) -> dict[str, list[int]]:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(partitions):
        by_topic.setdefault(topic, []).append(partition)
    return by_topic


def _from_partitions(by_topic: Mapping[str, list[int]]) -> frozenset[TopicPartition]:
    return frozenset((topic, int(p)) for topic, parts in by_topic.items() for p in parts)


def _encode(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def group_document(group: ConsumerGroup) -> str:
    return _encode(
        {
            "v": _DOCUMENT_VERSION,
            "group_epoch": group.group_epoch,
            "assignment_epoch": group.assignment_epoch,
            "assignor": group.assignor_name,
            "partition_counts": group.subscription_metadata,
            "regexes_resolved_ms": group.regexes_resolved_ms,
        }
    )


def member_metadata_document(member: ConsumerMember) -> str:
    return _encode(
        {
            "v": _DOCUMENT_VERSION,
            "instance_id": member.instance_id,
            "rack_id": member.rack_id,
            "client_id": member.client_id,
            "client_host": member.client_host,
            "rebalance_timeout_ms": member.rebalance_timeout_ms,
            "topics": sorted(member.subscribed_topics),
            "regex": member.subscribed_regex,
            "regex_topics": sorted(member.regex_topics),
            "assignor": member.server_assignor,
            "classic": _classic_document(member.classic),
        }
    )


def _classic_document(classic: ClassicMetadata | None) -> dict[str, Any] | None:
    if classic is None:
        return None
    return {
        "session_timeout_ms": classic.session_timeout_ms,
        "protocols": [[name, base64.b64encode(meta).decode()] for name, meta in classic.protocols],
    }


def _classic_metadata(document: dict[str, Any] | None) -> ClassicMetadata | None:
    """A member's classic metadata (documents written before it existed have none)."""
    if document is None:
        return None
    return ClassicMetadata(
        int(document["session_timeout_ms"]),
        tuple((str(name), base64.b64decode(meta)) for name, meta in document["protocols"]),
    )


def member_assignment_document(member: ConsumerMember, target: frozenset[TopicPartition]) -> str:
    return _encode(
        {
            "v": _DOCUMENT_VERSION,
            "epoch": member.epoch,
            "previous_epoch": member.previous_epoch,
            "state": member.state.value,
            "assigned": _partitions(member.assigned),
            "revoking": _partitions(member.revoking),
            "target": _partitions(target),
        }
    )


def load_group(stored: StoredConsumerGroup) -> ConsumerGroup:
    """The group a save wrote (targets of members that are gone are not kept)."""
    doc = json.loads(stored.state)
    group = ConsumerGroup(
        stored.group_id,
        group_epoch=int(doc["group_epoch"]),
        assignment_epoch=int(doc["assignment_epoch"]),
        assignor_name=str(doc["assignor"]),
        subscription_metadata={str(t): int(n) for t, n in doc["partition_counts"].items()},
        # Documents written before it: None, resolved again at the first heartbeat.
        regexes_resolved_ms=doc.get("regexes_resolved_ms"),
    )
    for member_id, (metadata, assignment) in sorted(stored.members.items()):
        m = json.loads(metadata) | json.loads(assignment)
        member = ConsumerMember(
            member_id,
            instance_id=m["instance_id"],
            rack_id=m["rack_id"],
            client_id=m["client_id"],
            client_host=m["client_host"],
            rebalance_timeout_ms=int(m["rebalance_timeout_ms"]),
            subscribed_topics=frozenset(m["topics"]),
            subscribed_regex=m["regex"],
            regex_topics=frozenset(m["regex_topics"]),
            server_assignor=m["assignor"],
            epoch=int(m["epoch"]),
            previous_epoch=int(m["previous_epoch"]),
            state=MemberState(m["state"]),
            assigned=_from_partitions(m["assigned"]),
            revoking=_from_partitions(m["revoking"]),
            classic=_classic_metadata(m.get("classic")),
        )
        group.members[member_id] = member
        target = _from_partitions(m["target"])
        if target:
            group.target[member_id] = target
        if member.instance_id is not None:
            group.static_members[member.instance_id] = member_id
        if member.subscribed_regex:
            # Every member of a regex holds the group's one result for it.
            group.resolved_regexes[member.subscribed_regex] = member.regex_topics
    return group


@dataclass(slots=True)
class _Saved:
    group: GroupSnapshot
    members: dict[str, MemberSnapshot] = field(default_factory=dict)


@dataclass(slots=True)
class PendingSave:
    """A write and the snapshots of the state it was made from (the group may change
    while it is being written)."""

    write: ConsumerGroupWrite
    group: GroupSnapshot | None = None
    members: dict[str, MemberSnapshot] = field(default_factory=dict)


class SavedGroups:
    """What the last successful save of each group wrote, as snapshots of references."""

    def __init__(self) -> None:
        self._saved: dict[str, _Saved] = {}

    def remember(self, group: ConsumerGroup) -> None:
        """The group as loaded from the store."""
        self._saved[group.group_id] = _Saved(
            _group_snapshot(group),
            {
                m.member_id: _member_snapshot(m, group.target.get(m.member_id, frozenset()))
                for m in group.members.values()
            },
        )

    def changes(
        self, group_id: str, group: ConsumerGroup | None, member_id: str | None = None
    ) -> PendingSave | None:
        """What brings the store to `group` (None: the group is gone), or None when it
        already has it. `member_id`, if given, is the one member whose heartbeat may have
        changed it alone."""
        saved = self._saved.get(group_id)
        if group is None:
            return None if saved is None else PendingSave(ConsumerGroupWrite(group_id, None))
        snapshot = _group_snapshot(group)
        # Tuples compare element by element, identity first: a steady heartbeat costs
        # no set or dict comparison.
        group_same = saved is not None and saved.group == snapshot
        every_member = (
            saved is None
            or member_id is None
            or not group_same
            or saved.members.keys() != group.members.keys()
        )
        if not every_member and saved is not None and member_id is not None:
            member = group.members.get(member_id)
            if member is None:
                return None  # not a member (a refused join): nothing changed
            target = group.target.get(member_id, frozenset())
            if saved.members.get(member_id) == _member_snapshot(member, target):
                return None  # the steady heartbeat
        pending = PendingSave(ConsumerGroupWrite(group_id, None), snapshot)
        candidates: Iterable[str] = (
            group.members if every_member or member_id is None else (member_id,)
        )
        for mid in candidates:
            member = group.members.get(mid)
            if member is None:
                continue
            target = group.target.get(mid, frozenset())
            current = _member_snapshot(member, target)
            previous = None if saved is None else saved.members.get(mid)
            if previous == current:
                continue
            metadata_changed = previous is None or previous[0] != current[0]
            assignment_changed = previous is None or previous[1] != current[1]
            pending.write.members[mid] = MemberWrite(
                member_metadata_document(member) if metadata_changed else None,
                member_assignment_document(member, target) if assignment_changed else None,
            )
            pending.members[mid] = current
        if saved is not None and every_member:
            pending.write.removed_members = [m for m in saved.members if m not in group.members]
        write = pending.write
        if group_same and not write.members and not write.removed_members:
            return None
        write.group_state = group_document(group)
        return pending

    def saved(self, pending: PendingSave) -> None:
        """`pending` is in the store."""
        write = pending.write
        if write.group_state is None or pending.group is None:
            self._saved.pop(write.group_id, None)
            return
        saved = self._saved.setdefault(write.group_id, _Saved(pending.group))
        saved.group = pending.group
        for mid in write.removed_members:
            saved.members.pop(mid, None)
        saved.members.update(pending.members)

    def forget(self, group_id: str) -> None:
        self._saved.pop(group_id, None)
