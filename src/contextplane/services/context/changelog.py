"""The changelog topic's records (compacted, one partition): each entity's whole state,
and each source partition's position, written in the same Kafka transaction as the
states they produced (RFC 0006 §1).

    key ["entity", view, id]              value {"state": {...}, "changed_by": [t, p, o, ts]}
                                          or null: the entity was deleted
    key ["position", topic, partition]    value {"position": n, "newest_ms": ts}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from contextplane.services.context.freshness import Position, TopicPartition
from contextplane.services.context.store import EntityKey


def entity_key(key: EntityKey) -> bytes:
    return json.dumps(["entity", *key], separators=(",", ":")).encode()


def position_key(tp: TopicPartition) -> bytes:
    return json.dumps(["position", *tp], separators=(",", ":")).encode()


def position_value(at: Position) -> bytes:
    return json.dumps({"position": at.position, "newest_ms": at.newest_ms}).encode()


@dataclass(frozen=True)
class EntityRecord:
    key: EntityKey
    value: bytes | None  # None: deleted


@dataclass(frozen=True)
class PositionRecord:
    partition: TopicPartition
    position: Position


def read_record(key: bytes | None, value: bytes | None) -> EntityRecord | PositionRecord | None:
    """What a changelog record says, or None for one this version does not know (skipped:
    a newer writer may add kinds)."""
    try:
        parts: Any = json.loads(key) if key is not None else None
        if not isinstance(parts, list) or len(parts) != 3:
            return None
        kind, first, second = parts
        if kind == "entity" and isinstance(first, str) and isinstance(second, str):
            return EntityRecord((first, second), value)
        if kind == "position" and isinstance(first, str) and isinstance(second, int):
            if value is None:
                return None
            document = json.loads(value)
            return PositionRecord(
                (first, second), Position(int(document["position"]), document["newest_ms"])
            )
    except (ValueError, KeyError, TypeError):
        return None
    return None
