"""`/schemas`: schemas by id, and the schema types served."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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


async def types(request: Request) -> Response:
    return RegistryResponse(list(SCHEMA_TYPES))


async def every_version(request: Request) -> Response:
    found = registry_of(request).every_version(
        deleted=flag(request, "deleted"),
        prefix=request.query_params.get("subjectPrefix", ""),
        latest_only=flag(request, "latestOnly"),
    )
    return RegistryResponse(page(request, [found_body(f) for f in found]))


async def contexts(request: Request) -> Response:
    return RegistryResponse(["."])  # the default context only (RFC 0005, non-goals)


async def by_id(request: Request) -> Response:
    stored = registry_of(request).schema(schema_id(request))
    text = await schema_text(request, stored)
    return RegistryResponse({"schema": text} | type_and_references(stored))


async def raw_by_id(request: Request) -> Response:
    return raw_response(registry_of(request).schema(schema_id(request)).text)


async def versions(request: Request) -> Response:
    pairs = registry_of(request).schema_versions(
        schema_id(request), deleted=flag(request, "deleted")
    )
    items = [{"subject": subject, "version": version} for subject, version in pairs]
    return RegistryResponse(page(request, items))


async def subjects(request: Request) -> Response:
    pairs = registry_of(request).schema_versions(
        schema_id(request), deleted=flag(request, "deleted")
    )
    wanted = request.query_params.get("subject")
    names = sorted({s for s, _ in pairs if wanted is None or s == wanted})
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
