"""The object WAL's object names and the rule that recovery keeps (RFC 0004 §4; the
rules are object_wal.py's module doc): pure functions, shared by the WAL, its takeover
and the tests that inspect a store."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# <incarnation>/<sequence>-<start>-<end>-<floor> under the node's prefix.
_NAME = re.compile(r"(\d+)/(\d{20})-(\d{20})-(\d{20})-(\d{20})$")


@dataclass(frozen=True, slots=True)
class WalObject:
    incarnation: int
    sequence: int
    start: int  # WAL position of its first byte
    end: int  # WAL position past its last byte
    floor: int  # the log's start when it was written: below it all is uploaded
    key: str


def wal_object_key(
    node_id: int, incarnation: int, sequence: int, start: int, end: int, floor: int
) -> str:
    return f"{node_id}/{incarnation:020d}/{sequence:020d}-{start:020d}-{end:020d}-{floor:020d}"


def parse_key(key: str) -> WalObject | None:
    """The object a listed key names (None: not a WAL object's name)."""
    found = _NAME.search(key)
    if found is None:
        return None
    incarnation, sequence, start, end, floor = map(int, found.groups())
    return WalObject(incarnation, sequence, start, end, floor, key)


def plan_recovery(objects: Sequence[WalObject]) -> tuple[list[WalObject], list[WalObject]]:
    """(the log: a contiguous run of objects in position order, the others: superseded
    or past a hole). Pure: the rule is the module doc's."""
    kept: list[WalObject] = []
    floor = max((o.floor for o in objects), default=0)
    dropped = [o for o in objects if o.start < floor]
    for obj in sorted(objects, key=lambda o: (o.incarnation, o.sequence)):
        if obj.start < floor:
            continue
        while kept and kept[-1].start >= obj.start:
            dropped.append(kept.pop())  # rewritten later from its start or before
        kept.append(obj)
    for index in range(1, len(kept)):
        if kept[index].start != kept[index - 1].end:
            dropped.extend(kept[index:])
            del kept[index:]
            break
    return kept, dropped
