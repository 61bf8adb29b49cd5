"""The rows of the settings table for OpenTelemetry traces (`tracing.py`; `settings_table.
SETTINGS` ends with them). Kafka has no such setting; the name is the standard variable's
(`OTEL_EXPORTER_OTLP_ENDPOINT`), lower-cased with dots, and that variable works too."""

from __future__ import annotations

from typing import Any

TELEMETRY_SETTINGS: tuple[dict[str, Any], ...] = (
    dict(
        name="otel.exporter.otlp.endpoint",
        attr="otel_exporter_otlp_endpoint",
        unit="",
        meaning="an OTLP/HTTP collector's base URL (`http://host:4318`; spans are posted to"
        " its `/v1/traces`): one span per Produce and Fetch request, exported in batches"
        " from a bounded queue. Empty: the `OTEL_EXPORTER_OTLP_ENDPOINT` and"
        " `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables decide, and without them nothing"
        " is traced. The other `OTEL_*` variables (service name, sampler) apply",
        default_text="empty (off)",
    ),
)
