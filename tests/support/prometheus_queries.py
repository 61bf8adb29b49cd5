"""The PromQL the repository ships (the Grafana dashboard's panels, the alert rules of
deploy/prometheus/) checked against a real scrape: every metric a query names is
exported, with the labels its `by (...)` groups on. PromQL itself runs on a real Prometheus
in tests/e2e/test_prometheus_server.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "contextplane.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
_NAME = re.compile(r"\b((?:kafka|contextplane|process)_[a-z_]+)\b")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


# The services beside the broker with their own /metrics, by their metrics' prefix.
SERVICE_PREFIXES = {
    "registry": "contextplane_schema_registry_",
    "context": "contextplane_context_",
    "executor": "contextplane_executor_",
}


def dashboard_queries(service: str | None = None) -> list[str]:
    """The dashboard's queries; with `service` (broker, registry, context, executor) those on the
    metrics that service exports, to check against its scrape."""
    queries = [
        target["expr"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel["targets"]
    ]
    if service is None:
        return queries
    return [query for query in queries if _service_of(query) == service]


def _service_of(query: str) -> str:
    services = {
        service
        for name in _NAME.findall(query)
        for service, prefix in SERVICE_PREFIXES.items()
        if name.startswith(prefix)
    }
    assert len(services) <= 1, f"{query}: metrics of {sorted(services)} in one query"
    return services.pop() if services else "broker"


def alert_groups() -> dict[str, list[dict[str, Any]]]:
    """The alert rules of deploy/prometheus/alerts.yml by group name."""
    return {g["name"]: g["rules"] for g in yaml.safe_load(ALERTS.read_text())["groups"]}


def alert_queries(group: str) -> list[str]:
    """The `expr` of every rule of the alert rules' `group`."""
    return [rule["expr"] for rule in alert_groups()[group]]


def exported(text: str) -> dict[str, set[str] | None]:
    """Each sample name of an exposition with the labels its samples carry; a family
    declared without samples (a counter nothing has counted yet) maps to None."""
    found: dict[str, set[str] | None] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = found.setdefault(sample.name, set())
            assert labels is not None
            labels.update(sample.labels)
        if not family.samples:
            for suffix in _SUFFIXES.get(family.type, ("",)):
                found.setdefault(family.name + suffix, None)
    return found


def check_queries(queries: list[str], names: dict[str, set[str] | None], source: str) -> None:
    assert queries, f"{source} has no queries"
    for query in queries:
        metrics = _NAME.findall(query)
        assert metrics, query
        grouped = {
            label.strip()
            for found in re.findall(r"by \(([^)]*)\)", query)
            for label in found.split(",")
        } - {"instance"}  # added by Prometheus at scrape time
        for name in metrics:
            assert name in names, f"{source} queries {name}, which is not exported"
            labels = names[name]
            if labels is not None:  # (None: no sample yet to read its labels from)
                assert grouped <= labels, f"{query}: {grouped - labels} not on {name}"
