"""One OpenTelemetry server span per Produce and Fetch request, with the messaging
semantic conventions (`messaging.system=kafka`, operation, destination, partition,
message count, client id), the principal, and the first Kafka error of the response as
`error.type` with an ERROR status.

Only Produce and Fetch are traced: they carry the data, and their latency is what a
trace explains (a WAL sync, an acknowledgement wait, object reads). The rest (Metadata,
heartbeats, offset commits, ApiVersions) are frequent, small and timed per API by
/metrics already; a span each would cost more than the request and bury the traces
that matter.

Made only when tracing is configured (`tracing.py`): with it off, `Services.spans` is
None and nothing here is imported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from contextplane.broker.context import Reply, RequestContext
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.trace_context import first_traceparent

PRODUCE_KEY = 0
FETCH_KEY = 1
# API key -> (messaging.operation.name, messaging.operation.type)
_OPERATIONS = {PRODUCE_KEY: ("produce", "send"), FETCH_KEY: ("fetch", "receive")}
# Links a Produce span keeps to the producers' traces (one per batch that names one).
LINKS_MAX = 32
_propagator = TraceContextTextMapPropagator()


class RequestSpans:
    """Starts, describes and ends the spans of traced requests."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    def traces(self, api_key: int) -> bool:
        return api_key in _OPERATIONS

    async def handle(
        self,
        ctx: RequestContext,
        handler: Callable[[RequestContext, Any], Awaitable[Reply]],
        body: Any,
    ) -> Reply:
        """Run the handler inside the request's span; the span ends with the response
        (after the acknowledgement wait or long poll of a later reply)."""
        operation, kind = _OPERATIONS[ctx.header.api_key]
        header = ctx.header
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.name": operation,
            "messaging.operation.type": kind,
            "messaging.client.id": header.client_id or "",
            "enduser.id": str(ctx.principal),
            "client.address": ctx.client_host,
            "contextplane.kafka.api_version": header.api_version,
        }
        span = self._tracer.start_span(
            operation,
            kind=SpanKind.SERVER,
            attributes=attributes,
            context=otel_context.Context(),  # a request is a root: Kafka carries no context
        )
        if not span.is_recording():  # sampled out (OTEL_TRACES_SAMPLER): nothing more
            return await handler(ctx, body)
        ctx.span = span
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            reply = await handler(ctx, body)
        except BaseException as exc:
            _failed(span, exc)
            span.end()
            raise
        finally:
            otel_context.detach(token)
        if reply.later is None:
            span.end()
            return reply
        return Reply(later=EndsSpan(span, reply.later))

    def child(self, parent: Any, name: str, attributes: dict[str, Any] | None = None) -> Any:
        """A span under `parent`, started now; the caller ends it."""
        return self._tracer.start_span(
            name, context=trace.set_span_in_context(parent), attributes=attributes
        )


class EndsSpan:
    """A traced reply's later part: awaited inside its span, which ends with it (or when
    the connection closes before it is awaited)."""

    __slots__ = ("_awaitable", "_span")

    def __init__(self, span: Any, awaitable: Awaitable[Any]) -> None:
        self._span = span
        self._awaitable = awaitable

    def __await__(self) -> Generator[Any, None, Any]:
        return self._finish().__await__()

    async def _finish(self) -> Any:
        token = otel_context.attach(trace.set_span_in_context(self._span))
        try:
            return await self._awaitable
        except BaseException as exc:
            _failed(self._span, exc)
            raise
        finally:
            otel_context.detach(token)
            self._span.end()

    def close(self) -> None:
        close = getattr(self._awaitable, "close", None)
        if close is not None:
            close()
        self._span.end()


def _failed(span: Any, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def describe(
    span: Any, operation: str, partitions: list[tuple[str | None, int, int]], **extra: Any
) -> None:
    """Name the destination and the first error: `partitions` is (topic, partition,
    error code) of every partition of the request."""
    topics = {topic for topic, _, _ in partitions}
    if len(topics) == 1:
        topic = next(iter(topics))
        if topic:
            span.update_name(f"{operation} {topic}")
            span.set_attribute("messaging.destination.name", topic)
    if len(partitions) == 1:
        span.set_attribute("messaging.destination.partition.id", str(partitions[0][1]))
    span.set_attribute("contextplane.partition_count", len(partitions))
    for name, value in extra.items():
        span.set_attribute(name, value)
    error = next((code for _, _, code in partitions if code != ErrorCode.none), None)
    if error is not None:
        name = ErrorCode(error).name.upper()
        span.set_attribute("error.type", name)
        span.set_attribute("contextplane.kafka.error_code", int(error))
        span.set_status(Status(StatusCode.ERROR, name))


def link_producers(span: Any, batches: list[bytes | memoryview]) -> None:
    """A link to each producing application's span named by a batch's first record
    (`traceparent`, uncompressed batches), at most LINKS_MAX, each trace once."""
    seen: set[bytes] = set()
    for batch in batches:
        value = first_traceparent(batch)
        if value is None or value in seen:
            continue
        seen.add(value)
        carrier = {"traceparent": value.decode("latin-1")}
        linked = trace.get_current_span(_propagator.extract(carrier)).get_span_context()
        if linked.is_valid:
            span.add_link(linked)
        if len(seen) >= LINKS_MAX:
            return


def describe_produce(span: Any, topics: list[dict[str, Any]], records: int) -> None:
    describe(
        span,
        "produce",
        [
            (t["name"], p["index"], p["error_code"])
            for t in topics
            for p in t["partition_responses"]
        ],
        **{"messaging.batch.message_count": records},
    )


def describe_fetch(span: Any, topics: list[dict[str, Any]], record_bytes: int) -> None:
    describe(
        span,
        "fetch",
        [
            (t["topic"], p["partition_index"], p["error_code"])
            for t in topics
            for p in t["partitions"]
        ],
        **{"contextplane.fetch.record_bytes": record_bytes},
    )
