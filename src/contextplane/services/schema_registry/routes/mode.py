"""`/mode`: READWRITE or READONLY, global and per subject."""

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
    return RegistryResponse({"mode": registry_of(request).mode()})


async def put_global(request: Request) -> Response:
    body = await json_body(request)
    return RegistryResponse({"mode": await registry_of(request).set_mode(None, body.get("mode"))})


async def get_subject(request: Request) -> Response:
    registry = registry_of(request)
    subject = request.path_params["subject"]
    mode = registry.state.subject_modes.get(subject)
    if mode is None:
        if not flag(request, "defaultToGlobal"):
            raise errors.subject_mode_not_found(subject)
        mode = registry.mode()
    return RegistryResponse({"mode": mode})


async def put_subject(request: Request) -> Response:
    body = await json_body(request)
    subject = request.path_params["subject"]
    return RegistryResponse(
        {"mode": await registry_of(request).set_mode(subject, body.get("mode"))}
    )


async def delete_subject(request: Request) -> Response:
    previous = await registry_of(request).delete_mode(request.path_params["subject"])
    return RegistryResponse({"mode": previous})


ROUTES = [
    Route("/mode", get_global, methods=["GET"]),
    Route("/mode", put_global, methods=["PUT"]),
    Route("/mode/{subject:segment}", get_subject, methods=["GET"]),
    Route("/mode/{subject:segment}", put_subject, methods=["PUT"]),
    Route("/mode/{subject:segment}", delete_subject, methods=["DELETE"]),
]
