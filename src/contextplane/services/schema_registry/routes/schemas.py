"""`/schemas`: schemas by id, and the schema types served."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contextplane.services.schema_registry.access import readable, require_any_readable
from contextplane.services.schema_registry.formats import SCHEMA_TYPES
from contextplane.services.schema_registry.http_io import (
    RegistryResponse,
    flag,
    page,
    raw_response,
    registry_of,
    schema_id,
    schema_text,
)
from contextplane.services.schema_registry.routes.subjects import found_body, type_and_references
from contextplane.services.schema_registry.state import StoredSchema


async def types(request: Request) -> Response:
    return RegistryResponse(list(SCHEMA_TYPES))


async def every_version(request: Request) -> Response:
    found = registry_of(request).every_version(
        deleted=flag(request, "deleted"),
        prefix=request.query_params.get("subjectPrefix", ""),
        latest_only=flag(request, "latestOnly"),
    )
    allowed = set(readable(request, {f.subject for f in found}))
    return RegistryResponse(page(request, [found_body(f) for f in found if f.subject in allowed]))


async def contexts(request: Request) -> Response:
    return RegistryResponse(["."])  # the default context only (RFC 0005, non-goals)


def _readable_schema(request: Request) -> StoredSchema:
    """The schema the path names, once the caller may read one subject holding it."""
    registry = registry_of(request)
    wanted = schema_id(request)
    stored = registry.schema(wanted)
    held = {subject for subject, _ in registry.schema_versions(wanted, deleted=True)}
    require_any_readable(request, wanted, held)
    return stored


async def by_id(request: Request) -> Response:
    stored = _readable_schema(request)
    text = await schema_text(request, stored)
    return RegistryResponse({"schema": text} | type_and_references(stored))


async def raw_by_id(request: Request) -> Response:
    return raw_response(_readable_schema(request).text)


async def versions(request: Request) -> Response:
    pairs = registry_of(request).schema_versions(
        schema_id(request), deleted=flag(request, "deleted")
    )
    allowed = set(readable(request, {subject for subject, _ in pairs}))
    items = [{"subject": s, "version": v} for s, v in pairs if s in allowed]
    return RegistryResponse(page(request, items))


async def subjects(request: Request) -> Response:
    pairs = registry_of(request).schema_versions(
        schema_id(request), deleted=flag(request, "deleted")
    )
    wanted = request.query_params.get("subject")
    names = sorted(readable(request, {s for s, _ in pairs if wanted is None or s == wanted}))
    return RegistryResponse(page(request, names))


ROUTES = [
    Route("/contexts", contexts, methods=["GET"]),
    Route("/schemas", every_version, methods=["GET"]),
    Route("/schemas/types", types, methods=["GET"]),
    Route("/schemas/ids/{schema_id:segment}", by_id, methods=["GET"]),
    Route("/schemas/ids/{schema_id:segment}/schema", raw_by_id, methods=["GET"]),
    Route("/schemas/ids/{schema_id:segment}/versions", versions, methods=["GET"]),
    Route("/schemas/ids/{schema_id:segment}/subjects", subjects, methods=["GET"]),
]
