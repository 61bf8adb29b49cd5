"""What the console's schema and ACL pages show: the subjects the broker's schema catalog
folded from `_schemas` (the same fold its schema id validation judges by), the records
that validation refused, and the ACLs the authorizer enforces."""

from __future__ import annotations

import asyncio
import importlib
import json
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contextplane.console.views import Page, paginate
from contextplane.security.acls import (
    AclBinding,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)

if TYPE_CHECKING:
    from contextplane.broker.context import Services
    from contextplane.broker.schema_catalog import SchemaCatalog
    from contextplane.services.schema_registry.state import StoredSchema

SCHEMA_TEXT_SHOWN_MAX = 64 * 1024  # characters of a schema's text on its subject's page
# Versions on a page of a subject: each may show SCHEMA_TEXT_SHOWN_MAX characters, which
# escaping can make five times as many bytes (a page of 500 could pass 100 MiB).
VERSIONS_PER_PAGE = 20
_EVERY_ACL = AclFilter(
    ResourceType.ANY, None, PatternType.ANY, None, None, Operation.ANY, Permission.ANY
)


@dataclass(frozen=True, slots=True)
class SubjectRow:
    subject: str
    versions: int
    latest_version: int
    latest_id: int
    schema_type: str


@dataclass(frozen=True, slots=True)
class VersionRow:
    version: int
    schema_id: int
    schema_type: str
    text: str
    truncated: bool
    contract: str  # its metadata and rule set as JSON ("" without a data contract)


@dataclass(frozen=True, slots=True)
class Rejection:
    topic: str
    reason: str
    records: int


@dataclass(frozen=True, slots=True)
class AclRow:
    resource_type: str
    name: str
    pattern_type: str
    principal: str
    host: str
    operation: str
    permission: str


async def _caught_up(services: Services) -> AbstractAsyncContextManager[SchemaCatalog]:
    # The catalog's first catch-up imports the registry's parsers (~0.3 s): here on a
    # worker thread rather than on the event loop.
    await asyncio.to_thread(importlib.import_module, "contextplane.services.schema_registry.state")
    catalog = services.schemas
    return catalog.current(services.log, catalog.topic in services.topics.topics())


def rejections(services: Services) -> list[Rejection]:
    return [
        Rejection(topic, reason, count)
        for (topic, reason), count in sorted(services.stats.schema_rejections.items())
    ]


async def subjects_page(services: Services, number: int) -> Page | None:
    """A page of live subjects; None when the catalog has no fold (no `_schemas` here, or
    more schema ids than validation keeps)."""
    async with await _caught_up(services) as catalog:
        state = catalog.registry
        if state is None:
            return None
        page = paginate(state.live_subjects(), number)
        rows = []
        for subject in page.rows:
            versions = state.versions(subject)
            latest = versions[-1]
            stored = state.schemas.get(latest.schema_id)
            rows.append(
                SubjectRow(
                    subject,
                    len(versions),
                    latest.version,
                    latest.schema_id,
                    stored.schema_type if stored is not None else "",
                )
            )
    return Page(rows, page.number, page.count, page.total)


async def subject_versions(services: Services, subject: str, number: int) -> Page | None:
    """A page of a subject's live versions, newest first; None for an unknown subject."""
    async with await _caught_up(services) as catalog:
        state = catalog.registry
        versions = state.versions(subject) if state is not None else []
        if state is None or not versions:
            return None
        page = paginate(versions[::-1], number, VERSIONS_PER_PAGE)
        rows = []
        for version in page.rows:
            stored = state.schemas.get(version.schema_id)
            text = stored.text if stored is not None else ""
            rows.append(
                VersionRow(
                    version.version,
                    version.schema_id,
                    stored.schema_type if stored is not None else "",
                    text[:SCHEMA_TEXT_SHOWN_MAX],
                    len(text) > SCHEMA_TEXT_SHOWN_MAX,
                    _contract(stored),
                )
            )
    return Page(rows, page.number, page.count, page.total)


async def acl_rows(services: Services) -> list[AclRow] | None:
    """Every ACL, in a stable order; None without an authorizer."""
    if services.acls is None:
        return None
    bindings = await services.acls.describe(_EVERY_ACL)
    return [_row(b) for b in sorted(bindings, key=_order)]


def _order(b: AclBinding) -> tuple[int, str, int, str, str, int, int]:
    return (
        b.resource_type,
        b.name,
        b.pattern_type,
        b.principal,
        b.host,
        b.operation,
        b.permission,
    )


def _row(b: AclBinding) -> AclRow:
    return AclRow(
        b.resource_type.name,
        b.name,
        b.pattern_type.name,
        b.principal,
        b.host,
        b.operation.name,
        b.permission.name,
    )


def _contract(stored: StoredSchema | None) -> str:
    """A version's data contract as the registry returns it (cut as schema texts are)."""
    if stored is None or not (stored.metadata or stored.rule_set):
        return ""
    contract = {"metadata": stored.metadata, "ruleSet": stored.rule_set}
    text = json.dumps({k: v for k, v in contract.items() if v}, indent=1, sort_keys=True)
    return text[:SCHEMA_TEXT_SHOWN_MAX]
