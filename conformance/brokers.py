"""The two brokers under comparison, started with the same effective settings.

Apache Kafka comes from harness.kafka_reference (Maven Central, cached, KRaft on
127.0.0.1, stopped by pid); contextplane from tests.support.broker.BrokerProcess.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import kafka_reference
from tests.support.broker import BrokerProcess

# Settings both brokers get (Kafka's names). Group joins are immediate on both, so group
# scenarios observe protocol behaviour rather than a delay that only one would have.
COMMON = {
    "group.initial.rebalance.delay.ms": "0",
}


@dataclass
class Running:
    name: str
    bootstrap: str
    log_hint: str


@contextlib.contextmanager
def kafka(extra: dict[str, str] | None = None) -> Iterator[Running]:
    props = dict(COMMON, **(extra or {}))
    handle = kafka_reference.start(extra_props=props)
    try:
        yield Running("kafka", handle.bootstrap, str(handle.log_path))
    finally:
        handle.stop()


@contextlib.contextmanager
def contextplane(
    extra: dict[str, str] | None = None, keep: Path | None = None
) -> Iterator[Running]:
    settings = dict(COMMON, **(extra or {}))
    root = Path(tempfile.mkdtemp(prefix="conformance-cp-"))
    process = BrokerProcess(root / "broker", settings=settings).start()
    try:
        yield Running("contextplane", process.bootstrap, str(process.log_path))
    finally:
        try:
            process.stop()
        finally:
            if keep is not None and process.log_path and process.log_path.exists():
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(process.log_path, keep / "contextplane-broker.log")
            shutil.rmtree(root, ignore_errors=True)
