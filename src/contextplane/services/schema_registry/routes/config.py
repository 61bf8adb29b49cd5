"""`/config`: the compatibility level, the compatibility group and the data contract
defaults and overrides, global and per subject."""

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
from contextplane.services.schema_registry.records import ConfigValue


async def get_global(request: Request) -> Response:
    return RegistryResponse(registry_of(request).config_in_scope(None).to_json())


async def put_global(request: Request) -> Response:
    config = await registry_of(request).set_config(None, await json_body(request))
    return RegistryResponse(_update_answer(config))


async def get_subject(request: Request) -> Response:
    registry = registry_of(request)
    subject = request.path_params["subject"]
    if flag(request, "defaultToGlobal"):
        return RegistryResponse(registry.config_in_scope(subject).to_json())
    config = registry.state.subject_configs.get(subject)
    if config is None:
        raise errors.subject_compatibility_not_found(subject)
    return RegistryResponse(config.to_json())


async def put_subject(request: Request) -> Response:
    subject = request.path_params["subject"]
    config = await registry_of(request).set_config(subject, await json_body(request))
    return RegistryResponse(_update_answer(config))


async def delete_subject(request: Request) -> Response:
    previous = await registry_of(request).delete_config(request.path_params["subject"])
    return RegistryResponse(previous.to_json())


def _update_answer(config: ConfigValue) -> dict[str, object]:
    """A `PUT /config` answer: Confluent's ConfigUpdateRequest, the level as
    `compatibility`."""
    body = config.to_json()
    level = body.pop("compatibilityLevel", None)
    return ({"compatibility": level} if level is not None else {}) | body


ROUTES = [
    Route("/config", get_global, methods=["GET"]),
    Route("/config", put_global, methods=["PUT"]),
    Route("/config/{subject:segment}", get_subject, methods=["GET"]),
    Route("/config/{subject:segment}", put_subject, methods=["PUT"]),
    Route("/config/{subject:segment}", delete_subject, methods=["DELETE"]),
]
