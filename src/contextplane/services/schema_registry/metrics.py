"""The registry's own `GET /metrics` on its own port, in Prometheus's text format as the
broker's and the context service's are (`prometheus_text.py`): the subjects and schemas
it holds, the schemas it refused and every error it answered, counted where each error
is answered (`app.py`), and the process's own metrics. With authentication on, any
authenticated caller may read it (no route ACL: counts, no names)."""

from __future__ import annotations

import asyncio
from collections import Counter

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.requests import Request
from starlette.responses import Response

from contextplane.prometheus_text import exposition
from contextplane.services.schema_registry.registry import SchemaRegistry

# Registrations refused for the schema itself (Confluent's error codes): the schema
# rejections an operator alerts on; any other error is counted by its code only.
REJECTIONS = {409: "incompatible", 42201: "invalid_schema"}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RegistryCounts:
    """Errors answered, by Confluent error code (a few dozen codes at most)."""

    def __init__(self) -> None:
        self.errors: Counter[int] = Counter()

    def answered(self, error_code: int) -> None:
        self.errors[error_code] += 1


def families(registry: SchemaRegistry, counts: RegistryCounts) -> list[Metric]:
    state = registry.state
    subjects = GaugeMetricFamily(
        "contextplane_schema_registry_subjects",
        "Subjects with a live version",
        value=len(state.live_subjects()),
    )
    schemas = GaugeMetricFamily(
        "contextplane_schema_registry_schemas",
        "Schemas held (each id once), by type",
        labels=["schema_type"],
    )
    for schema_type, count in sorted(
        Counter(s.schema_type for s in state.schemas.values()).items()
    ):
        schemas.add_metric([schema_type], count)
    rejected = CounterMetricFamily(
        "contextplane_schema_registry_rejected",
        "Schemas refused at registration or a compatibility check, by reason",
        labels=["reason"],
    )
    for code, reason in REJECTIONS.items():
        rejected.add_metric([reason], counts.errors.get(code, 0))
    errors = CounterMetricFamily(
        "contextplane_schema_registry_errors",
        "Errors answered, by Confluent error code",
        labels=["error_code"],
    )
    for code, count in sorted(counts.errors.items()):
        errors.add_metric([str(code)], count)
    return [subjects, schemas, rejected, errors]


async def metrics(request: Request) -> Response:
    app_state = request.app.state
    found = families(app_state.registry, app_state.counts)  # on the loop: the state moves
    text = await asyncio.to_thread(exposition, found, True)
    return Response(text, media_type=CONTENT_TYPE)
