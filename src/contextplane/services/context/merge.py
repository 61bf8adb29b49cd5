"""How one source record changes one entity: pure functions, no I/O (RFC 0006 §1).

A record is first `read` (its entity id and value, or the reason it is skipped), then
`fold`ed into the entity's current state. The apply loop, a restart and the tests all run
these same two functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from contextplane.services.context.views import Source

# A record value larger than this is skipped, not parsed: its entity's state would not fit
# a changelog record either.
VALUE_BYTES_MAX = 900 * 1024
# An entity's state, JSON-encoded, as produced to the changelog; a fold past it is skipped.
# With its key (ENTITY_ID_BYTES_MAX and a view name) and a batch's overhead it fits both
# librdkafka's message.max.bytes (1,000,000) and Kafka's max.message.bytes (1,048,588).
STATE_BYTES_MAX = 900 * 1024
ENTITY_ID_BYTES_MAX = 1024

TOMBSTONE: Any = object()  # the value of a record whose value is null


@dataclass(frozen=True)
class Origin:
    """The source record that last changed an entity."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True)
class RecordAt:
    """A record's place: the changelog record a read answered from."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Entity:
    state: dict[str, Any]
    changed_by: Origin


@dataclass(frozen=True)
class Skip:
    """A record that does not parse as its source declares: counted under `reason`."""

    reason: str


def read(source: Source, key: bytes | None, value: bytes | None) -> tuple[str, Any] | Skip:
    """(entity id, value or TOMBSTONE), or why the record is skipped."""
    if value is not None and len(value) > VALUE_BYTES_MAX:
        return Skip("value-too-large")
    document: Any = TOMBSTONE
    if value is not None:
        try:
            document = msgspec.json.decode(value)
        except (msgspec.MsgspecError, RecursionError):  # also numbers JSON cannot carry: 1e400
            return Skip("value-not-json")
    if source.id_path is None:
        if key is None:
            return Skip("no-key")
        try:
            entity_id = key.decode()
        except UnicodeDecodeError:
            return Skip("key-not-utf8")
    else:
        if document is TOMBSTONE:
            return Skip("tombstone-without-key-id")
        found = _at_path(document, source.id_path)
        if isinstance(found, bool) or not isinstance(found, str | int):
            return Skip("no-entity-id")
        entity_id = str(found)
    if not entity_id or len(entity_id.encode()) > ENTITY_ID_BYTES_MAX:
        return Skip("bad-entity-id")
    return entity_id, document


def _at_path(document: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        if not isinstance(document, dict):
            return None
        document = document.get(step)
    return document


def fold(source: Source, current: Entity | None, value: Any, origin: Origin) -> Entity | None:
    """The entity after the record: a new state, or None when it is deleted (or was never
    there and the record leaves nothing)."""
    state = dict(current.state) if current is not None else {}
    if value is TOMBSTONE:
        if source.on_tombstone == "ignore":
            return current
        if source.on_tombstone == "delete-entity":
            return None
        if source.field not in state:
            return current
        del state[source.field]
        return Entity(state, origin) if state else None
    if source.merge == "latest":
        state[source.field] = value
    else:
        earlier = state.get(source.field)
        earlier = earlier if isinstance(earlier, list) else []
        state[source.field] = [value, *earlier[: source.max_items - 1]]
    return Entity(state, origin)


Fold = tuple[Source, Any, Origin]  # a record read for one entity: its source, value, origin


def fold_bounded(current: Entity | None, folds: list[Fold]) -> tuple[Entity | None, list[Origin]]:
    """`current` after every record in order, and the records skipped because their fold
    would take the state past STATE_BYTES_MAX (checked once at the end, as the apply
    loop checks once per entity and batch; past it, folded again record by record)."""
    entity = current
    for source, value, origin in folds:
        entity = fold(source, entity, value, origin)
    if entity is None or len(encode_entity(entity)) <= STATE_BYTES_MAX:
        return entity, []
    return fold_within_bound(current, folds)


def fold_within_bound(
    current: Entity | None, folds: list[Fold]
) -> tuple[Entity | None, list[Origin]]:
    """`current` after the records in order, each fold that would pass STATE_BYTES_MAX
    skipped; the skipped records' origins."""
    entity = current
    skipped: list[Origin] = []
    for source, value, origin in folds:
        after = fold(source, entity, value, origin)
        if after is not None and len(encode_entity(after)) > STATE_BYTES_MAX:
            skipped.append(origin)
            continue
        entity = after
    return entity, skipped


def encode_entity(entity: Entity) -> bytes:
    origin = entity.changed_by
    return msgspec.json.encode(
        {
            "state": entity.state,
            "changed_by": [origin.topic, origin.partition, origin.offset, origin.timestamp_ms],
        }
    )


def decode_entity(raw: bytes) -> Entity:
    document = msgspec.json.decode(raw)
    topic, partition, offset, timestamp_ms = document["changed_by"]
    return Entity(document["state"], Origin(topic, partition, offset, timestamp_ms))
