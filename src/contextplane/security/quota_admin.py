"""The broker's client quotas: loaded from the metadata store at start, changed through
it, and read again when another broker changed them (`generation.security` moved:
`reload`).

An AlterClientQuotas is validated against the values in force (Kafka's controller
rules, quota_config.py), written to the store in one transaction, and only then put in
force, so what is enforced is always what a restarted broker loads. Alterations and
reloads are serialised: each alteration validates against the outcome of the one before,
and a reload's read from before an alteration of this broker's never undoes it.
"""

from __future__ import annotations

import asyncio

from contextplane.errors import DependencyUnavailable
from contextplane.metadata.records import ClientQuotaRecord
from contextplane.metadata.store import MetadataStore
from contextplane.security.client_quotas import ClientQuotas
from contextplane.security.quota_config import (
    Alteration,
    Entity,
    Filter,
    QuotaError,
    apply,
    matches,
)


class QuotaAdmin:
    """AlterClientQuotas and DescribeClientQuotas against the store and the enforcer."""

    def __init__(self, store: MetadataStore, quotas: ClientQuotas) -> None:
        self._store = store
        self.quotas = quotas
        self._lock = asyncio.Lock()

    @classmethod
    async def load(cls, store: MetadataStore, quotas: ClientQuotas) -> QuotaAdmin:
        admin = cls(store, quotas)
        await admin.reload()
        return admin

    async def reload(self) -> None:
        """Put the stored quotas in force, all at once."""
        async with self._lock:
            configured: dict[Entity, dict[str, float]] = {}
            for record in await self._store.client_quotas():
                if record.value is not None:
                    configured.setdefault(record.entity, {})[record.key] = record.value
            self.quotas.replace(configured)

    async def alter(
        self, alterations: list[Alteration], validate_only: bool
    ) -> dict[Entity, QuotaError | None]:
        """Each entity's result (None: done); nothing changes with `validate_only`."""
        async with self._lock:
            current = self.quotas.configured
            results, changes = apply(current, alterations)
            if validate_only or not changes:
                return results
            try:
                await self._store.alter_client_quotas(
                    [ClientQuotaRecord(entity, key, value) for entity, key, value in changes]
                )
            except DependencyUnavailable as exc:
                # Nothing stored: each entity to change gets the store's retriable error.
                failed = QuotaError(exc.code, exc.message)
                changed = {entity for entity, _, _ in changes}
                return {e: failed if e in changed else r for e, r in results.items()}
            updated = {entity: dict(values) for entity, values in current.items()}
            for entity, key, value in changes:
                values = updated.setdefault(entity, {})
                if value is None:
                    values.pop(key, None)
                else:
                    values[key] = value
            self.quotas.replace(updated)
            return results

    def describe(self, where: Filter) -> list[tuple[Entity, dict[str, float]]]:
        return [
            (entity, values)
            for entity, values in self.quotas.configured.items()
            if matches(entity, where)
        ]
