"""The registry's operations, as Confluent's registry decides them. Every write decides
against the folded state under one lock, then writes records and returns once they are
applied; every check runs before the first record, so a refused request stores nothing.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from typing import Any

from contextplane.services.schema_registry import errors
from contextplane.services.schema_registry.contracts import (
    NO_CONTRACT,
    Contract,
    check_size,
    contract_key,
    merge_metadata,
    merge_rule_sets,
    metadata_field,
    properties_match,
    rule_set_field,
)
from contextplane.services.schema_registry.formats import Parsed, parse
from contextplane.services.schema_registry.modes import DEFAULT_LEVEL, LEVELS, problems
from contextplane.services.schema_registry.records import (
    CONFIG_FIELDS,
    INT32_MAX,
    ConfigValue,
    SchemaValue,
    config_key,
    delete_subject_key,
    mode_key,
    schema_key,
)
from contextplane.services.schema_registry.references import Reference
from contextplane.services.schema_registry.state import (
    RegistryState,
    Resolved,
    StoredSchema,
    Version,
)
from contextplane.services.schema_registry.store import Store

MODES = ("READWRITE", "READONLY")
DEFAULT_MODE = "READWRITE"
VERSION_MAX = INT32_MAX
ID_MAX = INT32_MAX
LATEST = "latest"
# What Java's Integer.parseInt reads (Confluent's VersionId): Python's int() also reads
# surrounding whitespace and "1_000".
_JAVA_INT = re.compile(r"[+-]?\d+")
# Java's Character.isISOControl: Confluent refuses a subject with any of these (42208).
_ISO_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Found:
    subject: str
    version: Version
    schema: StoredSchema


class SchemaRegistry:
    def __init__(self, store: Store) -> None:
        self.state = RegistryState()
        self._store = store
        self._writes = asyncio.Lock()

    async def start(self) -> None:
        await self._store.start(self.state.apply)

    async def close(self) -> None:
        await self._store.close()

    # -- settings ------------------------------------------------------------------------

    def compatibility(self, subject: str | None = None) -> str:
        config = self.state.subject_configs.get(subject) if subject is not None else None
        if config is not None and config.compatibility_level is not None:
            return config.compatibility_level
        return self.state.global_compatibility or DEFAULT_LEVEL

    def config_in_scope(self, subject: str | None) -> ConfigValue:
        """The settings a subject's registrations follow, as Confluent's
        `getConfigInScope`: the subject's config if it has one (its level and group
        falling back to the global ones), else the global config; the level filled in."""
        found = self.state.global_config or ConfigValue()
        own = self.state.subject_configs.get(subject) if subject is not None else None
        if own is not None:
            found = replace(
                own, compatibility_group=own.compatibility_group or found.compatibility_group
            )
        return replace(found, compatibility_level=self.compatibility(subject))

    def mode(self, subject: str | None = None) -> str:
        if subject is not None and subject in self.state.subject_modes:
            return self.state.subject_modes[subject]
        return self.state.global_mode or DEFAULT_MODE

    # -- reads ---------------------------------------------------------------------------

    def subjects(
        self, *, deleted: bool = False, deleted_only: bool = False, prefix: str = ""
    ) -> list[str]:
        found = self.state.live_subjects(deleted=deleted or deleted_only)
        if deleted_only:  # subjects soft-deleted whole
            found = [s for s in found if not self.state.versions(s)]
        return [s for s in found if s.startswith(prefix)]

    def versions(
        self, subject: str, *, deleted: bool = False, deleted_only: bool = False
    ) -> list[int]:
        every = self.state.versions(subject, deleted=True)
        if not every:
            raise errors.subject_not_found(subject)
        if deleted_only:
            return [v.version for v in every if v.deleted]
        found = self.state.versions(subject, deleted=deleted)
        if not found:
            raise errors.subject_not_found(subject)
        return [v.version for v in found]

    def every_version(
        self, *, deleted: bool = False, prefix: str = "", latest_only: bool = False
    ) -> list[Found]:
        """Every version of every subject, by subject then version, or only the latest of
        each (`GET /schemas`)."""
        found: list[Found] = []
        for subject in self.subjects(deleted=deleted, prefix=prefix):
            versions = self.state.versions(subject, deleted=deleted)
            for version in versions[-1:] if latest_only else versions:
                found.append(Found(subject, version, self.state.schemas[version.schema_id]))
        return found

    def version(self, subject: str, spec: str, *, deleted: bool = False) -> Found:
        number = parse_version(spec)
        every = self.state.versions(subject, deleted=True)
        if not every:
            raise errors.subject_not_found(subject)
        candidates = every if deleted else [v for v in every if not v.deleted]
        if number is None:
            if not candidates:
                raise errors.subject_not_found(subject)
            chosen = candidates[-1]
        else:
            chosen = next((v for v in candidates if v.version == number), None)
            if chosen is None:
                raise errors.version_not_found(number)
        return Found(subject, chosen, self.state.schemas[chosen.schema_id])

    def schema(self, schema_id: int) -> StoredSchema:
        stored = self.state.schemas.get(schema_id)
        if stored is None:
            raise errors.schema_not_found(schema_id)
        return stored

    def schema_versions(self, schema_id: int, *, deleted: bool = False) -> list[tuple[str, int]]:
        self.schema(schema_id)
        return [
            (subject, v.version)
            for subject, v in self.state.references_to(schema_id)
            if deleted or not v.deleted
        ]

    async def lookup(
        self,
        subject: str,
        text: str,
        schema_type: str,
        references: tuple[Reference, ...] = (),
        contract: Contract = NO_CONTRACT,
        *,
        deleted: bool = False,
    ) -> Found:
        versions = self.state.versions(subject, deleted=deleted)
        if not versions:
            raise errors.subject_not_found(subject)
        resolved = await self._resolve(schema_type, text, references, deleted=True)
        versions = self.state.versions(subject, deleted=deleted)  # as they are now
        # As given, then (as Confluent's lookup mimics a registration) with the contract
        # a registration would give it: the latest live version's, defaults and overrides.
        given = Contract(contract.metadata or None, contract.rule_set or None)
        found = _newest_with(self.state, subject, versions, schema_type, resolved, given)
        if found is None and self.state.versions(subject):
            merged = self._merged_contract(subject, contract)
            found = _newest_with(self.state, subject, versions, schema_type, resolved, merged)
        if found is not None:
            return found
        raise errors.schema_not_found()

    def latest_with_metadata(
        self, subject: str, wanted: dict[str, str], *, deleted: bool = False
    ) -> Found:
        """The newest version whose metadata properties include `wanted`
        (`GET /subjects/{s}/metadata`); 40401 for no such subject, 40403 for no match."""
        versions = self.state.versions(subject, deleted=deleted)
        for version in reversed(versions):
            stored = self.state.schemas[version.schema_id]
            if properties_match(stored.metadata, wanted):
                return Found(subject, version, stored)
        if not versions:
            raise errors.subject_not_found(subject)
        raise errors.schema_not_found()

    def _merged_contract(self, subject: str, given: Contract) -> Contract:
        """Confluent's `maybeSetMetadataRuleSet`: the contract given, else the latest live
        version's, over the config's defaults and under its overrides."""
        live = self.state.versions(subject)
        previous = self.state.schemas[live[-1].schema_id] if live else None
        config = self.config_in_scope(subject)
        metadata = given.metadata
        if metadata is None and previous is not None:
            metadata = previous.metadata
        rule_set = given.rule_set
        if rule_set is None and previous is not None:
            rule_set = previous.rule_set
        metadata = merge_metadata(
            merge_metadata(config.default_metadata, metadata), config.override_metadata
        )
        rule_set = merge_rule_sets(
            merge_rule_sets(config.default_rule_set, rule_set), config.override_rule_set
        )
        return Contract(metadata or None, rule_set or None)

    async def compatibility_problems(
        self,
        subject: str,
        spec: str | None,
        text: str,
        schema_type: str,
        references: tuple[Reference, ...] = (),
        contract: Contract = NO_CONTRACT,
    ) -> list[str]:
        """Why `text` may not follow the subject's version `spec` (None: every version the
        subject's level checks against); empty when it may. With a compatibility group,
        only versions of the group of the metadata given count (as Confluent, which does
        not complete the contract here)."""
        parsed = (await self._resolve(schema_type, text, references, deleted=False)).parsed
        if spec is None:
            level = self.compatibility(subject)
            versions = self.state.versions(subject)
        else:
            level = self.compatibility(subject).removesuffix("_TRANSITIVE")
            versions = [self.version(subject, spec).version]
        group = self.config_in_scope(subject).compatibility_group
        earlier = self._parsed(_same_group(self.state, versions, group, contract))
        return await asyncio.to_thread(problems, level, parsed, earlier)

    async def _resolve(
        self, schema_type: str, text: str, references: tuple[Reference, ...], *, deleted: bool
    ) -> Resolved:
        """`RegistryState.resolve`, the parse on a worker thread: a schema that takes
        seconds to parse holds no other request (the parsers are pure Python, so they
        share the interpreter with the event loop, which still gets its turns)."""
        found = self.state.prepare(schema_type, text, references, deleted=deleted)
        if isinstance(found, Resolved):
            return found
        parsed = await asyncio.to_thread(parse, schema_type, text, list(found.named))
        return self.state.remember(found, parsed)

    def referenced_by(self, subject: str, spec: str, *, deleted: bool = False) -> list[int]:
        """Ids of the schemas that refer to the subject's version `spec`."""
        found = self.version(subject, spec, deleted=True)
        return self.state.referencing_ids(subject, found.version.version, deleted=deleted)

    def _parsed(self, versions: list[Version]) -> list[tuple[int, Parsed]]:
        return [(v.version, self.state.schemas[v.schema_id].parsed) for v in versions]

    # -- writes --------------------------------------------------------------------------

    async def register(
        self,
        subject: str,
        text: str,
        schema_type: str,
        references: tuple[Reference, ...] = (),
        contract: Contract = NO_CONTRACT,
    ) -> int:
        check_subject(subject)
        async with self._writes:
            await self._store.sync()
            self._writable(subject)
            resolved = await self._resolve(schema_type, text, references, deleted=False)
            parsed = resolved.parsed
            live = self.state.versions(subject)
            contract = self._merged_contract(subject, contract)
            check_size(contract.metadata, contract.rule_set)
            known_id = _known_id(self.state, schema_type, resolved, contract)
            for version in live:
                if version.schema_id == known_id:
                    return version.schema_id
            config = self.config_in_scope(subject)
            earlier = _same_group(self.state, live, config.compatibility_group, contract)
            found = await asyncio.to_thread(
                problems, config.compatibility_level, parsed, self._parsed(earlier)
            )
            if found:
                raise errors.incompatible(subject, found)
            schema_id = known_id if known_id is not None else self.state.next_id()
            if schema_id > ID_MAX:
                raise errors.store_error(f"no schema ids are left past {ID_MAX}")
            number = self.state.next_version(subject)
            if number > VERSION_MAX:
                raise errors.operation_not_permitted(f"Subject '{subject}' has no versions left")
            value = SchemaValue(
                subject,
                number,
                schema_id,
                parsed.canonical,
                False,
                schema_type,
                resolved.references,
                contract.metadata,
                contract.rule_set,
            )
            await self._store.write([(schema_key(subject, number), value.to_json())])
            return schema_id

    async def delete_subject(self, subject: str, *, permanent: bool) -> list[int]:
        async with self._writes:
            await self._store.sync()
            self._writable(subject)
            every = self.state.versions(subject, deleted=True)
            if not every:
                raise errors.subject_not_found(subject)
            live = [v for v in every if not v.deleted]
            self._not_referenced_from_elsewhere(subject, every if permanent else live, permanent)
            if permanent:
                if live:
                    raise errors.subject_not_soft_deleted(subject)
                await self._store.write([(schema_key(subject, v.version), None) for v in every])
                return [v.version for v in every]
            if not live:
                raise errors.subject_soft_deleted(subject)
            latest = live[-1].version
            value = {"subject": subject, "version": latest}
            await self._store.write([(delete_subject_key(subject), value)])
            return [v.version for v in live]

    async def delete_version(self, subject: str, spec: str, *, permanent: bool) -> int:
        async with self._writes:
            await self._store.sync()
            self._writable(subject)
            # A version named by number is found soft-deleted or not, so that deleting it
            # twice is 40406 rather than 40402; "latest" is the latest live one.
            by_number = parse_version(spec) is not None
            found = self.version(subject, spec, deleted=permanent or by_number)
            version = found.version
            if self.state.referencing_ids(subject, version.version, deleted=permanent):
                raise errors.reference_exists(subject, version.version)
            if permanent:
                if not version.deleted:
                    raise errors.version_not_soft_deleted(subject, version.version)
                await self._store.write([(schema_key(subject, version.version), None)])
                return version.version
            if version.deleted:
                raise errors.version_soft_deleted(subject, version.version)
            stored = found.schema
            value = SchemaValue(
                subject,
                version.version,
                stored.schema_id,
                stored.text,
                True,
                stored.schema_type,
                stored.references,
                stored.metadata,
                stored.rule_set,
            )
            await self._store.write([(schema_key(subject, version.version), value.to_json())])
            return version.version

    async def set_config(self, subject: str | None, body: dict[str, Any]) -> ConfigValue:
        """`PUT /config[/{s}]`: the fields the body names replace the stored ones (null
        clears one), the others are kept, as Confluent's `ConfigValue.update`."""
        if subject is not None:
            check_subject(subject)
        changes = config_changes(body)
        async with self._writes:
            await self._store.sync()
            if subject is None:
                old = self.state.global_config
            else:
                old = self.state.subject_configs.get(subject)
            config = replace(old or ConfigValue(), **changes)
            await self._store.write([(config_key(subject), config.to_json())])
            return config

    async def delete_config(self, subject: str) -> ConfigValue:
        async with self._writes:
            await self._store.sync()
            previous = self.state.subject_configs.get(subject)
            if previous is None:
                raise errors.subject_compatibility_not_found(subject)
            await self._store.write([(config_key(subject), None)])
            return previous

    async def set_mode(self, subject: str | None, mode: object) -> str:
        if subject is not None:
            check_subject(subject)
        if not isinstance(mode, str) or mode.upper() not in MODES:
            raise errors.invalid_mode(mode)
        async with self._writes:
            await self._store.sync()
            await self._store.write([(mode_key(subject), {"mode": mode.upper()})])
            return mode.upper()

    async def delete_mode(self, subject: str) -> str:
        async with self._writes:
            await self._store.sync()
            previous = self.state.subject_modes.get(subject)
            if previous is None:
                raise errors.subject_mode_not_found(subject)
            await self._store.write([(mode_key(subject), None)])
            return previous

    def _not_referenced_from_elsewhere(
        self, subject: str, versions: list[Version], permanent: bool
    ) -> None:
        """42206 if a schema of another subject refers to one of `versions` (`permanent`:
        counting soft-deleted referrers, which a hard delete would leave dangling)."""
        for version in versions:
            for schema_id in self.state.referencing_ids(
                subject, version.version, deleted=permanent
            ):
                referrers = self.state.references_to(schema_id)
                if any(s != subject and (permanent or not v.deleted) for s, v in referrers):
                    raise errors.reference_exists(subject, version.version)

    def _writable(self, subject: str) -> None:
        if self.mode(subject) != "READWRITE":
            raise errors.operation_not_permitted(f"Subject {subject} is in read-only mode")


def check_subject(subject: str) -> None:
    """A subject a write may create: not empty, no control characters (42208)."""
    if not subject or _ISO_CONTROL.search(subject):
        raise errors.invalid_subject(subject)


def parse_version(spec: str) -> int | None:
    """A version number, or None for the latest ("latest" or -1); 42202 otherwise."""
    if not _JAVA_INT.fullmatch(spec):
        if spec == LATEST:
            return None
        raise errors.invalid_version(spec)
    try:
        number = int(spec)
    except ValueError:  # more digits than int() reads
        raise errors.invalid_version(spec) from None
    if number == -1:
        return None
    if not 1 <= number <= VERSION_MAX:
        raise errors.invalid_version(spec)
    return number


def _known_id(
    state: RegistryState, schema_type: str, resolved: Resolved, contract: Contract
) -> int | None:
    return state.id_for(
        schema_type,
        resolved.parsed.canonical,
        resolved.references,
        contract_key(contract.metadata, contract.rule_set),
    )


def _newest_with(
    state: RegistryState,
    subject: str,
    versions: list[Version],
    schema_type: str,
    resolved: Resolved,
    contract: Contract,
) -> Found | None:
    """The newest of `versions` with that schema and contract, as Confluent answers."""
    schema_id = _known_id(state, schema_type, resolved, contract)
    for version in reversed(versions):
        if version.schema_id == schema_id:
            return Found(subject, version, state.schemas[version.schema_id])
    return None


def _same_group(
    state: RegistryState, live: list[Version], group: str | None, contract: Contract
) -> list[Version]:
    """The versions a new one is checked against: with a `compatibilityGroup`, only those
    whose metadata property of that name has the new one's value (both may lack it)."""
    if group is None:
        return live

    def value(metadata: dict[str, Any] | None) -> str | None:
        return (metadata or {}).get("properties", {}).get(group)

    wanted = value(contract.metadata)
    return [v for v in live if value(state.schemas[v.schema_id].metadata) == wanted]


def config_changes(body: dict[str, Any]) -> dict[str, Any]:
    """The ConfigValue fields a `PUT /config` body sets (None: cleared), each checked:
    42203 for a level, 422 for a group that is not a string, the contract fields' own
    codes for theirs."""
    changes: dict[str, Any] = {}
    for name, attribute in CONFIG_FIELDS:
        request_name = "compatibility" if name == "compatibilityLevel" else name
        if request_name not in body:
            continue
        value = body[request_name]
        if value is None:
            changes[attribute] = None
        elif request_name == "compatibility":
            if not isinstance(value, str) or value.upper() not in LEVELS:
                raise errors.invalid_compatibility_level(value)
            changes[attribute] = value.upper()
        elif request_name == "compatibilityGroup":
            if not isinstance(value, str):
                raise errors.unprocessable("'compatibilityGroup' must be a string")
            changes[attribute] = value
        elif name.endswith("Metadata"):
            changes[attribute] = metadata_field(value, where=name) or None
        else:
            changes[attribute] = rule_set_field(value, where=name) or None
    check_size(changes.get("default_metadata"), changes.get("default_rule_set"))
    check_size(changes.get("override_metadata"), changes.get("override_rule_set"))
    return changes
