"""A module fixture's cluster for the CLI's twin tests: a contextplane broker process or
Apache Kafka 4.4 from the harness, started with the same server properties, so one test
body runs against both (the Kafka side marked by `twins.kafka_twin`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness import kafka_reference
from tests.support.broker import BrokerProcess
from tests.support.twins import kafka_twin

CLUSTER_KINDS = ["contextplane", kafka_twin("kafka", id="kafka")]


@dataclass(frozen=True)
class Cluster:
    kind: str  # "contextplane" or "kafka"
    bootstrap: str


@contextmanager
def started(kind: str, data: Path, settings: Mapping[str, str]) -> Iterator[Cluster]:
    """The cluster of `kind` with `settings` (Kafka's server property names)."""
    if kind == "contextplane":
        broker = BrokerProcess(data / "data", settings=dict(settings)).start()
        try:
            yield Cluster(kind, broker.bootstrap)
        finally:
            broker.stop()
        return
    kafka = kafka_reference.start(data_dir=data / "kafka", extra_props=settings, timeout=180)
    try:
        yield Cluster(kind, kafka.bootstrap)
    finally:
        kafka.stop()
