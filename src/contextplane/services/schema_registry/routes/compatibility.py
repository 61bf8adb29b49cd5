"""`/compatibility`: would a schema be accepted after a subject's version(s)?"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contextplane.services.schema_registry.contracts import contract_of
from contextplane.services.schema_registry.http_io import (
    RegistryResponse,
    flag,
    json_body,
    registry_of,
    schema_fields,
)


async def _answer(request: Request, version: str | None) -> Response:
    request_body = await json_body(request)
    text, schema_type, references = schema_fields(request_body)
    registry = registry_of(request)
    subject = request.path_params["subject"]
    registry.versions(subject)  # 40401 for a subject with no live version
    found = await registry.compatibility_problems(
        subject, version, text, schema_type, references, contract_of(request_body)
    )
    body: dict[str, object] = {"is_compatible": not found}
    if flag(request, "verbose"):
        body["messages"] = found
    return RegistryResponse(body)


async def against_version(request: Request) -> Response:
    return await _answer(request, request.path_params["version"])


async def against_versions(request: Request) -> Response:
    return await _answer(request, None)


ROUTES = [
    Route(
        "/compatibility/subjects/{subject:segment}/versions/{version:segment}",
        against_version,
        methods=["POST"],
    ),
    Route("/compatibility/subjects/{subject:segment}/versions", against_versions, methods=["POST"]),
]
