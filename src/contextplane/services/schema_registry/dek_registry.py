"""The DEK registry of client-side field-level encryption, as Confluent's decides it:
KEKs (a name for a key held in a KMS the clients reach) and the DEKs clients generate,
wrap with a KEK and register per subject, versioned per (KEK, subject, algorithm).

The registry never sees a key in the clear: it holds no KMS credentials, so a `shared`
KEK (Confluent's registry unwrapping and generating DEKs for the clients) is refused.
State is folded from the `_dek_registry_keys` topic (dek_records.py) through a `Store`, as
the schemas are from `_schemas`; writes decide under one lock and return once applied.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from dataclasses import replace
from typing import Any, TypeVar

from contextplane.clock import Clock, SystemClock
from contextplane.services.schema_registry import errors
from contextplane.services.schema_registry.dek_records import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    Dek,
    Kek,
    dek_key,
    kek_key,
)
from contextplane.services.schema_registry.records import (
    INT32_MAX,
    decode_record,
    int32_field,
    text_field,
)
from contextplane.services.schema_registry.state import UNREADABLE
from contextplane.services.schema_registry.store import Record, Store

log = logging.getLogger("contextplane.schema_registry")

# Confluent's bounds: a KEK's name (NAME_MAX_LENGTH) and the keys held (dek.registry.max.keys).
NAME_CHARS_MAX = 64
KEYS_MAX = 10_000
# Ours, for what Confluent leaves to its body limit: a KMS key id or URL, a doc, the
# KMS properties; a subject; wrapped key material (a KMS-wrapped 32-byte key is ~200
# bytes: AWS's is 184, the local KMS's 60).
KMS_KEY_ID_CHARS_MAX = 2048
DOC_CHARS_MAX = 4096
KMS_PROPS_MAX = 64
KMS_PROP_CHARS_MAX = 1024
SUBJECT_CHARS_MAX = 1024
KEY_MATERIAL_BYTES_MAX = 4096
# A KEK's name: a letter or `_`, then letters, digits, `_` or `-` (Confluent's checkName).
_NAME = re.compile(r"[^\W\d][\w-]*")
_ISO_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_Key = TypeVar("_Key", Kek, Dek)


def check_name(name: object) -> str:
    if not isinstance(name, str) or len(name) > NAME_CHARS_MAX or not _NAME.fullmatch(name):
        raise errors.invalid_key("name")
    return name


def check_subject(subject: object) -> str:
    if (
        not isinstance(subject, str)
        or not subject
        or len(subject) > SUBJECT_CHARS_MAX
        or _ISO_CONTROL.search(subject)
    ):
        raise errors.invalid_key("subject")
    return subject


def check_algorithm(algorithm: object) -> str:
    """A request's algorithm; none means AES256_GCM."""
    if algorithm is None or algorithm == "":
        return DEFAULT_ALGORITHM
    if algorithm not in ALGORITHMS:
        raise errors.invalid_key("algorithm", f"one of {', '.join(ALGORITHMS)}")
    return str(algorithm)


class DekRegistry:
    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self._store = store
        self._clock = clock or SystemClock()
        self._writes = asyncio.Lock()
        self.keks: dict[str, Kek] = {}
        # (kek, subject, algorithm) -> version -> DEK
        self.deks: dict[tuple[str, str, str], dict[int, Dek]] = {}
        self.skipped_records = 0

    async def start(self) -> None:
        await self._store.start(self.apply)

    async def close(self) -> None:
        await self._store.close()

    # -- the topic's records -----------------------------------------------------------

    def apply(self, raw_key: bytes | None, raw_value: bytes | None) -> None:
        """One record; one this version cannot read is logged and skipped."""
        try:
            self._apply(*decode_record(raw_key, raw_value))
        except UNREADABLE as exc:
            self.skipped_records += 1
            log.warning("skipped a _dek_registry_keys record it cannot read (%s)", exc)

    def _apply(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        # A value must be its key's: one under another key would be served under the wrong
        # name and outlive its own key's tombstone once the topic is compacted.
        keytype = key.get("keytype")
        if keytype == "KEK":
            name = text_field(key, "name")
            if value is None:
                self.keks.pop(name, None)
                return
            kek = Kek.from_json(value)
            if kek.name != name:
                raise ValueError(f"a KEK value named {kek.name!r} under the key {name!r}")
            self.keks[name] = kek
        elif keytype == "DEK":
            identity = (
                text_field(key, "kekName"),
                text_field(key, "subject"),
                text_field(key, "algorithm"),
            )
            version = int32_field(key, "version")
            if value is None:
                versions = self.deks.get(identity, {})
                versions.pop(version, None)
                if not versions:
                    self.deks.pop(identity, None)
                return
            dek = Dek.from_json(value)
            if (dek.identity, dek.version) != (identity, version):
                raise ValueError("a DEK value under another DEK's key")
            self.deks.setdefault(dek.identity, {})[dek.version] = dek
        elif keytype != "NOOP":
            raise ValueError(f"keytype {keytype!r}")

    # -- KEKs ----------------------------------------------------------------------------

    def kek_names(self, *, deleted: bool = False) -> list[str]:
        return sorted(n for n, k in self.keks.items() if deleted or not k.deleted)

    def kek(self, name: str, *, deleted: bool = False) -> Kek:
        check_name(name)
        found = self.keks.get(name)
        if found is None or (found.deleted and not deleted):
            raise errors.key_not_found(name)
        return found

    async def create_kek(self, body: dict[str, Any]) -> Kek:
        name = check_name(body.get("name"))
        kms_type = body.get("kmsType")
        kms_key_id = body.get("kmsKeyId")
        if not isinstance(kms_key_id, str) or not kms_key_id:
            raise errors.invalid_key("kmsKeyId")
        if len(kms_key_id) > KMS_KEY_ID_CHARS_MAX:
            raise errors.invalid_key("kmsKeyId", f"longer than {KMS_KEY_ID_CHARS_MAX} characters")
        if not isinstance(kms_type, str) or not kms_type or len(kms_type) > NAME_CHARS_MAX:
            raise errors.invalid_key("kmsType")
        shared = body.get("shared", False)
        if shared is None:
            shared = False
        if not isinstance(shared, bool):
            raise errors.invalid_key("shared", "not a boolean")
        if shared:
            raise errors.invalid_key(
                "shared",
                "this registry holds no KMS credentials, so it cannot generate or unwrap "
                "DEKs for a shared KEK; register the KEK with shared=false",
            )
        wanted = Kek(
            name, kms_type, kms_key_id, _kms_props(body.get("kmsProps")), _doc(body.get("doc"))
        )
        async with self._writes:
            await self._store.sync()
            existing = self.keks.get(name)
            if existing is not None:
                if not existing.deleted and existing.same_key(wanted):
                    return existing
                raise errors.key_exists(name)
            self._check_room()
            kek = _with_ts(wanted, self._clock.wall_ms())
            await self._store.write([(kek_key(name), kek.to_json())])
        return self.keks[name]

    async def update_kek(self, name: str, body: dict[str, Any]) -> Kek:
        """`PUT /keks/{name}`: its kmsProps, doc and shared, each only if given."""
        check_name(name)
        async with self._writes:
            await self._store.sync()
            kek = self.kek(name)
            shared = body.get("shared")
            if shared is not None and not isinstance(shared, bool):
                raise errors.invalid_key("shared", "not a boolean")
            if shared:
                raise errors.invalid_key("shared", "a shared KEK needs a KMS in the registry")
            changed = Kek(
                name,
                kek.kms_type,
                kek.kms_key_id,
                _kms_props(body["kmsProps"]) if "kmsProps" in body else kek.kms_props,
                _doc(body["doc"]) if "doc" in body else kek.doc,
                False,
                self._clock.wall_ms(),
            )
            if changed.same_key(kek):
                return kek
            await self._store.write([(kek_key(name), changed.to_json())])
        return self.keks[name]

    async def delete_kek(self, name: str, *, permanent: bool) -> None:
        """Soft first (refused while it has live DEKs), then permanent (refused while it
        has any DEK at all), as Confluent's."""
        check_name(name)
        async with self._writes:
            await self._store.sync()
            kek = self.kek(name, deleted=True)
            deks = [d for (k, _, _), v in self.deks.items() if k == name for d in v.values()]
            if permanent:
                if not kek.deleted:
                    raise errors.key_not_soft_deleted(name)
                if deks:
                    raise errors.key_reference_exists(name)
                await self._store.write([(kek_key(name), None)])
                return
            if kek.deleted:
                return
            if any(not d.deleted for d in deks):
                raise errors.key_reference_exists(name)
            deleted = _with_ts(kek, self._clock.wall_ms(), deleted=True)
            await self._store.write([(kek_key(name), deleted.to_json())])

    async def undelete_kek(self, name: str) -> None:
        async with self._writes:
            await self._store.sync()
            kek = self.kek(name, deleted=True)
            if kek.deleted:
                kek = _with_ts(kek, self._clock.wall_ms(), deleted=False)
                await self._store.write([(kek_key(name), kek.to_json())])

    # -- DEKs ----------------------------------------------------------------------------

    def dek_subjects(self, kek_name: str, *, deleted: bool = False) -> list[str]:
        self.kek(kek_name, deleted=deleted)
        return sorted(
            {
                subject
                for (kek, subject, _), versions in self.deks.items()
                if kek == kek_name and any(deleted or not d.deleted for d in versions.values())
            }
        )

    def dek_versions(
        self, kek_name: str, subject: str, algorithm: str, *, deleted: bool = False
    ) -> list[int]:
        self.kek(kek_name, deleted=deleted)
        versions = self.deks.get((kek_name, check_subject(subject), algorithm), {})
        return sorted(v for v, d in versions.items() if deleted or not d.deleted)

    def dek(
        self,
        kek_name: str,
        subject: str,
        version: int | None,
        algorithm: str,
        *,
        deleted: bool = False,
    ) -> Dek:
        """The DEK of that version, or the latest (None); 40470 naming the KEK or the
        subject that is not there."""
        self.kek(kek_name, deleted=deleted)
        check_subject(subject)
        live = [
            d
            for d in self.deks.get((kek_name, subject, algorithm), {}).values()
            if deleted or not d.deleted
        ]
        if version is None:
            found = max(live, key=lambda d: d.version, default=None)
        else:
            found = next((d for d in live if d.version == version), None)
        if found is None:
            raise errors.key_not_found(subject)
        return found

    async def create_dek(self, kek_name: str, body: dict[str, Any]) -> Dek:
        subject = check_subject(body.get("subject"))
        version = body.get("version", 1)
        if version is None:
            version = 1
        if isinstance(version, bool) or not isinstance(version, int):
            raise errors.invalid_key("version", "not an integer")
        if not 1 <= version <= INT32_MAX:
            raise errors.invalid_version(str(version))
        algorithm = check_algorithm(body.get("algorithm"))
        material = _key_material(body.get("encryptedKeyMaterial"))
        async with self._writes:
            await self._store.sync()
            self.kek(kek_name)
            if material is None:
                # Confluent generates one for a shared KEK; no KEK here is shared.
                raise errors.invalid_key("encryptedKeyMaterial")
            versions = self.deks.get((kek_name, subject, algorithm), {})
            existing = versions.get(version)
            if existing is not None:
                if not existing.deleted and existing.encrypted_key_material == material:
                    return existing
                raise errors.key_exists(subject)
            self._check_room()
            dek = Dek(kek_name, subject, version, algorithm, material, self._clock.wall_ms())
            await self._store.write([(dek_key(dek), dek.to_json())])
        return self.deks[dek.identity][version]

    async def delete_deks(
        self,
        kek_name: str,
        subject: str,
        algorithm: str,
        version: int | None,
        *,
        permanent: bool,
    ) -> None:
        """Every version of the subject's DEK (`version` None) or one: soft, then
        permanent once soft-deleted (40471)."""
        check_subject(subject)
        async with self._writes:
            await self._store.sync()
            self.kek(kek_name, deleted=True)
            versions = self.deks.get((kek_name, subject, algorithm), {})
            chosen = [d for v, d in versions.items() if version is None or v == version]
            if not chosen:
                raise errors.key_not_found(subject)
            records: list[Record] = []
            for dek in chosen:
                if permanent:
                    if not dek.deleted:
                        raise errors.key_not_soft_deleted(subject)
                    records.append((dek_key(dek), None))
                elif not dek.deleted:
                    deleted = _with_ts(dek, self._clock.wall_ms(), deleted=True)
                    records.append((dek_key(dek), deleted.to_json()))
            if records:
                await self._store.write(records)

    async def undelete_deks(
        self, kek_name: str, subject: str, algorithm: str, version: int | None
    ) -> None:
        """Undelete the subject's DEK versions (or one); its KEK must be live (40472)."""
        check_subject(subject)
        async with self._writes:
            await self._store.sync()
            kek = self.kek(kek_name, deleted=True)
            if kek.deleted:
                raise errors.key_soft_deleted(kek_name)
            versions = self.deks.get((kek_name, subject, algorithm), {})
            chosen = [d for v, d in versions.items() if version is None or v == version]
            if not chosen:
                raise errors.key_not_found(subject)
            now = self._clock.wall_ms()
            records: list[Record] = [
                (dek_key(d), _with_ts(d, now, deleted=False).to_json()) for d in chosen if d.deleted
            ]
            if records:
                await self._store.write(records)

    def _check_room(self) -> None:
        held = len(self.keks) + sum(len(v) for v in self.deks.values())
        if held >= KEYS_MAX:
            raise errors.too_many_keys(KEYS_MAX)


def _with_ts(key: _Key, ts: int, *, deleted: bool | None = None) -> _Key:
    return replace(key, ts=ts, deleted=key.deleted if deleted is None else deleted)


def _kms_props(props: object) -> dict[str, str]:
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise errors.invalid_key("kmsProps", "not an object")
    if len(props) > KMS_PROPS_MAX:
        raise errors.invalid_key("kmsProps", f"more than {KMS_PROPS_MAX} properties")
    for name, value in props.items():
        if not isinstance(value, str):
            raise errors.invalid_key("kmsProps", f"{name[:64]!r} is not a string")
        if len(name) > KMS_PROP_CHARS_MAX or len(value) > KMS_PROP_CHARS_MAX:
            raise errors.invalid_key("kmsProps", f"longer than {KMS_PROP_CHARS_MAX} characters")
    return dict(props)


def _doc(doc: object) -> str | None:
    if doc is None:
        return None
    if not isinstance(doc, str):
        raise errors.invalid_key("doc", "not a string")
    if len(doc) > DOC_CHARS_MAX:
        raise errors.invalid_key("doc", f"longer than {DOC_CHARS_MAX} characters")
    return doc


def _key_material(material: object) -> str | None:
    """Wrapped key material: base64 of at most KEY_MATERIAL_BYTES_MAX bytes."""
    if material is None or material == "":
        return None
    if not isinstance(material, str):
        raise errors.invalid_key("encryptedKeyMaterial", "not a string")
    too_large = errors.invalid_key(
        "encryptedKeyMaterial", f"more than {KEY_MATERIAL_BYTES_MAX} bytes"
    )
    if len(material) > (KEY_MATERIAL_BYTES_MAX + 2) // 3 * 4:
        raise too_large  # refused unread
    try:
        decoded = base64.b64decode(material, validate=True)
    except (binascii.Error, ValueError):
        raise errors.invalid_key("encryptedKeyMaterial", "not base64") from None
    if len(decoded) > KEY_MATERIAL_BYTES_MAX:
        raise too_large
    return material
