"""`/subjects`: subjects, their versions, lookup, registration and deletes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contextplane.services.schema_registry.access import readable
from contextplane.services.schema_registry.contracts import contract_of
from contextplane.services.schema_registry.http_io import (
    RegistryResponse,
    deleted_only_flag,
    flag,
    json_body,
    page,
    raw_response,
    registry_of,
    schema_fields,
    schema_text,
)
from contextplane.services.schema_registry.registry import Found
from contextplane.services.schema_registry.state import StoredSchema


def found_body(found: Found, text: str | None = None) -> dict[str, object]:
    """A version as Confluent answers it; `text` the schema in the format asked for."""
    body: dict[str, object] = {
        "subject": found.subject,
        "version": found.version.version,
        "id": found.schema.schema_id,
        "schema": found.schema.text if text is None else text,
    }
    return body | type_and_references(found.schema)


async def found_answer(request: Request, found: Found) -> Response:
    return RegistryResponse(found_body(found, await schema_text(request, found.schema)))


def type_and_references(stored: StoredSchema) -> dict[str, object]:
    """`schemaType` unless AVRO, `references`, `metadata` and `ruleSet` unless none, as
    Confluent leaves them out."""
    body: dict[str, object] = {}
    if stored.schema_type != "AVRO":
        body["schemaType"] = stored.schema_type
    if stored.references:
        body["references"] = [reference.to_json() for reference in stored.references]
    if stored.metadata is not None:
        body["metadata"] = stored.metadata
    if stored.rule_set is not None:
        body["ruleSet"] = stored.rule_set
    return body


async def list_subjects(request: Request) -> Response:
    subjects = registry_of(request).subjects(
        deleted=flag(request, "deleted"),
        deleted_only=deleted_only_flag(request),
        prefix=request.query_params.get("subjectPrefix", ""),
    )
    return RegistryResponse(page(request, readable(request, subjects)))


async def lookup(request: Request) -> Response:
    body = await json_body(request)
    text, schema_type, references = schema_fields(body)
    subject = request.path_params["subject"]
    found = await registry_of(request).lookup(
        subject,
        text,
        schema_type,
        references,
        contract_of(body),
        deleted=flag(request, "deleted"),
    )
    return await found_answer(request, found)


async def latest_with_metadata(request: Request) -> Response:
    """The newest version whose metadata properties include the `key`/`value` pairs
    (paired in order; extra keys or values are ignored, as Confluent pairs them)."""
    keys = request.query_params.getlist("key")
    values = request.query_params.getlist("value")
    found = registry_of(request).latest_with_metadata(
        request.path_params["subject"],
        dict(zip(keys, values, strict=False)),
        deleted=flag(request, "deleted"),
    )
    return await found_answer(request, found)


async def delete_subject(request: Request) -> Response:
    subject = request.path_params["subject"]
    deleted = await registry_of(request).delete_subject(
        subject, permanent=flag(request, "permanent")
    )
    return RegistryResponse(deleted)


async def list_versions(request: Request) -> Response:
    subject = request.path_params["subject"]
    versions = registry_of(request).versions(
        subject, deleted=flag(request, "deleted"), deleted_only=deleted_only_flag(request)
    )
    return RegistryResponse(page(request, versions))


async def register(request: Request) -> Response:
    body = await json_body(request)
    text, schema_type, references = schema_fields(body)
    subject = request.path_params["subject"]
    schema_id = await registry_of(request).register(
        subject, text, schema_type, references, contract_of(body)
    )
    return RegistryResponse({"id": schema_id})


async def get_version(request: Request) -> Response:
    found = registry_of(request).version(
        request.path_params["subject"],
        request.path_params["version"],
        deleted=flag(request, "deleted"),
    )
    return await found_answer(request, found)


async def get_version_schema(request: Request) -> Response:
    found = registry_of(request).version(
        request.path_params["subject"],
        request.path_params["version"],
        deleted=flag(request, "deleted"),
    )
    return raw_response(found.schema.text)


async def referenced_by(request: Request) -> Response:
    """Ids of the schemas that refer to this version."""
    ids = registry_of(request).referenced_by(
        request.path_params["subject"],
        request.path_params["version"],
        deleted=flag(request, "deleted"),
    )
    return RegistryResponse(page(request, ids))


async def delete_version(request: Request) -> Response:
    version = await registry_of(request).delete_version(
        request.path_params["subject"],
        request.path_params["version"],
        permanent=flag(request, "permanent"),
    )
    return RegistryResponse(version)


ROUTES = [
    Route("/subjects", list_subjects, methods=["GET"]),
    Route("/subjects/{subject:segment}", lookup, methods=["POST"]),
    Route("/subjects/{subject:segment}", delete_subject, methods=["DELETE"]),
    Route("/subjects/{subject:segment}/metadata", latest_with_metadata, methods=["GET"]),
    Route("/subjects/{subject:segment}/versions", list_versions, methods=["GET"]),
    Route("/subjects/{subject:segment}/versions", register, methods=["POST"]),
    Route("/subjects/{subject:segment}/versions/{version:segment}", get_version, methods=["GET"]),
    Route(
        "/subjects/{subject:segment}/versions/{version:segment}", delete_version, methods=["DELETE"]
    ),
    Route(
        "/subjects/{subject:segment}/versions/{version:segment}/schema",
        get_version_schema,
        methods=["GET"],
    ),
    Route(
        "/subjects/{subject:segment}/versions/{version:segment}/referencedby",
        referenced_by,
        methods=["GET"],
    ),
]
