"""A server span per HTTP request of a service (the schema registry, the context service,
the tool executor), with OpenTelemetry's HTTP semantic conventions, continuing the
caller's trace when the request carries a W3C `traceparent`.

An ASGI wrapper around the service's app, put there by `http_server.serve` only when
tracing is configured (`tracing.py`): otherwise this module is not imported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

# Scrapes (the context service's /metrics) are not calls worth a span each.
UNTRACED_PATHS = frozenset({"/metrics"})
# An attribute holds at most this much of a path (a subject name is part of the path).
PATH_CHARS_MAX = 1024
# Only these request headers are read for the caller's context, each bounded.
_TRACE_HEADERS = (b"traceparent", b"tracestate")
_TRACE_HEADER_BYTES_MAX = 512
_propagator = TraceContextTextMapPropagator()


class TracedApp:
    """`app` with a SERVER span around each HTTP request."""

    def __init__(self, app: ASGIApp, tracer: Any) -> None:
        self._app = app
        self._tracer = tracer

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self._app(scope, receive, send)
            return
        method = scope["method"]
        client = scope.get("client")
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope["path"][:PATH_CHARS_MAX],
            "url.scheme": scope.get("scheme", "http"),
        }
        if client:
            attributes["client.address"] = client[0]
        span = self._tracer.start_span(
            method, kind=SpanKind.SERVER, attributes=attributes, context=_caller(scope)
        )
        status = 0

        async def send_traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self._app(scope, receive, send_traced)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            otel_context.detach(token)
            _finish(span, scope, method, status)


def _caller(scope: Scope) -> Any:
    """The caller's context from its W3C trace headers, or a new root."""
    carrier: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        if name in _TRACE_HEADERS and len(value) <= _TRACE_HEADER_BYTES_MAX:
            carrier[name.decode()] = value.decode("latin-1")
    if not carrier:
        return otel_context.Context()
    return _propagator.extract(carrier, context=otel_context.Context())


def _finish(span: Any, scope: Scope, method: str, status: int) -> None:
    route = getattr(scope.get("route"), "path", None)  # Starlette's matched route
    if isinstance(route, str):
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    if status:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", str(status))
    span.end()
