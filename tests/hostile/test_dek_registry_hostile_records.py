"""`_dek_registry_keys` written by a hostile producer: records the registry never writes
(a key whose fields are not strings, a value naming another key than its record's) are
skipped on replay, so they can neither break a listing nor outlive a permanent delete."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from contextplane.services.schema_registry.app import build_app
from contextplane.services.schema_registry.dek_registry import DekRegistry
from contextplane.services.schema_registry.registry import SchemaRegistry
from contextplane.services.schema_registry.store import MemoryStore
from tests.support.asgi import Answer, call

KEKS = "/dek-registry/v1/keks"
MATERIAL = base64.b64encode(b"wrapped key bytes").decode()
KEK_VALUE = {"name": "payments", "kmsType": "local-kms", "kmsKeyId": "key-1"}


def _record(key: dict[str, Any], value: dict[str, Any] | None) -> tuple[bytes, bytes | None]:
    return json.dumps(key).encode(), None if value is None else json.dumps(value).encode()


def _dek(version: int) -> dict[str, Any]:
    return {
        "kekName": "payments",
        "subject": "orders-value",
        "version": version,
        "algorithm": "AES256_GCM",
        "encryptedKeyMaterial": MATERIAL,
    }


def _dek_key(version: int) -> dict[str, Any]:
    fields = {k: v for k, v in _dek(version).items() if k != "encryptedKeyMaterial"}
    return {"keytype": "DEK", **fields, "magic": 0}


def _compacted(log: list[tuple[bytes | None, bytes | None]]) -> list[Any]:
    """The log as Kafka's cleaner leaves it once tombstones are past delete.retention.ms:
    each key's latest value, tombstones gone."""
    latest = dict(log)
    return [(k, v) for k, v in latest.items() if v is not None]


async def _serve(store: MemoryStore) -> tuple[Any, DekRegistry]:
    registry = SchemaRegistry(MemoryStore())
    keys = DekRegistry(store)
    await registry.start()
    await keys.start()
    return build_app(registry, None, keys), keys


def test_a_kek_key_without_a_string_name_does_not_break_the_listing() -> None:
    store = MemoryStore()
    store.log = [
        _record({"keytype": "KEK", "name": "payments", "magic": 0}, KEK_VALUE),
        _record({"keytype": "KEK", "name": 7, "magic": 0}, KEK_VALUE | {"name": "other"}),
        _record({"keytype": "KEK", "name": None, "magic": 0}, KEK_VALUE),
    ]

    async def main() -> tuple[Answer, int]:
        app, keys = await _serve(store)
        return await call(app, "GET", f"{KEKS}?deleted=true"), keys.skipped_records

    listing, skipped = asyncio.run(main())
    assert listing.status == 200, listing.body
    assert listing.json() == ["payments"]
    assert skipped == 2


def test_a_value_under_another_kek_name_is_not_served_under_the_key() -> None:
    store = MemoryStore()
    store.log = [
        _record({"keytype": "KEK", "name": "payments", "magic": 0}, KEK_VALUE),
        _record({"keytype": "KEK", "name": "alias", "magic": 0}, KEK_VALUE),
    ]

    async def main() -> Answer:
        app, _ = await _serve(store)
        return await call(app, "GET", f"{KEKS}/alias")

    assert asyncio.run(main()).status == 404


def test_a_dek_under_another_records_key_does_not_outlive_its_permanent_delete() -> None:
    # The value is version 2's, the key version 1's: version 2's tombstone leaves this
    # record in the compacted topic, and version 2 comes back once the tombstone is gone.
    store = MemoryStore()
    store.log = [
        _record({"keytype": "KEK", "name": "payments", "magic": 0}, KEK_VALUE),
        _record(_dek_key(1), _dek(2)),
    ]
    version_2 = f"{KEKS}/payments/deks/orders-value/versions/2"

    async def main() -> tuple[Answer, Answer]:
        app, keys = await _serve(store)
        await call(app, "DELETE", version_2)
        await call(app, "DELETE", f"{version_2}?permanent=true")
        await keys.close()
        store.log = _compacted(store.log)
        app, _ = await _serve(store)  # a restart replays the compacted topic
        return (
            await call(app, "GET", f"{version_2}?deleted=true"),
            await call(app, "GET", f"{KEKS}/payments/deks/orders-value/versions?deleted=true"),
        )

    dek, versions = asyncio.run(main())
    assert dek.status == 404, dek.body
    assert versions.json() == []
