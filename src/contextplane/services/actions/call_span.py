"""A tool call as an OpenTelemetry CLIENT span (`call TOOL`), its W3C `traceparent` sent
to the endpoint so the tool's own traces continue it; the outcome on the span: the HTTP
status, or why nothing was answered (`error.type` NotSent or Interrupted).

Imported only when tracing is configured (`tracing.py`)."""

from __future__ import annotations

import urllib.parse
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from contextplane.services.actions import endpoint
from contextplane.services.actions.tools import Tool

_propagator = TraceContextTextMapPropagator()


def traced_call(
    tracer: Any, tool: Tool, arguments: Any, idempotency_key: str
) -> endpoint.Answer | endpoint.NotSent | endpoint.Interrupted:
    url = urllib.parse.urlsplit(tool.endpoint)
    attributes: dict[str, Any] = {
        "contextplane.tool.name": tool.name,
        "http.request.method": "POST",
        "server.address": url.hostname or "",
    }
    if url.port is not None:
        attributes["server.port"] = url.port
    with tracer.start_as_current_span(
        f"call {tool.name}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        context=otel_context.Context(),
    ) as span:
        headers: dict[str, str] = {}
        _propagator.inject(headers)
        outcome = endpoint.call(
            tool.endpoint, arguments, idempotency_key, tool.timeout_ms / 1000, headers
        )
        if isinstance(outcome, endpoint.Answer):
            span.set_attribute("http.response.status_code", outcome.status)
            if outcome.status >= 400:
                span.set_attribute("error.type", str(outcome.status))
                span.set_status(Status(StatusCode.ERROR))
        else:
            span.set_attribute("error.type", type(outcome).__name__)
            span.set_status(Status(StatusCode.ERROR, outcome.reason[:200]))
    return outcome
