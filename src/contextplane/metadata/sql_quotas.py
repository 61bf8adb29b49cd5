"""The statements of the client quota table (migration 0004), and the engine and
store methods over them (mixed into `SqlEngine` and `SqlMetadataStore`).

The engine runs the statements inside its transactions; one AlterClientQuotas is one
transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from contextplane.metadata.records import ClientQuotaRecord
from contextplane.metadata.sql_assignment import SECURITY_GENERATION, bump_generation
from contextplane.metadata.sql_db import Db


def _entity_text(entity: tuple[tuple[str, str | None], ...]) -> str:
    return json.dumps([list(pair) for pair in entity], separators=(",", ":"))


def _entity(text: str) -> tuple[tuple[str, str | None], ...]:
    return tuple((str(t), None if n is None else str(n)) for t, n in json.loads(text))


def load(db: Db) -> list[ClientQuotaRecord]:
    rows = db.execute("SELECT entity, quota_key, value FROM client_quotas ORDER BY entity")
    return [ClientQuotaRecord(_entity(entity), key, value) for entity, key, value in rows]


def alter(db: Db, changes: Iterable[ClientQuotaRecord]) -> None:
    for change in changes:
        entity = _entity_text(change.entity)
        if change.value is None:
            db.execute(
                "DELETE FROM client_quotas WHERE entity=? AND quota_key=?", (entity, change.key)
            )
        else:
            db.execute(
                "INSERT INTO client_quotas (entity, quota_key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (entity, quota_key) DO UPDATE SET value=excluded.value",
                (entity, change.key, change.value),
            )


class QuotaRows:
    """`SqlEngine`'s client quota methods (over its connection and transactions)."""

    _db: Db

    def client_quotas(self) -> list[ClientQuotaRecord]:
        return load(self._db)

    def alter_client_quotas(self, changes: list[ClientQuotaRecord]) -> None:
        engine: Any = self  # a SqlEngine: its transactions
        with engine._transaction():
            # Every broker enforces the quotas: they read them again when this moves.
            bump_generation(self._db, SECURITY_GENERATION)
            alter(self._db, changes)


class QuotaCalls:
    """`SqlMetadataStore`'s client quota methods, run on its worker thread."""

    async def client_quotas(self) -> list[ClientQuotaRecord]:
        store: Any = self  # a SqlMetadataStore
        result: list[ClientQuotaRecord] = await store._call(store.engine.client_quotas)
        return result

    async def alter_client_quotas(self, changes: list[ClientQuotaRecord]) -> None:
        store: Any = self
        await store._call(store.engine.alter_client_quotas, changes)
