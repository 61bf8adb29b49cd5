"""The broker's ACLs: loaded from the metadata store at start, changed through it.

A change is written to the store first (one transaction) and applied to the
authorizer's index only once it is durable, so what the authorizer enforces is always
what a restarted broker will load.
"""

from __future__ import annotations

from collections.abc import Sequence

from contextplane.metadata.records import AclRecord
from contextplane.metadata.store import MetadataStore
from contextplane.security.acls import AclBinding, AclFilter, parse_super_users
from contextplane.security.standard_authorizer import StandardAuthorizer
from contextplane.settings import Settings


def to_record(binding: AclBinding) -> AclRecord:
    return AclRecord(
        int(binding.resource_type),
        binding.name,
        int(binding.pattern_type),
        binding.principal,
        binding.host,
        int(binding.operation),
        int(binding.permission),
    )


def from_record(record: AclRecord) -> AclBinding:
    return AclBinding.from_wire(
        record.resource_type,
        record.resource_name,
        record.pattern_type,
        record.principal,
        record.host,
        record.operation,
        record.permission,
    )


class AclAdmin:
    """CreateAcls, DescribeAcls and DeleteAcls against the store and the authorizer."""

    def __init__(self, store: MetadataStore, authorizer: StandardAuthorizer) -> None:
        self._store = store
        self.authorizer = authorizer

    @classmethod
    async def load(cls, store: MetadataStore, settings: Settings) -> AclAdmin:
        records = await store.acls()
        authorizer = StandardAuthorizer(
            (from_record(r) for r in records),
            super_users=parse_super_users(settings.super_users),
            allow_if_no_acl=settings.allow_everyone_if_no_acl_found,
        )
        return cls(store, authorizer)

    async def create(self, bindings: Sequence[AclBinding]) -> None:
        """Store and enforce valid bindings (the caller validated them)."""
        if not bindings:
            return
        await self._store.create_acls([to_record(b) for b in bindings])
        for binding in bindings:
            self.authorizer.acls.add(binding)

    def describe(self, acl_filter: AclFilter) -> list[AclBinding]:
        return self.authorizer.acls.matching(acl_filter)

    async def delete(self, filters: Sequence[AclFilter]) -> list[list[AclBinding]]:
        """The bindings each filter matched, all deleted in one transaction; a binding two
        filters match is reported under both, as Kafka reports it."""
        taken: set[AclBinding] = set()
        results: list[list[AclBinding]] = []
        for acl_filter in filters:
            matched = self.authorizer.acls.matching(acl_filter)
            taken.update(matched)
            results.append(matched)
        if taken:
            await self._store.delete_acls([to_record(b) for b in taken])
            for binding in taken:
                self.authorizer.acls.remove(binding)
        return results
