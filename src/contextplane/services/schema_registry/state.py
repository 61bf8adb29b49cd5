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
from functools import cached_property
from typing import Any

from contextplane.services.schema_registry import errors
from contextplane.services.schema_registry.contracts import contract_key
from contextplane.services.schema_registry.errors import RegistryError
from contextplane.services.schema_registry.field_tags import FieldTags, inline_tags, tags_of
from contextplane.services.schema_registry.formats import Parsed, parse
from contextplane.services.schema_registry.modes import LEVELS
from contextplane.services.schema_registry.protobuf_descriptor import (
    serialized as serialized_descriptor,
)
from contextplane.services.schema_registry.protobuf_schema import ProtobufSchema
from contextplane.services.schema_registry.records import (
    ConfigValue,
    SchemaValue,
    decode_record,
    int32_field,
    text_field,
)
from contextplane.services.schema_registry.references import (
    LATEST,
    REFERENCE_CLOSURE_MAX,
    REFERENCE_DEPTH_MAX,
    Reference,
)

log = logging.getLogger("contextplane.schema_registry")

# Modes a `_schemas` record may set: Confluent's own (IMPORT and READONLY_OVERRIDE are
# kept so that they refuse writes here as they do there), not only those this API sets.
STORED_MODES = frozenset({"READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT"})
# Entries of `recently_parsed` (two per schema: the text given and the canonical one).
RECENTLY_PARSED_MAX = 16
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
    parsed: Parsed
    references: tuple[Reference, ...] = ()
    # Ids of every schema this one depends on, directly or through theirs.
    closure: frozenset[int] = frozenset()
    depth: int = 0  # the longest chain of references below it
    metadata: dict[str, Any] | None = None  # its data contract (contracts.py)
    rule_set: dict[str, Any] | None = None

    @cached_property
    def serialized(self) -> str:
        """A Protobuf schema as a base64 FileDescriptorProto (`?format=serialized`): a
        parse of its text, up to a second or more, so callers run it on a worker thread."""
        assert isinstance(self.parsed, ProtobufSchema)
        return serialized_descriptor(self.parsed)

    @cached_property
    def field_tags(self) -> FieldTags:
        """Field path -> the tags written on it in the schema (field_tags.py)."""
        return inline_tags(self.parsed)

    def tags_of(self, path: str) -> frozenset[str]:
        """The tags of a field: written on it, or given by a `metadata.tags` pattern."""
        return tags_of(path, self.field_tags, self.metadata)

    @property
    def identity(self) -> Identity:
        contract = contract_key(self.metadata, self.rule_set)
        return (self.schema_type, self.parsed.canonical, self.references, contract)


# What makes two registrations the same schema (one id): type, canonical text, references
# and data contract (`contracts.contract_key`), as Confluent's lookup hashes them.
Identity = tuple[str, str, tuple[Reference, ...], str]
# What a parse depends on: type, text, references.
ParseKey = tuple[str, str, tuple[Reference, ...]]


@dataclass(frozen=True)
class Unparsed:
    """A schema with its references resolved, to be parsed (`RegistryState.prepare`)."""

    key: ParseKey  # type, the text given, references
    named: tuple[tuple[str, Parsed], ...]
    closure: frozenset[int]
    depth: int
    removals: int


@dataclass(frozen=True)
class Resolved:
    """A schema parsed against its references, with each reference's version resolved."""

    parsed: Parsed
    references: tuple[Reference, ...]
    closure: frozenset[int]
    depth: int


@dataclass
class RegistryState:
    # subject -> version -> Version, versions in ascending order of insertion
    subjects: dict[str, dict[int, Version]] = field(default_factory=dict)
    schemas: dict[int, StoredSchema] = field(default_factory=dict)
    ids_by_canonical: dict[Identity, int] = field(default_factory=dict)
    # id -> the (subject, version) pairs that have it: an id is known while this is not empty.
    referrers: dict[int, set[tuple[str, int]]] = field(default_factory=dict)
    # (subject, version) -> ids of the schemas whose references name it.
    referenced_by: dict[tuple[str, int], set[int]] = field(default_factory=dict)
    global_config: ConfigValue | None = None
    subject_configs: dict[str, ConfigValue] = field(default_factory=dict)
    global_mode: str | None = None
    subject_modes: dict[str, str] = field(default_factory=dict)
    max_id: int = 0
    skipped_records: int = 0
    # The last schemas parsed, by the text given and by their canonical text, with their
    # references resolved to versions: a write's record, applied right after it was
    # decided, is not parsed a second time (a large JSON Schema takes seconds), nor is the
    # text a client looks up again and again.
    recently_parsed: dict[ParseKey, Resolved] = field(default_factory=dict)
    _removals: int = 0  # versions removed so far (see `remember`)

    # -- reads ---------------------------------------------------------------------------

    @property
    def global_compatibility(self) -> str | None:
        return self.global_config.compatibility_level if self.global_config else None

    @property
    def subject_compatibility(self) -> dict[str, str]:
        return {
            subject: config.compatibility_level
            for subject, config in self.subject_configs.items()
            if config.compatibility_level is not None
        }

    def versions(self, subject: str, *, deleted: bool = False) -> list[Version]:
        found = self.subjects.get(subject, {})
        return sorted(
            (v for v in found.values() if deleted or not v.deleted), key=lambda v: v.version
        )

    def live_subjects(self, *, deleted: bool = False) -> list[str]:
        return sorted(s for s in self.subjects if self.versions(s, deleted=deleted))

    def id_for(
        self,
        schema_type: str,
        canonical: str,
        references: tuple[Reference, ...] = (),
        contract: str = "",
    ) -> int | None:
        return self.ids_by_canonical.get((schema_type, canonical, references, contract))

    def resolve(
        self,
        schema_type: str,
        text: str,
        references: tuple[Reference, ...],
        *,
        deleted: bool,
    ) -> Resolved:
        """Parse `text` against the versions its references name (`deleted`: soft-deleted
        ones too, as a stored schema is read; a new one may not refer to them). 42201 for
        a reference to nothing, past the depth or closure bound, or a schema that does not
        parse."""
        found = self.prepare(schema_type, text, references, deleted=deleted)
        if isinstance(found, Resolved):
            return found
        return self.remember(found, parse(schema_type, text, found.named))

    def prepare(
        self,
        schema_type: str,
        text: str,
        references: tuple[Reference, ...],
        *,
        deleted: bool,
    ) -> Resolved | Unparsed:
        """`resolve` up to the parse: the schema if it was parsed lately, else what its
        parse needs (which reads no state, so it may run on another thread)."""
        resolved: list[Reference] = []
        named: list[tuple[str, Parsed]] = []
        closure: set[int] = set()
        depth = 0
        for reference in references:
            target = self._referenced(reference, deleted=deleted)
            resolved.append(Reference(reference.name, reference.subject, target.version))
            stored = self.schemas[target.schema_id]
            named.append((reference.name, stored.parsed))
            closure |= stored.closure | {stored.schema_id}
            depth = max(depth, stored.depth + 1)
        if depth > REFERENCE_DEPTH_MAX:
            raise errors.invalid_schema(f"references nested deeper than {REFERENCE_DEPTH_MAX}")
        if len(closure) > REFERENCE_CLOSURE_MAX:
            raise errors.invalid_schema(
                f"the schema depends on more than {REFERENCE_CLOSURE_MAX} schemas"
            )
        given = (schema_type, text, tuple(resolved))
        known = self.recently_parsed.get(given)
        if known is not None:
            return known
        return Unparsed(given, tuple(named), frozenset(closure), depth, self._removals)

    def remember(self, unparsed: Unparsed, parsed: Parsed) -> Resolved:
        """The parse of `unparsed`, kept unless a version was removed since it was prepared
        (a reference's number may name another schema by now)."""
        schema_type, _, references = unparsed.key
        found = Resolved(parsed, references, unparsed.closure, unparsed.depth)
        if unparsed.removals == self._removals:
            for key in (unparsed.key, (schema_type, parsed.canonical, references)):
                self.recently_parsed[key] = found
            while len(self.recently_parsed) > RECENTLY_PARSED_MAX:
                del self.recently_parsed[next(iter(self.recently_parsed))]
        return found

    def _referenced(self, reference: Reference, *, deleted: bool) -> Version:
        versions = self.versions(reference.subject, deleted=deleted)
        if reference.version == LATEST:
            found = versions[-1] if versions else None
        else:
            found = next((v for v in versions if v.version == reference.version), None)
        if found is None:
            raise errors.invalid_schema(
                f'No schema reference found for subject "{reference.subject}" and version '
                f"{reference.version}"
            )
        return found

    def referenced_schema(self, reference: Reference) -> StoredSchema | None:
        """The schema a stored schema's reference (resolved to a version) names, or None
        when that version is gone."""
        version = self.subjects.get(reference.subject, {}).get(reference.version)
        return self.schemas.get(version.schema_id) if version is not None else None

    def referencing_ids(self, subject: str, version: int, *, deleted: bool) -> list[int]:
        """Ids of the schemas that refer to this version (`deleted`: also those whose every
        version is soft-deleted), ascending."""
        found = self.referenced_by.get((subject, version), set())
        if not deleted:
            found = {i for i in found if any(not v.deleted for _, v in self.references_to(i))}
        return sorted(found)

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
            self._apply(*decode_record(raw_key, raw_value))
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
            config = None if value is None else ConfigValue.from_json(value)
            level = config.compatibility_level if config is not None else None
            if level is not None and level not in LEVELS:
                raise ValueError(f"'compatibilityLevel' is {level!r}, not one of {LEVELS}")
            _set(self.subject_configs, subject, config, self, "global_config")
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
        contract = contract_key(record.metadata, record.rule_set)
        if known is not None and (
            known.text != record.schema
            or known.schema_type != record.schema_type
            or known.references != record.references
            or known.identity[3] != contract
        ):
            resolved = self.resolve(
                record.schema_type, record.schema, record.references, deleted=True
            )
            if (
                record.schema_type,
                resolved.parsed.canonical,
                resolved.references,
                contract,
            ) != known.identity:
                # Two writers gave one id to two schemas: the first keeps it.
                raise ValueError(f"schema id {record.schema_id} is already another schema's")
        if known is None:
            resolved = self.resolve(
                record.schema_type, record.schema, record.references, deleted=True
            )
            stored = StoredSchema(
                record.schema_id,
                record.schema_type,
                record.schema,
                resolved.parsed,
                resolved.references,
                resolved.closure,
                resolved.depth,
                record.metadata,
                record.rule_set,
            )
            self.schemas[record.schema_id] = stored
            self.ids_by_canonical.setdefault(stored.identity, record.schema_id)
            for reference in stored.references:
                target = (reference.subject, reference.version)
                self.referenced_by.setdefault(target, set()).add(record.schema_id)
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
        # The number may be given again to another schema, which references may name.
        self.recently_parsed.clear()
        self._removals += 1
        if not versions:
            del self.subjects[subject]
        referrers = self.referrers[schema_id]
        referrers.discard((subject, number))
        if not referrers:
            del self.referrers[schema_id]
            stored = self.schemas.pop(schema_id)
            if self.ids_by_canonical.get(stored.identity) == schema_id:
                del self.ids_by_canonical[stored.identity]
            for reference in stored.references:
                target = (reference.subject, reference.version)
                referring = self.referenced_by.get(target, set())
                referring.discard(schema_id)
                if not referring:
                    self.referenced_by.pop(target, None)


def _one_of(value: dict[str, Any], name: str, allowed: Collection[str]) -> str:
    found = text_field(value, name)
    if found not in allowed:
        raise ValueError(f"{name!r} is {found!r}, not one of {sorted(allowed)}")
    return found


def _set(
    per_subject: dict[str, Any],
    subject: object,
    value: object,
    state: RegistryState,
    global_attribute: str,
) -> None:
    if subject is None:
        setattr(state, global_attribute, value)
    elif value is None:
        per_subject.pop(str(subject), None)
    else:
        per_subject[str(subject)] = value
