"""API key → handler table. ApiVersions is derived from this table, so the broker
advertises exactly the versions it has a handler for, and nothing more."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contextplane.errors import ProtocolError
from contextplane.protocol.build import build
from contextplane.protocol.codec import (
    API_VERSIONS_KEY,
    Request,
    RequestHeader,
    encode_response,
    response_schema,
)
from contextplane.protocol.error_codes import ErrorCode

if TYPE_CHECKING:
    from contextplane.broker.app import Broker


@dataclass(slots=True)
class RequestContext:
    broker: Broker
    header: RequestHeader
    peer: str

    @property
    def api_version(self) -> int:
        return self.header.api_version

    def response(self, values: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        schema = response_schema(self.header.api_key, self.header.api_version)
        return build(schema, values, **kwargs)

    def now_ms(self) -> int:
        return int(time.time() * 1000)


Handler = Callable[[RequestContext, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Route:
    api_key: int
    min_version: int
    max_version: int
    handler: Handler


class Router:
    def __init__(self, broker: Broker, routes: list[Route]) -> None:
        self._broker = broker
        self.routes = {r.api_key: r for r in routes}

    async def dispatch(self, request: Request, peer: str) -> Any:
        header = request.header
        route = self.routes.get(header.api_key)
        if route is None or not route.min_version <= header.api_version <= route.max_version:
            raise ProtocolError(
                f"api key {header.api_key} version {header.api_version} is not supported"
            )
        return await route.handler(RequestContext(self._broker, header, peer), request.body)

    def api_versions(self) -> list[dict[str, int]]:
        return [
            {"api_key": r.api_key, "min_version": r.min_version, "max_version": r.max_version}
            for r in sorted(self.routes.values(), key=lambda r: r.api_key)
        ]

    def unsupported_version(self, header: RequestHeader) -> bytes | None:
        """Kafka answers an ApiVersions request of an unknown version in v0 format with
        UNSUPPORTED_VERSION and its version list; anything else closes the connection."""
        if header.api_key != API_VERSIONS_KEY:
            return None
        body = build(
            response_schema(API_VERSIONS_KEY, 0),
            error_code=ErrorCode.unsupported_version,
            api_keys=self.api_versions(),
        )
        return encode_response(API_VERSIONS_KEY, 0, header.correlation_id, body)
