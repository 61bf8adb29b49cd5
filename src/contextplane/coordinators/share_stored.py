"""A share group's membership as the metadata store keeps it (one row per group, table
`share_groups`): its epochs, the partition counts its assignment was computed from, and
per member its ids, epoch, subscription, rack, assignment and target. Written when any of
these change, so a restarted coordinator loads the group and its members heartbeat on at
their epochs instead of rejoining (Kafka keeps the same in `__consumer_offsets`'
ShareGroupMemberMetadata / target assignment records).

The value is JSON (it is ours alone: no Kafka tool reads this table). Decoding checks
every field's type; a value that does not decode is not loaded (logged; its members
rejoin, as after a restart before this was stored).
"""

from __future__ import annotations

import json
from typing import Any

from contextplane.coordinators.share_group import ShareGroup, ShareMember

_VERSION = 1


class BadShareGroupValue(ValueError):
    pass


def encode(group: ShareGroup) -> bytes:
    value = {
        "version": _VERSION,
        "group_epoch": group.group_epoch,
        "assignment_epoch": group.assignment_epoch,
        "partition_counts": group.partition_counts,
        "initialized": group.initialized,
        "members": [
            {
                "member_id": m.member_id,
                "member_epoch": m.member_epoch,
                "subscribed": list(m.subscribed),
                "rack_id": m.rack_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "assignment": sorted(m.assignment),
                "target": sorted(group.target.get(m.member_id, ())),
            }
            for m in group.members.values()
        ],
    }
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def decode(group_id: str, raw: bytes) -> ShareGroup:
    """The group as stored; BadShareGroupValue when it does not decode. Session deadlines
    are the loader's to set."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadShareGroupValue(f"not JSON: {exc}") from None
    if not isinstance(value, dict) or value.get("version") != _VERSION:
        raise BadShareGroupValue("not a version 1 value")
    group = ShareGroup(
        group_id,
        group_epoch=_int(value, "group_epoch"),
        assignment_epoch=_int(value, "assignment_epoch"),
    )
    counts = value.get("partition_counts")
    if not isinstance(counts, dict) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in counts.values()
    ):
        raise BadShareGroupValue("partition_counts")
    group.partition_counts = dict(counts)
    # A group stored before initialized counts were: its share partitions all exist.
    initialized = value.get("initialized", counts)
    if not isinstance(initialized, dict) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in initialized.values()
    ):
        raise BadShareGroupValue("initialized")
    group.initialized = dict(initialized)
    members = value.get("members")
    if not isinstance(members, list):
        raise BadShareGroupValue("members")
    for entry in members:
        member = _member(entry)
        if member.member_id in group.members:
            raise BadShareGroupValue(f"member {member.member_id!r} twice")
        group.members[member.member_id] = member
        group.target[member.member_id] = _partitions(entry.get("target"), "target")
    return group


def _member(entry: Any) -> ShareMember:
    if not isinstance(entry, dict):
        raise BadShareGroupValue("a member is not an object")
    subscribed = entry.get("subscribed")
    if not isinstance(subscribed, list) or not all(isinstance(t, str) for t in subscribed):
        raise BadShareGroupValue("subscribed")
    rack = entry.get("rack_id")
    if rack is not None and not isinstance(rack, str):
        raise BadShareGroupValue("rack_id")
    member = ShareMember(
        _str(entry, "member_id"),
        _int(entry, "member_epoch"),
        (),
        rack,
        _str(entry, "client_id"),
        _str(entry, "client_host"),
        _partitions(entry.get("assignment"), "assignment"),
    )
    member.subscribe(tuple(subscribed))
    return member


def _partitions(value: Any, what: str) -> frozenset[tuple[str, int]]:
    if not isinstance(value, list):
        raise BadShareGroupValue(what)
    out = set()
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], int)
            or isinstance(item[1], bool)
        ):
            raise BadShareGroupValue(what)
        out.add((item[0], item[1]))
    return frozenset(out)


def _int(value: dict[str, Any], name: str) -> int:
    found = value.get(name)
    if not isinstance(found, int) or isinstance(found, bool):
        raise BadShareGroupValue(name)
    return found


def _str(value: dict[str, Any], name: str) -> str:
    found = value.get(name)
    if not isinstance(found, str):
        raise BadShareGroupValue(name)
    return found
