"""HTTP details shared by the routes: Confluent's content type, a bounded JSON body, query
parameters read as Confluent's (Jersey) reads them."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from contextplane.services.request_body import read_bounded
from contextplane.services.schema_registry import errors
from contextplane.services.schema_registry.references import Reference, references_field

if TYPE_CHECKING:
    from contextplane.services.schema_registry.registry import SchemaRegistry
    from contextplane.services.schema_registry.state import StoredSchema

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
# A request body: a schema (SCHEMA_BYTES_MAX) escaped into JSON, with room to spare.
BODY_BYTES_MAX = 1024 * 1024
# A body trickled slower than this holds a connection and a task no longer (the request
# head has its own deadline: request_deadline.py).
BODY_READ_S = 30.0


def registry_of(request: Request) -> SchemaRegistry:
    registry: SchemaRegistry = request.app.state.registry
    return registry


class RegistryResponse(JSONResponse):
    media_type = CONTENT_TYPE


def raw_response(text: str) -> Response:
    """A schema's own text as the body (the `/schema` routes)."""
    return Response(text, media_type=CONTENT_TYPE)


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object, read up to BODY_BYTES_MAX within BODY_READ_S: 413 past
    the size, 408 past the time, 400 for anything that is not a JSON object."""
    body = await read_bounded(
        request, BODY_BYTES_MAX, BODY_READ_S, errors.body_too_large, errors.request_timeout
    )
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise errors.bad_request(f"Unexpected character in the request body: {exc}") from None
    if not isinstance(document, dict):
        raise errors.bad_request("The request body is not a JSON object")
    return document


def schema_fields(body: dict[str, Any]) -> tuple[str, str, tuple[Reference, ...]]:
    """(schema text, schema type, references) of a register, lookup or compatibility
    body."""
    text = body.get("schema")
    if text is None or text == "":
        raise errors.invalid_schema("Empty schema")
    if not isinstance(text, str):
        raise errors.unprocessable("'schema' must be a string")
    schema_type = body.get("schemaType") or "AVRO"
    if not isinstance(schema_type, str):
        raise errors.unprocessable("'schemaType' must be a string")
    return text, schema_type.upper(), references_field(body.get("references"))


async def schema_text(request: Request, stored: StoredSchema) -> str:
    """The schema's text in the `format` asked for: `serialized` is a Protobuf schema's
    base64 FileDescriptorProto (built on a worker thread once, then kept); any other
    format, or another type, is the stored text."""
    if request.query_params.get("format") == "serialized" and stored.schema_type == "PROTOBUF":
        return await asyncio.to_thread(lambda: stored.serialized)
    return stored.text


def flag(request: Request, name: str) -> bool:
    """A boolean query parameter: `true` in any case is true (clients send `True`)."""
    return request.query_params.get(name, "false").lower() == "true"


def deleted_only_flag(request: Request) -> bool:
    """Confluent's `deletedOnly`; confluent-kafka's Python client sends `deleted_only`."""
    return flag(request, "deletedOnly") or flag(request, "deleted_only")


def schema_id(request: Request) -> int:
    raw = request.path_params["schema_id"]
    try:
        return int(raw)
    except ValueError:
        raise errors.schema_not_found() from None


def page(request: Request, items: list[Any]) -> list[Any]:
    """`offset` and `limit` (negative: no limit), as Confluent pages its lists."""
    try:
        offset = max(0, int(request.query_params.get("offset", "0")))
        limit = int(request.query_params.get("limit", "-1"))
    except ValueError:
        raise errors.unprocessable("offset and limit must be integers") from None
    return items[offset:] if limit < 0 else items[offset : offset + limit]
