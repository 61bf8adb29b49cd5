"""Masking record values and keys for a consumer a policy names: each batch decoded, each
value (and key) in the Confluent wire format (magic 0, a 4-byte schema id) deserialized
against its schema, the fields whose tags a policy names replaced per its action,
re-encoded with the same prefix, and the batch rebuilt (`record_codec.write_batch`: same
base offset, offsets, timestamps, headers, producer fields and attributes, so the same
codec; a new CRC). Pure functions: the fetch handler runs them on a worker thread.

JSON Schema payloads are masked here, Avro ones by masking_avro.py, Protobuf ones by
masking_protobuf.py, each imported on the first payload of its kind (fastavro and protobuf
are ~0.2 s of a start otherwise, and most brokers never mask). Fail closed: a value
without the wire format, whose id is unknown, or that does not decode (or, masked, does
not encode) becomes null, counted as `fail_closed`; it is never passed through. A value
no policy touches keeps its bytes.

Keys follow the covering policies' `keys` (masking_policy.py): by default a key in the
wire format whose id is registered is masked as a value is, and any other key (most keys
are plain strings or numbers) is sent as stored; `fail-closed` treats keys as values;
`clear` leaves them alone. Partitioning and compaction use the stored key, so a masked
key changes neither.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from contextplane.protocol.record_codec import read_records, write_batch
from contextplane.protocol.records import parse_header
from contextplane.security.masking_policy import (
    HASH,
    KEEP_LAST,
    KEYS_CLEAR,
    KEYS_FAIL_CLOSED,
    NULL,
    Action,
    MaskingPolicy,
    parse_action,
)

if TYPE_CHECKING:
    from contextplane.broker.masking_avro import AvroCodec
    from contextplane.broker.masking_protobuf import ProtobufCodec
    from contextplane.services.schema_registry.references import Reference
    from contextplane.services.schema_registry.state import StoredSchema

FAIL_CLOSED = "fail_closed"  # the metric's action for a value that could not be masked
REDACTED = "****"  # fixed length: a redacted string does not tell its length
_BASE_AND_LENGTH = struct.Struct(">qi")
_BATCH_OVERHEAD = 12  # base offset and length, before `length` bytes
ACTIONS_CACHED_MAX = 100_000
# Nesting a masked JSON value may have (the walk is recursive).
JSON_DEPTH_MAX = 200

SchemaLookup = Callable[[int], "StoredSchema | None"]
# A schema's reference (resolved to a version) -> the schema it names (None when gone).
ReferenceLookup = Callable[["Reference"], "StoredSchema | None"]


def no_references(reference: Reference) -> StoredSchema | None:
    return None


@dataclass
class Masked:
    """What one partition's masking did: the new record chunks and, per action, how many
    records it changed."""

    chunks: list[bytes] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    decompressed: int = 0

    def count(self, action: str) -> None:
        self.counts[action] = self.counts.get(action, 0) + 1


@dataclass(frozen=True)
class FieldMasker:
    """The policies covering one (principal, topic) and the means to apply them."""

    policies: Sequence[MaskingPolicy]
    schemas: SchemaLookup
    hmac_key: bytes
    referenced: ReferenceLookup = no_references
    # Schema id -> its Avro or Protobuf codec, built on first use within one fetch's masking;
    # None when it could not be built (its values fail closed without trying again).
    codecs: dict[int, AvroCodec | ProtobufCodec | None] = field(default_factory=dict)
    # (schema id, path, of a key) -> the action there, across the payloads of one fetch's
    # masking (paths come from the data: bounded, cleared when full).
    actions: dict[tuple[int, str, bool], Action | None] = field(default_factory=dict)

    @cached_property
    def key_policies(self) -> tuple[MaskingPolicy, ...]:
        """The policies that mask keys (all but `keys: clear`)."""
        return tuple(p for p in self.policies if p.keys != KEYS_CLEAR)

    @cached_property
    def keys_fail_closed(self) -> bool:
        """A covering policy treats keys as values: a key without a schema is sent null."""
        return any(p.keys == KEYS_FAIL_CLOSED for p in self.policies)

    def action_for(self, tags: frozenset[str], of_key: bool = False) -> Action | None:
        """The strongest action of the policies (masking keys, for a key) whose tags meet
        `tags`."""
        policies = self.key_policies if of_key else self.policies
        found = [p.action for p in policies if p.tags & tags]
        return min(found, key=lambda a: a.strength) if found else None


def split_batches(chunk: bytes | memoryview) -> list[memoryview]:
    """The whole batches a record chunk holds, in order (a partial tail is left out, as a
    consumer skips it)."""
    view = memoryview(chunk)
    out: list[memoryview] = []
    position = 0
    while position + _BATCH_OVERHEAD <= len(view):
        _, length = _BASE_AND_LENGTH.unpack_from(view, position)
        end = position + _BATCH_OVERHEAD + length
        if length <= 0 or end > len(view):
            break
        out.append(view[position:end])
        position = end
    return out


def mask_chunks(
    chunks: Sequence[bytes | memoryview],
    masker: FieldMasker,
    batch_decompressed_max: int,
    fetch_decompressed_max: int,
) -> Masked:
    """The masked copy of a partition's record chunks. Batches after the fetch's
    decompression budget is spent are left out (the consumer fetches them next); the
    first batch is always masked. ValueError if a batch does not read: nothing of it is
    returned."""
    masked = Masked()
    if isinstance(chunks, bytes | bytearray | memoryview):
        chunks = [chunks]
    for chunk in chunks:
        for batch in split_batches(chunk):
            if parse_header(batch).is_control:  # transaction markers: no values
                masked.chunks.append(bytes(batch))
                continue
            if masked.chunks and masked.decompressed >= fetch_decompressed_max:
                return masked
            masked.chunks.append(mask_batch(batch, masker, batch_decompressed_max, masked))
    return masked


def mask_batch(
    batch: bytes | memoryview, masker: FieldMasker, decompressed_max: int, masked: Masked
) -> bytes:
    header, records = read_records(batch, decompressed_max)
    changed = False
    mask_keys = bool(masker.key_policies)
    for record in records:
        masked.decompressed += len(record.value or b"") + len(record.key or b"")
        done: list[str] = []  # the actions that changed this record's value and key
        if record.value is not None:  # a tombstone holds nothing to mask
            value, action = mask_value(bytes(record.value), masker)
            if action is not None:
                record.value = value
                done.append(action)
        if mask_keys and record.key is not None:
            key, action = mask_value(bytes(record.key), masker, of_key=True)
            if action is not None:
                record.key = key
                done.append(action)
        if done:
            masked.count(min(done, key=_strength))
            changed = True
    if not changed:
        return bytes(batch)
    return write_batch(header, records)


def _strength(action: str) -> int:
    """Lower is stronger: failing closed, then the actions' own order."""
    return -1 if action == FAIL_CLOSED else parse_action(action).strength


def mask_value(
    value: bytes, masker: FieldMasker, of_key: bool = False
) -> tuple[bytes | None, str | None]:
    """(the value, or key, to send; the action that changed it or None if unchanged)."""
    schema_id = int.from_bytes(value[1:5], "big") if len(value) >= 5 and value[0] == 0 else 0
    stored = masker.schemas(schema_id) if schema_id else None
    if stored is None or stored.schema_type not in ("JSON", "AVRO", "PROTOBUF"):
        if of_key and not masker.keys_fail_closed:
            return value, None  # a key without a registered schema: not schema-framed
        return None, FAIL_CLOSED
    applied: list[Action] = []
    actions = masker.actions

    def action_at(path: str) -> Action | None:
        key = (schema_id, path, of_key)
        if key not in actions:
            if len(actions) >= ACTIONS_CACHED_MAX:
                actions.clear()
            actions[key] = masker.action_for(stored.tags_of(path), of_key)
        return actions[key]

    def apply(field_value: Any, action: Action) -> Any:
        return apply_action(field_value, action, masker.hmac_key)

    try:
        if stored.schema_type != "JSON":
            codec = _cached_codec(masker, schema_id, stored)
            if codec is None:
                return None, FAIL_CLOSED
            payload = codec.mask(value[5:], action_at, apply, applied)
        else:
            document = _mask_json(json.loads(value[5:]), "$", action_at, apply, applied, 0)
            payload = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    except Exception:  # noqa: BLE001 - whatever the decoders raise, the value is not sent
        return None, FAIL_CLOSED
    if not applied:
        return value, None
    strongest = min(applied, key=lambda a: a.strength)
    return value[:5] + payload, str(strongest)


def _cached_codec(
    masker: FieldMasker, schema_id: int, stored: StoredSchema
) -> AvroCodec | ProtobufCodec | None:
    """The schema's codec, built once per fetch; None when it cannot be (a reference gone,
    a cycle, too deep): built once, not again for each of the fetch's records."""
    if schema_id not in masker.codecs:
        try:
            masker.codecs[schema_id] = _codec(stored, masker.referenced)
        except Exception:  # noqa: BLE001 - whatever the schema libraries raise
            masker.codecs[schema_id] = None
    return masker.codecs[schema_id]


def _codec(stored: StoredSchema, referenced: ReferenceLookup) -> AvroCodec | ProtobufCodec:
    """The codec of an Avro or Protobuf schema, its library imported on first use."""
    if stored.schema_type == "AVRO":
        from contextplane.broker.masking_avro import AvroCodec

        return AvroCodec(stored.parsed)  # type: ignore[arg-type]
    from contextplane.broker.masking_protobuf import ProtobufCodec

    return ProtobufCodec(stored, referenced)


def _mask_json(
    node: Any,
    path: str,
    action_at: Callable[[str], Action | None],
    apply: Callable[[Any, Action], Any],
    applied: list[Action],
    depth: int,
) -> Any:
    """`node` (at `path`) with the tagged fields below it masked. Array items keep their
    array's path, as confluent-kafka's JSON rule executor names them."""
    if depth > JSON_DEPTH_MAX:
        raise RecursionError("JSON nested too deeply to mask")
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for name, child in node.items():
            child_path = f"{path}.{name}"
            action = action_at(child_path)
            if action is not None:
                out[name] = apply(child, action)
                applied.append(action)
            else:
                out[name] = _mask_json(child, child_path, action_at, apply, applied, depth + 1)
        return out
    if isinstance(node, list):
        return [_mask_json(item, path, action_at, apply, applied, depth + 1) for item in node]
    return node


def apply_action(value: Any, action: Action, key: bytes) -> Any:
    """A field's value masked: null; redact (a string `****`, anything else null); hash
    (HMAC-SHA256 of the string, or of any other value's JSON text, as hex; null when the
    broker has no key: an unkeyed hash of an email is a dictionary away from it);
    keep-last-N (a string's last N characters, the rest `*`; anything else null)."""
    if action.kind == NULL or value is None:
        return None
    if action.kind == HASH:
        if not key:
            return None
        data = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        return hmac.new(key, data.encode(), hashlib.sha256).hexdigest()
    if not isinstance(value, str):
        return None
    if action.kind == KEEP_LAST:
        kept = value[-action.keep :] if action.keep else ""
        return "*" * (len(value) - len(kept)) + kept
    return REDACTED
