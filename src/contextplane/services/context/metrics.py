"""The context service's metrics in Prometheus' text format (`GET /metrics`): per view its
lag, age, freshness target and whether it is stale; records skipped by reason; records
applied. Written by hand: a few gauges do not need a client library."""

from __future__ import annotations

from typing import Any

from contextplane.services.context.freshness import Freshness

_HELP = {
    "contextplane_context_lag_records": (
        "gauge",
        "Records in a source partition not yet applied to the view",
    ),
    "contextplane_context_age_seconds": (
        "gauge",
        "Age of the newest source event the view applied",
    ),
    "contextplane_context_freshness_target_seconds": ("gauge", "The view's freshness target"),
    "contextplane_context_stale": ("gauge", "1 while the view is behind and older than its target"),
    "contextplane_context_skipped_records_total": (
        "counter",
        "Source records skipped because they do not parse as the view declares",
    ),
    "contextplane_context_applied_records_total": (
        "counter",
        "Source records applied since the service started",
    ),
}


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample(name: str, labels: dict[str, object], value: float) -> str:
    inside = ",".join(f'{key}="{_label(v)}"' for key, v in labels.items())
    return f"{name}{{{inside}}} {value:g}" if inside else f"{name} {value:g}"


def render(status: dict[str, Any]) -> str:
    """`status` as ContextService.status() returns it."""
    samples: dict[str, list[str]] = {name: [] for name in _HELP}
    for view, about in status["views"].items():
        fresh: Freshness = about["freshness"]
        for p in fresh.partitions:
            if p.lag is not None:
                labels = {"view": view, "topic": p.topic, "partition": p.partition}
                samples["contextplane_context_lag_records"].append(
                    _sample("contextplane_context_lag_records", labels, p.lag)
                )
        if fresh.age_ms is not None:
            samples["contextplane_context_age_seconds"].append(
                _sample("contextplane_context_age_seconds", {"view": view}, fresh.age_ms / 1000)
            )
        if fresh.target_ms is not None:
            samples["contextplane_context_freshness_target_seconds"].append(
                _sample(
                    "contextplane_context_freshness_target_seconds",
                    {"view": view},
                    fresh.target_ms / 1000,
                )
            )
        samples["contextplane_context_stale"].append(
            _sample("contextplane_context_stale", {"view": view}, int(fresh.stale))
        )
        for reason, count in about["skipped"].items():
            samples["contextplane_context_skipped_records_total"].append(
                _sample(
                    "contextplane_context_skipped_records_total",
                    {"view": view, "reason": reason},
                    count,
                )
            )
    samples["contextplane_context_applied_records_total"].append(
        _sample("contextplane_context_applied_records_total", {}, status["applied_records"])
    )
    lines: list[str] = []
    for name, (kind, text) in _HELP.items():
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *samples[name]]
    return "\n".join(lines) + "\n"
