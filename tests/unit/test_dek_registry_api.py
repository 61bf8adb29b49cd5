"""The DEK registry's REST API (`/dek-registry/v1`) through the registry's ASGI app over
the in-memory store: KEKs and DEKs as confluent-kafka's DekRegistryClient sends and reads
them, Confluent's error codes for what it refuses (nothing stored then), soft and
permanent deletes, a replay of the records, and per-subject authorization."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from contextplane.services.schema_registry.app import build_app
from contextplane.services.schema_registry.dek_registry import (
    KEY_MATERIAL_BYTES_MAX,
    NAME_CHARS_MAX,
    DekRegistry,
)
from contextplane.services.schema_registry.registry import SchemaRegistry
from contextplane.services.schema_registry.store import MemoryStore
from tests.support.asgi import Answer, call
from tests.support.jwt_issuer import Issuer
from tests.unit.test_registry_access import _bearer_access

Client = Callable[..., Awaitable[Answer]]
KEKS = "/dek-registry/v1/keks"
KEK = {"name": "payments", "kmsType": "local-kms", "kmsKeyId": "key-1", "shared": False}
MATERIAL = base64.b64encode(b"wrapped key bytes").decode()
DEK = {"subject": "orders-value", "version": 1, "algorithm": "AES256_GCM"}


def run(test: Callable[[Client, MemoryStore], Awaitable[None]], store: MemoryStore) -> None:
    async def main() -> None:
        registry = SchemaRegistry(MemoryStore())
        keys = DekRegistry(store)
        await registry.start()
        await keys.start()
        app = build_app(registry, None, keys)

        async def client(
            method: str, target: str, body: Any = None, raw: bytes | None = None
        ) -> Answer:
            return await call(app, method, target, body, raw)

        await test(client, store)

    asyncio.run(main())


def error(answer: Answer) -> tuple[int, int]:
    return answer.status, answer.json()["error_code"]


def test_keks_and_deks_as_the_client_uses_them() -> None:
    store = MemoryStore()

    async def test(client: Client, store: MemoryStore) -> None:
        kek = await client("POST", KEKS, KEK)
        assert kek.status == 200, kek.body
        assert {k: kek.json()[k] for k in KEK} == KEK
        assert kek.json()["deleted"] is False and kek.json()["kmsProps"] == {}
        # The same KEK again is the first one (the client registers on a 404 race).
        assert (await client("POST", KEKS, KEK)).json() == kek.json()
        assert (await client("GET", f"{KEKS}/payments?deleted=False")).json() == kek.json()
        assert (await client("GET", KEKS)).json() == ["payments"]

        dek_path = f"{KEKS}/payments/deks/orders-value"
        dek = await client("POST", dek_path, DEK | {"encryptedKeyMaterial": MATERIAL})
        assert dek.status == 200, dek.body
        assert dek.json() | {"ts": 0} == {
            "kekName": "payments",
            "subject": "orders-value",
            "version": 1,
            "algorithm": "AES256_GCM",
            "encryptedKeyMaterial": MATERIAL,
            "ts": 0,
            "deleted": False,
        }
        # The older route, the subject in the body, for version 2.
        second = DEK | {"version": 2, "encryptedKeyMaterial": MATERIAL}
        assert (await client("POST", f"{KEKS}/payments/deks", second)).status == 200
        query = "?algorithm=AES256_GCM&deleted=False"
        one = await client("GET", f"{dek_path}/versions/1{query}")
        assert one.json() == dek.json()
        assert (await client("GET", f"{dek_path}/versions/-1{query}")).json()["version"] == 2
        assert (await client("GET", f"{dek_path}/versions/latest")).json()["version"] == 2
        assert (await client("GET", dek_path)).json()["version"] == 2
        assert (await client("GET", f"{dek_path}/versions")).json() == [1, 2]
        assert (await client("GET", f"{KEKS}/payments/deks")).json() == ["orders-value"]
        # Another algorithm is another DEK.
        other = await client("GET", f"{dek_path}/versions/1?algorithm=AES128_GCM")
        assert error(other) == (404, 40470)
        assert other.json()["message"] == "Key 'orders-value' not found"

    run(test, store)

    # A replay of the topic's records serves the same keys.
    async def replayed(client: Client, store: MemoryStore) -> None:
        assert (await client("GET", f"{KEKS}/payments")).json()["kmsKeyId"] == "key-1"
        path = f"{KEKS}/payments/deks/orders-value/versions"
        assert (await client("GET", path)).json() == [1, 2]

    run(replayed, store)


def test_bad_input_is_refused_with_confluents_codes_and_nothing_stored() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        assert error(await client("POST", KEKS, raw=b'{"name": "k",')) == (400, 400)
        assert error(await client("POST", KEKS, raw=b"[1]")) == (400, 400)
        refused = [
            KEK | {"name": "1starts-with-a-digit"},
            KEK | {"name": "x" * (NAME_CHARS_MAX + 1)},
            KEK | {"name": "a/b"},
            {k: v for k, v in KEK.items() if k != "kmsKeyId"},
            {k: v for k, v in KEK.items() if k != "kmsType"},
            KEK | {"kmsProps": {"a": 1}},
            KEK | {"kmsProps": {f"p{i}": "v" for i in range(100)}},
            KEK | {"doc": "d" * 5000},
            KEK | {"shared": "yes"},
        ]
        for body in refused:
            assert error(await client("POST", KEKS, body)) == (422, 42271), body
        shared = await client("POST", KEKS, KEK | {"shared": True})
        assert error(shared) == (422, 42271)
        assert "holds no KMS credentials" in shared.json()["message"]
        assert store.log == []

        unknown = await client("GET", f"{KEKS}/nope")
        assert error(unknown) == (404, 40470)
        assert unknown.json()["message"] == "Key 'nope' not found"
        missing_kek = await client(
            "POST", f"{KEKS}/nope/deks/s", DEK | {"encryptedKeyMaterial": MATERIAL}
        )
        assert error(missing_kek) == (404, 40470)
        assert error(await client("GET", f"{KEKS}/nope/deks/s/versions/1")) == (404, 40470)

        assert (await client("POST", KEKS, KEK)).status == 200
        written = len(store.log)
        conflicting = await client("POST", KEKS, KEK | {"kmsKeyId": "key-2"})
        assert error(conflicting) == (409, 40971)
        assert (
            conflicting.json()["message"] == "Key 'payments' already exists; use a different value"
        )
        deks = f"{KEKS}/payments/deks/orders-value"
        oversized = base64.b64encode(b"k" * (KEY_MATERIAL_BYTES_MAX + 1)).decode()
        for body in (
            DEK | {"encryptedKeyMaterial": oversized},
            DEK | {"encryptedKeyMaterial": "not base64!"},
            DEK | {"encryptedKeyMaterial": 7},
            DEK,  # no material, and the KEK is not shared: nothing to store
            DEK | {"encryptedKeyMaterial": MATERIAL, "algorithm": "ROT13"},
        ):
            assert error(await client("POST", deks, body)) == (422, 42271), body
        body = DEK | {"encryptedKeyMaterial": MATERIAL, "version": 0}
        assert error(await client("POST", deks, body)) == (422, 42202)
        assert error(await client("GET", f"{deks}/versions/zero")) == (422, 42202)
        control = f"{KEKS}/payments/deks/a%01b"
        body = DEK | {"encryptedKeyMaterial": MATERIAL}
        assert error(await client("POST", control, body)) == (422, 42271)
        assert len(store.log) == written

        assert (await client("POST", deks, body)).status == 200
        other = DEK | {"encryptedKeyMaterial": base64.b64encode(b"other").decode()}
        assert error(await client("POST", deks, other)) == (409, 40971)

    run(test, MemoryStore())


def test_soft_and_permanent_deletes() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        assert (await client("POST", KEKS, KEK)).status == 200
        deks = f"{KEKS}/payments/deks/orders-value"
        body = DEK | {"encryptedKeyMaterial": MATERIAL}
        assert (await client("POST", deks, body)).status == 200
        # A KEK with live DEKs stays; a DEK goes soft first, then for good.
        assert error(await client("DELETE", f"{KEKS}/payments")) == (422, 42272)
        assert error(await client("DELETE", f"{deks}?permanent=true")) == (404, 40471)
        assert (await client("DELETE", deks)).status == 204
        assert error(await client("GET", f"{deks}/versions/1")) == (404, 40470)
        assert (await client("GET", f"{deks}/versions/1?deleted=true")).json()["deleted"]
        assert (await client("GET", f"{KEKS}/payments/deks")).json() == []
        assert (await client("GET", f"{KEKS}/payments/deks?deleted=true")).json() == [
            "orders-value"
        ]
        assert (await client("POST", f"{deks}/undelete")).status == 204
        assert (await client("GET", f"{deks}/versions/1")).status == 200
        assert (await client("DELETE", f"{deks}/versions/1")).status == 204
        assert (await client("DELETE", f"{deks}/versions/1?permanent=true")).status == 204
        assert error(await client("GET", f"{deks}/versions/1?deleted=true")) == (404, 40470)

        assert error(await client("DELETE", f"{KEKS}/payments?permanent=true")) == (404, 40471)
        assert (await client("DELETE", f"{KEKS}/payments")).status == 204
        assert error(await client("GET", f"{KEKS}/payments")) == (404, 40470)
        assert (await client("GET", f"{KEKS}?deleted=true")).json() == ["payments"]
        # A soft-deleted KEK's name stays taken until it is deleted for good.
        assert error(await client("POST", KEKS, KEK)) == (409, 40971)
        assert (await client("DELETE", f"{KEKS}/payments?permanent=true")).status == 204
        assert (await client("GET", f"{KEKS}?deleted=true")).json() == []
        assert (await client("POST", KEKS, KEK | {"kmsKeyId": "key-2"})).status == 200
        updated = await client("PUT", f"{KEKS}/payments", {"doc": "rotated", "kmsProps": {}})
        assert (updated.json()["doc"], updated.json()["kmsKeyId"]) == ("rotated", "key-2")

    run(test, MemoryStore())


def test_keks_need_alter_on_the_cluster_and_deks_their_subject(tmp_path: Path) -> None:
    issuer = Issuer()
    records: list[dict[str, Any]] = []
    access = _bearer_access(tmp_path, issuer, records)
    # alice may WRITE orders-*, bob READ orders-value, carol nothing; admin is a super user.

    async def main() -> None:
        registry = SchemaRegistry(MemoryStore())
        keys = DekRegistry(MemoryStore())
        await registry.start()
        await keys.start()
        app = build_app(registry, access, keys)

        async def as_(sub: str, method: str, target: str, body: Any = None) -> Answer:
            headers = {"Authorization": f"Bearer {issuer.token(sub)}"}
            return await call(app, method, target, body, headers=headers)

        assert error(await as_("alice", "POST", KEKS, KEK)) == (403, 40301)
        assert (await as_("admin", "POST", KEKS, KEK)).status == 200
        assert (await as_("bob", "GET", f"{KEKS}/payments")).status == 200
        body = DEK | {"encryptedKeyMaterial": MATERIAL}
        orders = f"{KEKS}/payments/deks/orders-value"
        assert (await as_("alice", "POST", orders, body)).status == 200
        assert (await as_("bob", "GET", f"{orders}/versions/1")).status == 200
        assert error(await as_("bob", "POST", orders, body | {"version": 2})) == (403, 40301)
        assert error(await as_("bob", "DELETE", orders)) == (403, 40301)
        # The older route's subject is in its body: checked all the same.
        older = f"{KEKS}/payments/deks"
        denied = await as_("bob", "POST", older, body | {"version": 3})
        assert error(denied) == (403, 40301)
        allowed = await as_("alice", "POST", older, body | {"version": 3})
        assert allowed.status == 200
        assert (await as_("bob", "GET", older)).json() == ["orders-value"]
        assert (await as_("carol", "GET", older)).json() == []

    asyncio.run(main())
    changes = [r["data"] for r in records if r["data"].get("api") in ("RegisterKek", "RegisterDek")]
    assert [(c["principal"], c["decision"]) for c in changes] == [
        ("User:alice", "DENIED"),
        ("User:admin", "ALLOWED"),
        ("User:alice", "ALLOWED"),
        ("User:bob", "DENIED"),
        ("User:bob", "DENIED"),
        ("User:alice", "ALLOWED"),
    ]
