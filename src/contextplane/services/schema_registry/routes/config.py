"""`/config`: the compatibility level, global and per subject."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contextplane.services.schema_registry import errors
from contextplane.services.schema_registry.http_io import (
    RegistryResponse,
    flag,
    json_body,
    registry_of,
)


async def get_global(request: Request) -> Response:
    return RegistryResponse({"compatibilityLevel": registry_of(request).compatibility()})


async def put_global(request: Request) -> Response:
    body = await json_body(request)
    level = await registry_of(request).set_compatibility(None, body.get("compatibility"))
    return RegistryResponse({"compatibility": level})


async def get_subject(request: Request) -> Response:
    registry = registry_of(request)
    subject = request.path_params["subject"]
    level = registry.state.subject_compatibility.get(subject)
    if level is None:
        if not flag(request, "defaultToGlobal"):
            raise errors.subject_compatibility_not_found(subject)
        level = registry.compatibility()
    return RegistryResponse({"compatibilityLevel": level})


async def put_subject(request: Request) -> Response:
    body = await json_body(request)
    subject = request.path_params["subject"]
    level = await registry_of(request).set_compatibility(subject, body.get("compatibility"))
    return RegistryResponse({"compatibility": level})


async def delete_subject(request: Request) -> Response:
    previous = await registry_of(request).delete_compatibility(request.path_params["subject"])
    return RegistryResponse({"compatibilityLevel": previous})


ROUTES = [
    Route("/config", get_global, methods=["GET"]),
    Route("/config", put_global, methods=["PUT"]),
    Route("/config/{subject:segment}", get_subject, methods=["GET"]),
    Route("/config/{subject:segment}", put_subject, methods=["PUT"]),
    Route("/config/{subject:segment}", delete_subject, methods=["DELETE"]),
]
