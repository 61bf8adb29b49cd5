"""The schema id a record's key or value carries, in Confluent's wire format.

A serialized key or value starts with magic byte 0 and the schema id as a 4-byte
big-endian integer; a Protobuf payload then carries the path of the message it holds
(zigzag varints: a count, then the indexes; a count of 0 means the first message).
confluent-kafka 2.x can instead put a schema GUID (magic 1 and 16 bytes) in a
`__key_schema_id` / `__value_schema_id` header; the registry has no GUIDs, so such a
record is refused with a message that says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from contextplane.protocol.record_codec import zigzag_varint

MAGIC = 0
PREFIX_BYTES = 5
KEY_GUID_HEADER = b"__key_schema_id"
VALUE_GUID_HEADER = b"__value_schema_id"
GUID_HEADERS = frozenset({KEY_GUID_HEADER, VALUE_GUID_HEADER})
# Protobuf's nesting bound in the registry: a longer message path names no message.
MESSAGE_PATH_MAX = 32

NO_SCHEMA_ID = "Record has no schema id"
GUID_NOT_SUPPORTED = "Record names its schema by a GUID header; schema GUIDs are not supported"


# What a head must hold for a Protobuf message path: its count and indexes, 5 bytes each.
PATH_BYTES_MAX = 5 * (1 + MESSAGE_PATH_MAX)
# Message indexes are int32s: a varint still continuing past this shift is refused.
_INT32_SHIFT = 35


@dataclass(frozen=True, slots=True)
class Carried:
    """What one key or value carries: a schema id (with the Protobuf message path right
    after it, when asked for), or why it carries none."""

    schema_id: int | None
    message_path: tuple[int, ...] | None = None
    problem: str | None = None


def carried(head: bytes, with_path: bool) -> Carried:
    """The schema id a key or value starting with `head` carries (`head`: its first
    PREFIX_BYTES, plus PATH_BYTES_MAX for the message path `with_path`)."""
    if len(head) >= PREFIX_BYTES and head[0] == MAGIC:
        schema_id = int.from_bytes(head[1:PREFIX_BYTES], "big")
        path = message_path(head, PREFIX_BYTES) if with_path else None
        return Carried(schema_id, path)
    return Carried(None, problem=NO_SCHEMA_ID)


def message_path(payload: bytes, position: int) -> tuple[int, ...] | None:
    """The Protobuf message index path at `position`; None if it does not read as one."""
    try:
        count, position = zigzag_varint(payload, position, _INT32_SHIFT)
        if count == 0:
            return (0,)
        if not 0 < count <= MESSAGE_PATH_MAX:
            return None
        path = []
        for _ in range(count):
            index, position = zigzag_varint(payload, position, _INT32_SHIFT)
            if index < 0:
                return None
            path.append(index)
    except (IndexError, ValueError):
        return None
    return tuple(path)
