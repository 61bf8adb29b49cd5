"""The context service's HTTP API (JSON; errors as RFC 9457 problem details).

GET  /v1/views                          each view's freshness and skipped records
GET  /v1/views/{view}/entities/{id}     an entity with its freshness
POST /v1/views/{view}/get               the same, behind a read fence:
     {"entity": "a1", "min_offsets": {"crm.accounts": {"0": 41}}, "timeout_ms": 2000}
     or as it was once the records below each offset were applied (point in time):
     {"entity": "a1", "as_of": {"crm.accounts": {"0": 42}}}
     or as it was once every record stamped up to a time (ms since the epoch) was:
     {"entity": "a1", "as_of": {"timestamp_ms": 1767225600000}}
     (bounded by the service's own as_of settings; `timeout_ms` is a fence's wait)
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from contextplane.services.ascii_json import AsciiJSONResponse
from contextplane.services.context import errors, metrics
from contextplane.services.context.freshness import TopicPartition
from contextplane.services.context.service import (
    FENCE_WAIT_MS_DEFAULT,
    ContextService,
    EntityAnswer,
)
from contextplane.services.request_body import read_bounded

log = logging.getLogger("contextplane.context")

# A get's body is an entity id and a fence: small (FENCE_PARTITIONS_MAX entries fit).
BODY_BYTES_MAX = 64 * 1024
# A body trickled slower than this holds a connection no longer (the head has its own
# deadline: services/request_deadline.py).
BODY_READ_S = 10.0


class ProblemResponse(AsciiJSONResponse):
    media_type = "application/problem+json"  # it may quote the request's text


def service_of(request: Request) -> ContextService:
    service: ContextService = request.app.state.service
    return service


def answer_json(answer: EntityAnswer) -> dict[str, Any]:
    body = {
        "view": answer.view,
        "entity": answer.entity,
        "found": answer.state is not None,
        "state": answer.state,
        "changed_by": None if answer.changed_by is None else dataclasses.asdict(answer.changed_by),
        "freshness": dataclasses.asdict(answer.freshness),
    }
    if answer.as_of is not None:
        vector: dict[str, dict[str, int]] = {}
        for (topic, partition), offset in sorted(answer.as_of.items()):
            vector.setdefault(topic, {})[str(partition)] = offset
        body["as_of"] = vector
    if answer.as_of_ms is not None:
        body["as_of_ms"] = answer.as_of_ms
    if answer.changelog is not None:
        body["changelog"] = dataclasses.asdict(answer.changelog)
    return body


async def _views(request: Request) -> Response:
    status = service_of(request).status()
    for view in status["views"].values():
        view["freshness"] = dataclasses.asdict(view["freshness"])
    return JSONResponse(status)


async def _metrics(request: Request) -> Response:
    text = metrics.render(service_of(request).status())
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


async def _entity(request: Request) -> Response:
    answer = await service_of(request).get(
        request.path_params["view"], request.path_params["entity"]
    )
    return JSONResponse(answer_json(answer))


async def _fenced_get(request: Request) -> Response:
    body = await json_body(request)
    entity = body.get("entity")
    if not isinstance(entity, str) or not entity:
        raise errors.bad_request("'entity' must be a non-empty string")
    if not entity.isascii():
        try:  # JSON's "\ud800" is a lone surrogate: no key, row or partition has it
            entity.encode()
        except UnicodeEncodeError:
            raise errors.bad_request(f"'entity' {entity!r} has no UTF-8 form") from None
    timeout_ms = body.get("timeout_ms", FENCE_WAIT_MS_DEFAULT)
    if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool):
        raise errors.bad_request("'timeout_ms' must be an integer")
    fence = offset_vector(body.get("min_offsets"))
    as_of, as_of_ms = point_in_time(body.get("as_of"))
    answer = await service_of(request).get(
        request.path_params["view"], entity, fence, timeout_ms, as_of, as_of_ms
    )
    return JSONResponse(answer_json(answer))


def point_in_time(raw: Any) -> tuple[dict[TopicPartition, int] | None, int | None]:
    """`as_of` as an offset vector or as `{"timestamp_ms": T}` (an integer; the range is
    the service's to check). A topic named `timestamp_ms` maps to an object, so
    `{"timestamp_ms": {partition: offset}}` is still a vector."""
    if raw is None:
        return None, None
    if (
        isinstance(raw, dict)
        and "timestamp_ms" in raw
        and not isinstance(raw["timestamp_ms"], dict)
    ):
        timestamp_ms = raw["timestamp_ms"]
        if len(raw) > 1:
            raise errors.bad_request(
                "'as_of' is {\"timestamp_ms\": T} or an offset vector, not both"
            )
        if not isinstance(timestamp_ms, int) or isinstance(timestamp_ms, bool):
            raise errors.bad_request("'as_of.timestamp_ms' must be an integer")
        return None, timestamp_ms
    return offset_vector(raw, "as_of"), None


def offset_vector(raw: Any, name: str = "min_offsets") -> dict[TopicPartition, int]:
    """`{topic: {partition: offset}}` (partition as a JSON key: a string of digits)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise errors.bad_request(f"'{name}' must be an object {{topic: {{partition: offset}}}}")
    vector: dict[TopicPartition, int] = {}
    for topic, partitions in raw.items():
        if not isinstance(partitions, dict):
            raise errors.bad_request(f"'{name}.{topic}' must be an object {{partition: offset}}")
        for partition, offset in partitions.items():
            # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
            if not (
                isinstance(partition, str)
                and partition.isascii()
                and partition.isdigit()
                and len(partition) < 10
            ):
                raise errors.bad_request(f"'{name}.{topic}': {partition!r} is not a partition")
            if not isinstance(offset, int) or isinstance(offset, bool):
                raise errors.bad_request(f"'{name}.{topic}.{partition}' must be an integer")
            vector[(topic, int(partition))] = offset
    return vector


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object, read up to BODY_BYTES_MAX within BODY_READ_S."""
    body = await read_bounded(
        request, BODY_BYTES_MAX, BODY_READ_S, errors.body_too_large, errors.body_timeout
    )
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise errors.bad_request(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise errors.bad_request("the body is not a JSON object")
    return document


async def _context_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.ContextError)
    return ProblemResponse(exc.body(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    body = {"type": "about:blank", "title": exc.detail, "status": exc.status_code}
    return ProblemResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("request %s %s failed", request.method, request.url.path)
    body = {"type": "about:blank", "title": "Internal Server Error", "status": 500}
    return ProblemResponse(body, status_code=500)


def build_app(service: ContextService) -> Starlette:
    app = Starlette(
        routes=[
            Route("/v1/views", _views, methods=["GET"]),
            Route("/metrics", _metrics, methods=["GET"]),
            Route("/v1/views/{view}/entities/{entity:path}", _entity, methods=["GET"]),
            Route("/v1/views/{view}/get", _fenced_get, methods=["POST"]),
        ],
        exception_handlers={
            errors.ContextError: _context_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.service = service
    return app
