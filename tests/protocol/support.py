"""Shared helpers for the protocol tests: entity strategies and an encoder that can
inject unknown tagged fields (kio's own writer only writes the tags it knows)."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator
from dataclasses import MISSING, fields
from typing import Any

from hypothesis import strategies as st
from kio.serial import entity_writer
from kio.serial._implicit_defaults import get_tagged_field_default
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    classify_field,
    get_field_tag,
    is_optional,
)
from kio.serial._serialize import get_field_writer
from kio.serial.writers import write_unsigned_varint
from kio.static.primitive import Records

from contextplane.protocol.codec import request_schema

# kio registers strategies for its primitives but not for Records (record batches are
# opaque bytes to the request decoder).
st.register_type_strategy(Records, st.binary(max_size=48))

# (api key, versions) for the requests the broker serves; the legacy versions keep the
# non-flexible encodings covered too.
REQUEST_VERSIONS: dict[int, tuple[int, ...]] = {
    18: (0, 2, 3, 4),  # ApiVersions
    3: (1, 9, 10, 11, 12),  # Metadata
    0: (3, 8, 9, 10, 11),  # Produce
    1: (4, 11, 12, 13, 14, 15, 16),  # Fetch
    11: (5, 6, 7, 8, 9),  # JoinGroup
    8: (2, 7, 8, 9),  # OffsetCommit
    19: (4, 5, 6, 7),  # CreateTopics
    2: (1, 5, 6, 7, 8),  # ListOffsets
    14: (2, 3, 4, 5),  # SyncGroup
    12: (2, 3, 4),  # Heartbeat
    22: (1, 2, 3, 4, 5),  # InitProducerId
    9: (5, 6, 7, 8),  # OffsetFetch
    10: (2, 3, 4),  # FindCoordinator
    13: (3, 4, 5),  # LeaveGroup
    17: (1,),  # SaslHandshake
    36: (0, 1, 2),  # SaslAuthenticate
    50: (0,),  # DescribeUserScramCredentials
    51: (0,),  # AlterUserScramCredentials
    24: (3, 4, 5),  # AddPartitionsToTxn (v4+: the brokers' batched form)
    28: (3, 5, 6),  # TxnOffsetCommit (v6: our own schema, kio stops at v5)
}

REQUEST_SCHEMAS: list[type] = [
    request_schema(key, version)
    for key, versions in REQUEST_VERSIONS.items()
    for version in versions
]


def schema_id(schema: type) -> str:
    return f"{schema.__name__}v{schema.__version__}"


def encode(entity: Any) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


def nested_entity_types(schema: type) -> Iterator[type]:
    """Every entity class reachable from `schema` (itself first), each once."""
    seen: set[type] = set()
    pending = [schema]
    while pending:
        entity_type = pending.pop()
        if entity_type in seen:
            continue
        seen.add(entity_type)
        yield entity_type
        for field in fields(entity_type):
            field_class = classify_field(field)
            if isinstance(field_class, EntityField | EntityTupleField):
                pending.append(field_class.type_)


def known_tags(entity_type: type) -> set[int]:
    return {int(tag) for field in fields(entity_type) if (tag := get_field_tag(field)) is not None}


ExtraTags = Callable[[type], list[tuple[int, bytes]]]


class TagInjectingEncoder:
    """kio's wire format, plus extra (tag, payload) pairs in chosen tagged-field sections.

    Mirrors kio.serial._serialize.entity_writer, reusing its primitive field writers;
    `injected` counts the sections that actually received extra tags.
    """

    def __init__(self, extra_tags: ExtraTags) -> None:
        self.extra_tags = extra_tags
        self.injected = 0

    def encode(self, entity: Any) -> bytes:
        buffer = io.BytesIO()
        self._write_entity(buffer, entity)
        return buffer.getvalue()

    def _write_entity(self, buffer: io.BytesIO, entity: Any) -> None:
        entity_type = type(entity)
        flexible = entity_type.__flexible__
        tags: list[tuple[int, bytes]] = []
        for field in fields(entity_type):
            value = getattr(entity, field.name)
            tag = get_field_tag(field)
            if tag is None:
                self._write_field(buffer, entity_type, field, value, is_tag=False)
                continue
            if value == field.default or (
                field.default is MISSING and value == get_tagged_field_default(field)
            ):
                continue
            tag_buffer = io.BytesIO()
            self._write_field(tag_buffer, entity_type, field, value, is_tag=True)
            tags.append((int(tag), tag_buffer.getvalue()))
        if not flexible:
            return
        extra = self.extra_tags(entity_type)
        if extra:
            self.injected += 1
        tags = sorted(tags + extra)  # KIP-482: ascending tag order
        write_unsigned_varint(buffer, len(tags))
        for tag, payload in tags:
            write_unsigned_varint(buffer, tag)
            write_unsigned_varint(buffer, len(payload))
            buffer.write(payload)

    def _write_field(
        self, buffer: io.BytesIO, entity_type: type, field: Any, value: Any, is_tag: bool
    ) -> None:
        field_class = classify_field(field)
        flexible = entity_type.__flexible__
        if isinstance(field_class, EntityField):
            if is_optional(field) and not is_tag:
                buffer.write(b"\xff" if value is None else b"\x01")
                if value is None:
                    return
            self._write_entity(buffer, value)
        elif isinstance(field_class, EntityTupleField):
            if value is None:
                buffer.write(b"\x00" if flexible else b"\xff\xff\xff\xff")
                return
            if flexible:
                write_unsigned_varint(buffer, len(value) + 1)
            else:
                buffer.write(struct.pack(">i", len(value)))
            for item in value:
                self._write_entity(buffer, item)
        else:
            writer = get_field_writer(
                field,
                flexible=flexible,
                is_request_header=entity_type.__name__ == "RequestHeader",
                is_tag=is_tag,
            )
            writer(buffer, value)


@st.composite
def extra_tags_for(
    draw: st.DrawFn, schema: type, nested: bool
) -> dict[type, list[tuple[int, bytes]]]:
    """Unknown (tag, payload) pairs for the top-level section and, if `nested`, for some
    nested flexible entity types."""
    targets = [schema]
    if nested:
        candidates = [t for t in nested_entity_types(schema) if t is not schema and t.__flexible__]
        if candidates:
            targets += draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=3))
    extra: dict[type, list[tuple[int, bytes]]] = {}
    for entity_type in targets:
        taken = known_tags(entity_type)
        tags = draw(
            st.lists(
                st.one_of(st.integers(0, 40), st.integers(0, 2**31 - 1)).filter(
                    lambda tag, taken=taken: tag not in taken
                ),
                min_size=1,
                max_size=3,
                unique=True,
            )
        )
        extra[entity_type] = [(tag, draw(st.binary(max_size=24))) for tag in tags]
    return extra
