"""Metric families built beforehand, written in Prometheus's text format by
prometheus_client: what the broker's and the services' /metrics answer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector


class _Families:
    """A collector that yields the families it was given."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def exposition(families: Iterable[Metric], with_process: bool = False) -> bytes:
    """The families' text exposition; with the process's own metrics when asked."""
    registry = CollectorRegistry(auto_describe=False)
    if with_process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    registry.register(_Families(list(families)))
    return generate_latest(registry)
