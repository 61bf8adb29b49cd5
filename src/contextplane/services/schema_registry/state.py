"""The registry's state: a fold of the `_schemas` topic. `apply` is the only mutation;
start-up replay and live writes both run it, so what a request was answered with is what
a restart rebuilds.

Ids are global (one canonical schema, one id, under every subject). An id is known while
any version, soft-deleted or not, refers to it; `next_id` never goes back within a
process.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from contextplane.services.schema_registry.avro_schema import AvroSchema, parse_avro
from contextplane.services.schema_registry.errors import RegistryError
from contextplane.services.schema_registry.modes import LEVELS
from contextplane.services.schema_registry.records import (
    SchemaValue,
    decode,
    int32_field,
    text_field,
)

log = logging.getLogger("contextplane.schema_registry")

# Modes a `_schemas` record may set: Confluent's own (IMPORT and READONLY_OVERRIDE are
# kept so that they refuse writes here as they do there), not only those this API sets.
STORED_MODES = frozenset({"READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT"})
# What a record written by anyone may raise while it is read: a garbage record is one
# skipped record, never a stopped fold (JSON nested past the parser's recursion limit,
# numbers like 1e999 turned into ints, fields of the wrong type).
UNREADABLE = (ValueError, KeyError, TypeError, ArithmeticError, RecursionError, RegistryError)


@dataclass
class Version:
    version: int
    schema_id: int
    deleted: bool


@dataclass
class StoredSchema:
    schema_id: int
    schema_type: str
    text: str
    parsed: AvroSchema


@dataclass
class RegistryState:
    # subject -> version -> Version, versions in ascending order of insertion
    subjects: dict[str, dict[int, Version]] = field(default_factory=dict)
    schemas: dict[int, StoredSchema] = field(default_factory=dict)
    ids_by_canonical: dict[tuple[str, str], int] = field(default_factory=dict)
    # id -> the (subject, version) pairs that have it: an id is known while this is not empty.
    referrers: dict[int, set[tuple[str, int]]] = field(default_factory=dict)
    global_compatibility: str | None = None
    subject_compatibility: dict[str, str] = field(default_factory=dict)
    global_mode: str | None = None
    subject_modes: dict[str, str] = field(default_factory=dict)
    max_id: int = 0
    skipped_records: int = 0

    # -- reads ---------------------------------------------------------------------------

    def versions(self, subject: str, *, deleted: bool = False) -> list[Version]:
        found = self.subjects.get(subject, {})
        return sorted(
            (v for v in found.values() if deleted or not v.deleted), key=lambda v: v.version
        )

    def live_subjects(self, *, deleted: bool = False) -> list[str]:
        return sorted(s for s in self.subjects if self.versions(s, deleted=deleted))

    def id_for(self, schema_type: str, canonical: str) -> int | None:
        return self.ids_by_canonical.get((schema_type, canonical))

    def next_id(self) -> int:
        return self.max_id + 1

    def next_version(self, subject: str) -> int:
        return max(self.subjects.get(subject, {}), default=0) + 1

    def references_to(self, schema_id: int) -> list[tuple[str, Version]]:
        """Every version, soft-deleted or not, with this id: by subject, then version."""
        found = sorted(self.referrers.get(schema_id, ()))
        return [(subject, self.subjects[subject][number]) for subject, number in found]

    # -- the fold ------------------------------------------------------------------------

    def apply(self, raw_key: bytes | None, raw_value: bytes | None) -> None:
        """One record of `_schemas`. A record this version cannot read is logged and
        skipped: one bad record must not stop the registry from serving the rest."""
        try:
            key = decode(raw_key)
            value = decode(raw_value)
            if key is None:
                raise ValueError("a record without a key")
            self._apply(key, value)
        except UNREADABLE as exc:
            self.skipped_records += 1
            log.warning("skipped a _schemas record it cannot read (%s)", exc)

    def _apply(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        """Every field is checked before anything changes: a record is applied whole or
        skipped whole."""
        keytype = key.get("keytype")
        subject = key.get("subject")
        if subject is not None and not isinstance(subject, str):
            raise ValueError(f"subject {subject!r} is not a string")
        if keytype == "SCHEMA":
            if subject is None:
                raise ValueError("a schema record without a subject")
            self._apply_schema(subject, int32_field(key, "version"), value)
        elif keytype == "CONFIG":
            level = None if value is None else _one_of(value, "compatibilityLevel", LEVELS)
            _set(self.subject_compatibility, subject, level, self, "global_compatibility")
        elif keytype == "MODE":
            mode = None if value is None else _one_of(value, "mode", STORED_MODES)
            _set(self.subject_modes, subject, mode, self, "global_mode")
        elif keytype in ("DELETE_SUBJECT", "CLEAR_SUBJECT") and value is not None:
            if subject is None:
                raise ValueError(f"a {keytype} record without a subject")
            up_to = int32_field(value, "version")
            versions = self.subjects.get(subject, {})
            for number, version in list(versions.items()):
                if number > up_to:
                    continue
                if keytype == "DELETE_SUBJECT":
                    version.deleted = True
                elif version.deleted:
                    self._remove(subject, number)
        # NOOP and key types of other registries' features carry nothing for this one.

    def _apply_schema(self, subject: str, number: int, value: dict[str, Any] | None) -> None:
        if value is None:
            self._remove(subject, number)
            return
        record = SchemaValue.from_json(value)
        if (record.subject, record.version) != (subject, number):
            raise ValueError(
                f"the value is {record.subject!r} version {record.version}, the key "
                f"{subject!r} version {number}"
            )
        known = self.schemas.get(record.schema_id)
        if (
            known is not None
            and known.text != record.schema
            and (parse_avro(record.schema).canonical != known.parsed.canonical)
        ):
            # Two writers gave one id to two schemas: the first keeps it.
            raise ValueError(f"schema id {record.schema_id} is already another schema's")
        if known is None:
            if record.schema_type != "AVRO":
                raise ValueError(f"schema type {record.schema_type} is not served yet")
            parsed = parse_avro(record.schema)
            self.schemas[record.schema_id] = StoredSchema(
                record.schema_id, record.schema_type, record.schema, parsed
            )
            self.ids_by_canonical.setdefault(
                (record.schema_type, parsed.canonical), record.schema_id
            )
        previous = self.subjects.get(subject, {}).get(number)
        if previous is not None and previous.schema_id != record.schema_id:
            self._remove(subject, number)  # another writer's record for the same version
        self.max_id = max(self.max_id, record.schema_id)
        self.subjects.setdefault(subject, {})[number] = Version(
            number, record.schema_id, record.deleted
        )
        self.referrers.setdefault(record.schema_id, set()).add((subject, number))

    def _remove(self, subject: str, number: int) -> None:
        versions = self.subjects.get(subject)
        if versions is None or number not in versions:
            return
        schema_id = versions.pop(number).schema_id
        if not versions:
            del self.subjects[subject]
        referrers = self.referrers[schema_id]
        referrers.discard((subject, number))
        if not referrers:
            del self.referrers[schema_id]
            stored = self.schemas.pop(schema_id)
            key = (stored.schema_type, stored.parsed.canonical)
            if self.ids_by_canonical.get(key) == schema_id:
                del self.ids_by_canonical[key]


def _one_of(value: dict[str, Any], name: str, allowed: Collection[str]) -> str:
    found = text_field(value, name)
    if found not in allowed:
        raise ValueError(f"{name!r} is {found!r}, not one of {sorted(allowed)}")
    return found


def _set(
    per_subject: dict[str, str],
    subject: object,
    value: str | None,
    state: RegistryState,
    global_attribute: str,
) -> None:
    if subject is None:
        setattr(state, global_attribute, value)
    elif value is None:
        per_subject.pop(str(subject), None)
    else:
        per_subject[str(subject)] = value
