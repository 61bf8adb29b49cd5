"""OpenTelemetry traces, exported over OTLP/HTTP when configured, and nothing when not.

Tracing is on when the broker's `otel.exporter.otlp.endpoint` setting is given or the
standard variables name a collector (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
`OTEL_EXPORTER_OTLP_ENDPOINT`), unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=
none`. Off, the OpenTelemetry packages are never imported and no span object is made:
callers hold `None` and test it. On, one tracer provider serves the process (a broker and
the registry beside it share it), with the SDK's own reading of the other standard
variables: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and
`_ARG`, `OTEL_BSP_*` (the batch processor's queue, 2,048 spans by default: past it spans
are dropped, so a dead collector neither blocks a request nor grows memory) and
`OTEL_EXPORTER_OTLP_TIMEOUT`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from contextplane.clock import elapsed_ns

# The path OTLP/HTTP takes traces on, appended to a base endpoint (the specification's
# rule for OTEL_EXPORTER_OTLP_ENDPOINT; the _TRACES_ variable is used as it is).
TRACES_PATH = "/v1/traces"
ENDPOINT_CHARS_MAX = 2048

# A span attribute's value is cut at this many characters (unless a variable says).
ATTRIBUTE_CHARS_MAX = 1024
_LENGTH_VARIABLES = ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT")
# At exit, queued spans are exported within this, whatever the collector does.
EXIT_EXPORT_MS = 2_000
# The SDK's log lines (dropped spans, export retries and failures): one per message each
# interval, whatever the rate.
SDK_LOG_INTERVAL_S = 60.0
_SDK_LOGGERS = (
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
)

_lock = threading.Lock()
_provider: Any = None  # the process's TracerProvider once tracing started


class TracingConfigError(ValueError):
    """An endpoint that cannot be used (the message names where it came from)."""


def traces_url(setting: str = "", environ: Mapping[str, str] | None = None) -> str | None:
    """The URL spans are posted to, or None: tracing is off."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    if setting:
        return _checked(_joined(setting), "otel.exporter.otlp.endpoint")
    if url := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
        return _checked(url, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if url := env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        return _checked(_joined(url), "OTEL_EXPORTER_OTLP_ENDPOINT")
    return None


def _joined(base: str) -> str:
    return base.rstrip("/") + TRACES_PATH


def _checked(url: str, source: str) -> str:
    if len(url) > ENDPOINT_CHARS_MAX:
        raise TracingConfigError(f"{source}: longer than {ENDPOINT_CHARS_MAX} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Not echoed: a URL may carry credentials.
        raise TracingConfigError(f"{source}: not an http:// or https:// URL with a host")
    return url


def tracer(name: str, url: str | None, service_name: str) -> Any:
    """A tracer of the process's provider, started on first use with spans posted to
    `url`; None when `url` is None and nothing started tracing before."""
    global _provider
    with _lock:
        if _provider is None:
            if url is None:
                return None
            _provider = _start(url, service_name)
        return _provider.get_tracer(name)


def started_tracer(name: str) -> Any:
    """A tracer if tracing already started in this process (a broker's setting), else
    one from the standard variables, else None."""
    return tracer(name, traces_url(), name)


def _start(url: str, service_name: str) -> Any:
    # Imported here only: a process that does not trace never loads OpenTelemetry.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    for name in _SDK_LOGGERS:
        logging.getLogger(name).addFilter(_OncePerInterval(SDK_LOG_INTERVAL_S))
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(
        resource=Resource.create(attributes),
        shutdown_on_exit=False,
        span_limits=_span_limits(SpanLimits),
    )
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=url))
    provider.add_span_processor(processor)
    atexit.register(_shutdown, provider, processor)
    return provider


def _span_limits(span_limits: Any) -> Any:
    """The SDK's limits, with attribute values cut at ATTRIBUTE_CHARS_MAX unless a
    variable sets that (client ids, principals and paths come from clients; the SDK
    keeps values whole by default, and 2,048 queued spans must stay small)."""
    if any(name in os.environ for name in _LENGTH_VARIABLES):
        return span_limits()
    return span_limits(max_span_attribute_length=ATTRIBUTE_CHARS_MAX)


def _shutdown(provider: Any, processor: Any) -> None:
    """At exit: export what is queued, waiting at most EXIT_EXPORT_MS (the SDK's own
    shutdown waits up to 30 s, and for a dead collector's retries)."""
    inner = getattr(processor, "_batch_processor", None)  # the SDK's, with a timeout
    if inner is not None:
        inner.shutdown(timeout_millis=EXIT_EXPORT_MS)
    provider.shutdown()


class _OncePerInterval(logging.Filter):
    """The SDK logs a warning for every span dropped from a full queue and every export
    retry: with a dead collector, a line per request. One line per message and interval
    passes; the next one says how many were left out."""

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)[:200]
        now = elapsed_ns() / 1e9
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval_s:
                self._left_out[key] = self._left_out.get(key, 0) + 1
                return False
            if key not in self._last and len(self._last) >= 256:
                self._last.clear()
            self._last[key] = now
            left_out = self._left_out.pop(key, 0)
        if left_out:
            record.msg = f"{record.msg} ({left_out} more like it left out of the log)"
        return True


@contextlib.contextmanager
def child_span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[None]:
    """A span under the current one, if a traced request is under way in this context;
    else nothing (no import, no object)."""
    if _provider is None:
        yield
        return
    from opentelemetry import trace

    parent = trace.get_current_span()
    if not parent.is_recording():  # background work (uploads, compaction): not traced
        yield
        return
    with _provider.get_tracer("contextplane").start_as_current_span(name, attributes=attributes):
        yield
