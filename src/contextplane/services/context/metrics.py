"""The context service's metrics in Prometheus's text format (`GET /metrics`): per view its
lag, age, freshness target and whether it is stale; records skipped by reason; records
applied. Written by prometheus_client, as the broker's /metrics is (console/metrics.py)."""

from __future__ import annotations

from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from contextplane.prometheus_text import exposition
from contextplane.services.context.freshness import Freshness


def render(status: dict[str, Any]) -> str:
    """`status` as ContextService.status() returns it."""
    lag = GaugeMetricFamily(
        "contextplane_context_lag_records",
        "Records in a source partition not yet applied to the view",
        labels=["view", "topic", "partition"],
    )
    age = GaugeMetricFamily(
        "contextplane_context_age_seconds",
        "Age of the newest source event the view applied",
        labels=["view"],
    )
    target = GaugeMetricFamily(
        "contextplane_context_freshness_target_seconds",
        "The view's freshness target",
        labels=["view"],
    )
    stale = GaugeMetricFamily(
        "contextplane_context_stale",
        "1 while the view is behind and older than its target",
        labels=["view"],
    )
    skipped = CounterMetricFamily(
        "contextplane_context_skipped_records",
        "Source records skipped because they do not parse as the view declares",
        labels=["view", "reason"],
    )
    for view, about in status["views"].items():
        fresh: Freshness = about["freshness"]
        for p in fresh.partitions:
            if p.lag is not None:
                lag.add_metric([view, p.topic, str(p.partition)], p.lag)
        if fresh.age_ms is not None:
            age.add_metric([view], fresh.age_ms / 1000)
        if fresh.target_ms is not None:
            target.add_metric([view], fresh.target_ms / 1000)
        stale.add_metric([view], int(fresh.stale))
        for reason, count in about["skipped"].items():
            skipped.add_metric([view, reason], count)
    applied = CounterMetricFamily(
        "contextplane_context_applied_records",
        "Source records applied since the service started",
        value=status["applied_records"],
    )
    return exposition([lag, age, target, stale, skipped, applied]).decode()
