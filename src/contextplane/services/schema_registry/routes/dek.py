"""`/dek-registry/v1/keks`: the DEK registry's KEKs and DEKs (dek_registry.py), in
Confluent's routes, query parameters and bodies."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Registers the `segment` convertor the routes' paths use (this module may load first).
from contextplane.services.schema_registry import path_segments  # noqa: F401
from contextplane.services.schema_registry.access import checked_on_subject, readable
from contextplane.services.schema_registry.dek_registry import DekRegistry, check_algorithm
from contextplane.services.schema_registry.http_io import RegistryResponse, flag, json_body
from contextplane.services.schema_registry.registry import parse_version

KEKS = "/dek-registry/v1/keks"
KEK = KEKS + "/{name:segment}"
DEKS = KEK + "/deks"
DEK = DEKS + "/{subject:segment}"
VERSIONS = DEK + "/versions"
VERSION = VERSIONS + "/{version:segment}"


def keys_of(request: Request) -> DekRegistry:
    keys: DekRegistry = request.app.state.keys
    return keys


def _name(request: Request) -> str:
    return str(request.path_params["name"])


def _algorithm(request: Request) -> str:
    return check_algorithm(request.query_params.get("algorithm"))


async def list_keks(request: Request) -> Response:
    return RegistryResponse(keys_of(request).kek_names(deleted=flag(request, "deleted")))


async def get_kek(request: Request) -> Response:
    kek = keys_of(request).kek(_name(request), deleted=flag(request, "deleted"))
    return RegistryResponse(kek.to_json())


async def create_kek(request: Request) -> Response:
    body = await json_body(request)
    return RegistryResponse((await keys_of(request).create_kek(body)).to_json())


async def update_kek(request: Request) -> Response:
    body = await json_body(request)
    return RegistryResponse((await keys_of(request).update_kek(_name(request), body)).to_json())


async def delete_kek(request: Request) -> Response:
    await keys_of(request).delete_kek(_name(request), permanent=flag(request, "permanent"))
    return Response(status_code=204)


async def undelete_kek(request: Request) -> Response:
    await keys_of(request).undelete_kek(_name(request))
    return Response(status_code=204)


async def list_dek_subjects(request: Request) -> Response:
    subjects = keys_of(request).dek_subjects(_name(request), deleted=flag(request, "deleted"))
    return RegistryResponse(readable(request, subjects))


async def create_dek_of_body(request: Request) -> Response:
    """The older route, the subject in the body (clients fall back to it on 405)."""
    body = await json_body(request)
    subject = body.get("subject")

    async def create(request: Request) -> Response:
        return RegistryResponse((await keys_of(request).create_dek(_name(request), body)).to_json())

    if not isinstance(subject, str):
        return await create(request)  # refused for its subject, before any write
    return await checked_on_subject(request, "WRITE", subject, "RegisterDek", create)


async def create_dek(request: Request) -> Response:
    body = await json_body(request) | {"subject": request.path_params["subject"]}
    return RegistryResponse((await keys_of(request).create_dek(_name(request), body)).to_json())


async def get_dek(request: Request) -> Response:
    return await _dek_answer(request, None)


async def get_dek_version(request: Request) -> Response:
    return await _dek_answer(request, parse_version(request.path_params["version"]))


async def _dek_answer(request: Request, version: int | None) -> Response:
    dek = keys_of(request).dek(
        _name(request),
        request.path_params["subject"],
        version,
        _algorithm(request),
        deleted=flag(request, "deleted"),
    )
    return RegistryResponse(dek.to_json())


async def list_dek_versions(request: Request) -> Response:
    versions = keys_of(request).dek_versions(
        _name(request),
        request.path_params["subject"],
        _algorithm(request),
        deleted=flag(request, "deleted"),
    )
    return RegistryResponse(versions)


async def delete_dek(request: Request) -> Response:
    return await _delete(request, None)


async def delete_dek_version(request: Request) -> Response:
    return await _delete(request, parse_version(request.path_params["version"]))


async def _delete(request: Request, version: int | None) -> Response:
    await keys_of(request).delete_deks(
        _name(request),
        request.path_params["subject"],
        _algorithm(request),
        version,
        permanent=flag(request, "permanent"),
    )
    return Response(status_code=204)


async def undelete_dek(request: Request) -> Response:
    return await _undelete(request, None)


async def undelete_dek_version(request: Request) -> Response:
    return await _undelete(request, parse_version(request.path_params["version"]))


async def _undelete(request: Request, version: int | None) -> Response:
    await keys_of(request).undelete_deks(
        _name(request), request.path_params["subject"], _algorithm(request), version
    )
    return Response(status_code=204)


ROUTES = [
    Route(KEKS, list_keks, methods=["GET"]),
    Route(KEKS, create_kek, methods=["POST"]),
    Route(KEK, get_kek, methods=["GET"]),
    Route(KEK, update_kek, methods=["PUT"]),
    Route(KEK, delete_kek, methods=["DELETE"]),
    Route(KEK + "/undelete", undelete_kek, methods=["POST"]),
    Route(DEKS, list_dek_subjects, methods=["GET"]),
    Route(DEKS, create_dek_of_body, methods=["POST"]),
    Route(DEK, get_dek, methods=["GET"]),
    Route(DEK, create_dek, methods=["POST"]),
    Route(DEK, delete_dek, methods=["DELETE"]),
    Route(DEK + "/undelete", undelete_dek, methods=["POST"]),
    Route(VERSIONS, list_dek_versions, methods=["GET"]),
    Route(VERSION, get_dek_version, methods=["GET"]),
    Route(VERSION, delete_dek_version, methods=["DELETE"]),
    Route(VERSION + "/undelete", undelete_dek_version, methods=["POST"]),
]
