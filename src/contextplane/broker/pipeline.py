"""The request pipeline: every request goes through the same ordered stages.

    route → authentication state → authorize → quota → handle → audit

* route: the API key and version must be in the route table (else the connection is
  closed, as Kafka closes it; ApiVersions of an unknown version is answered in v0 form by
  the server before it gets here).
* authentication state: the connection must have completed what its listener requires
  (SASL) before it may call anything but the authentication APIs: the connection's
  state (`protocol/connection_state.py`) takes the request or closes the connection.
* authorize: APIs that need a cluster-level permission are refused here, in the
  response's top-level error (CLUSTER_AUTHORIZATION_FAILED); the resources a request
  names are authorized by its handler, per resource, with `ctx.authorizer` (Kafka's
  AuthHelper shape).
* quota: how long the client is to be throttled (`ctx.throttle_ms`), reported by the
  handler in throttle_time_ms together with its own (storage back-pressure on produce).
* handle: the route's handler, which returns a `Reply`.
* audit: administrative changes are recorded by their handlers through `ctx.audit`
  (only they know each resource's result); every request is logged at DEBUG here.

The security work plugs SASL, ACLs and quotas into these stages without touching handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from contextplane.broker.context import ConnectionInfo, Reply, RequestContext, Services
from contextplane.errors import ProtocolError
from contextplane.logsafe import escape
from contextplane.protocol.build import build
from contextplane.protocol.codec import API_VERSIONS_KEY, Request, RequestHeader, response_schema
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)

Handler = Callable[[RequestContext, Any], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Route:
    api_key: int
    min_version: int
    max_version: int
    handler: Handler


class Pipeline:
    def __init__(self, services: Services, routes: list[Route]) -> None:
        self.services = services
        self.routes = {r.api_key: r for r in routes}
        self._advertised: tuple[tuple[Route, ...], list[dict[str, int]]] | None = None

    def api_versions(self) -> list[dict[str, int]]:
        """What ApiVersions advertises: exactly the routes, nothing more (one list, the
        same object every time while the routes stay the same: its encoding is cached)."""
        routes = tuple(self.routes.values())
        if self._advertised is None or self._advertised[0] != routes:
            listed = [
                {"api_key": r.api_key, "min_version": r.min_version, "max_version": r.max_version}
                for r in sorted(routes, key=lambda r: r.api_key)
            ]
            self._advertised = (routes, listed)
        return self._advertised[1]

    async def dispatch(self, request: Request, connection: ConnectionInfo) -> Reply:
        header = request.header
        route = self.routes.get(header.api_key)
        if route is None or not route.min_version <= header.api_version <= route.max_version:
            raise ProtocolError(
                f"api key {header.api_key} version {header.api_version} is not supported"
            )
        # Authentication state: ProtocolError (close) for a request this state refuses.
        connection.state.process_request(header.api_key)
        ctx = RequestContext(self.services, header, connection)
        ctx.throttle_ms = self.services.quotas.throttle_ms(
            connection.principal, header.client_id, header.api_key
        )
        reply = await route.handler(ctx, request.body)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "api key %d v%d correlation %d client %s from %s by %s",
                header.api_key,
                header.api_version,
                header.correlation_id,
                escape(header.client_id),
                connection.peer,
                connection.principal,
            )
        return reply

    def unsupported_version(self, header: RequestHeader, connection: ConnectionInfo) -> Any:
        """Kafka answers an ApiVersions request of an unknown version with a v0 response
        (UNSUPPORTED_VERSION and its version list) wherever the connection's state takes
        ApiVersions, without moving that state; None for anything else: the connection
        is closed."""
        if header.api_key != API_VERSIONS_KEY or not connection.state.allows(header.api_key):
            return None
        return build(
            response_schema(API_VERSIONS_KEY, 0),
            error_code=ErrorCode.unsupported_version,
            api_keys=self.api_versions(),
        )
