"""One accepted credential written many ways (the scheme's case, the spaces after it) is
one session: a client cannot turn each request into an audited login, which successes,
never rate-limited, would otherwise let it do."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from contextplane.services.schema_registry.app import build_app
from contextplane.services.schema_registry.registry import SchemaRegistry
from contextplane.services.schema_registry.store import MemoryStore
from tests.support.asgi import call
from tests.support.jwt_issuer import Issuer
from tests.unit.test_registry_access import _bearer_access


def test_spellings_of_one_token_are_audited_once(tmp_path: Path) -> None:
    issuer = Issuer()
    records: list[dict[str, Any]] = []
    access = _bearer_access(tmp_path, issuer, records)
    token = issuer.token("alice")
    spellings = [f"Bearer {token}", f"bearer {token}", f"BEARER  {token}", f"Bearer   {token}"]

    async def main() -> list[int]:
        registry = SchemaRegistry(MemoryStore())
        await registry.start()
        app = build_app(registry, access)
        return [
            (
                await call(
                    app, "GET", "/", headers={"Authorization": s}, client=("10.0.0.9", 4000 + i)
                )
            ).status
            for i, s in enumerate(spellings)
        ]

    assert asyncio.run(main()) == [200] * len(spellings)
    logins = [
        r["data"]
        for r in records
        if r["data"].get("operation") == "AUTHENTICATE" and r["data"]["decision"] == "ALLOWED"
    ]
    assert [(d["principal"], d["client_address"]) for d in logins] == [
        ("User:alice", "10.0.0.9:4000")
    ]
