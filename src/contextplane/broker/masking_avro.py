"""Masking an Avro value (the payload after the wire-format prefix): decoded with fastavro
against the stored schema (references included), the fields whose path
(`<record full name>.<field>`, as confluent-kafka's Avro rule executor names them) is
tagged replaced, encoded again with the same schema.

A masked value the field's type cannot hold (redact or null on an `int` field, null on a
field whose type has no `null` branch) cannot be written: the caller then sends the whole
value null, failing closed.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import fastavro

from contextplane.security.masking_policy import Action
from contextplane.services.schema_registry.avro_schema import PRIMITIVES, AvroSchema

# Nesting the walk follows (a recursive schema's data is as deep as the value).
DEPTH_MAX = 200

ApplyAction = Callable[[Any, Action], Any]
# A `type` that names no type defined elsewhere.
_NOT_NAMES = PRIMITIVES | {"record", "error", "enum", "fixed", "array", "map"}


class AvroCodec:
    """One stored Avro schema, parsed once for fastavro."""

    def __init__(self, schema: AvroSchema) -> None:
        self.schema = schema
        # Marked parsed (fastavro's write hint, the default), with its named types inside:
        # schemaless_reader and schemaless_writer parse an unmarked schema again on every
        # call, which was half of the CPU a masked Avro record cost.
        self.parsed = fastavro.parse_schema(schema.tree, dict(schema.named))

    def mask(
        self,
        payload: bytes,
        action_at: Callable[[str], Action | None],
        apply: ApplyAction,
        applied: list[Action],
    ) -> bytes:
        """The payload with its tagged fields masked (the same bytes when none is);
        ValueError (or fastavro's errors) when it does not decode or re-encode."""
        datum = fastavro.schemaless_reader(
            io.BytesIO(payload), self.parsed, None, return_record_name=True
        )
        before = len(applied)
        masked = self._walk(self.schema.tree, datum, action_at, apply, applied, 0)
        if len(applied) == before:
            return payload
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self.parsed, masked)
        return out.getvalue()

    def _walk(
        self,
        node: Any,
        datum: Any,
        action_at: Callable[[str], Action | None],
        apply: ApplyAction,
        applied: list[Action],
        depth: int,
    ) -> Any:
        if depth > DEPTH_MAX:
            raise ValueError("Avro value nested too deeply to mask")
        if isinstance(node, str):
            if node in PRIMITIVES:
                return datum
            node = self.schema.resolve(node)
        if isinstance(node, list):  # a union: a record branch is read as (name, record)
            if isinstance(datum, tuple) and len(datum) == 2 and isinstance(datum[0], str):
                name, inner = datum
                return (name, self._walk(name, inner, action_at, apply, applied, depth + 1))
            for branch in node:
                kind = self.schema.resolve(branch)
                kind = kind.get("type") if isinstance(kind, dict) else kind
                if (kind == "array" and isinstance(datum, list)) or (
                    kind == "map" and isinstance(datum, dict)
                ):
                    return self._walk(branch, datum, action_at, apply, applied, depth + 1)
            return datum
        if not isinstance(node, dict):
            return datum
        kind = node.get("type")
        if kind in ("record", "error") and isinstance(datum, dict):
            out = dict(datum)
            for field in node.get("fields", []):
                name = field["name"]
                if name not in out:
                    continue
                action = action_at(f"{node['name']}.{name}")
                if action is not None:
                    out[name] = apply(out[name], action)
                    applied.append(action)
                else:
                    out[name] = self._walk(
                        field["type"], out[name], action_at, apply, applied, depth + 1
                    )
            return out
        if kind == "array" and isinstance(datum, list):
            items = node.get("items")
            return [self._walk(items, x, action_at, apply, applied, depth + 1) for x in datum]
        if kind == "map" and isinstance(datum, dict):
            values = node.get("values")
            return {
                k: self._walk(values, v, action_at, apply, applied, depth + 1)
                for k, v in datum.items()
            }
        if isinstance(kind, dict | list) or (isinstance(kind, str) and kind not in _NOT_NAMES):
            return self._walk(kind, datum, action_at, apply, applied, depth + 1)
        return datum
