"""What the group benchmarks (`bench.rebalance`, `bench.share_throughput`) share: one
instance per target, started with the same group settings on both sides, and the
medians and contextplane ÷ Kafka ratios of their summaries."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.targets import ContextplaneInstance, Instance, Target

TARGET_NAMES = ("contextplane-file", "kafka")

# The harness starts Kafka with group.initial.rebalance.delay.ms=0; contextplane's default
# is Kafka's own 3000, so it is set to 0 here too, or every classic join would wait 3 s
# more on one side only.
CONTEXTPLANE_SETTINGS = {"group.initial.rebalance.delay.ms": "0"}


def start(name: str, root: Path, settings: dict[str, str] | None = None) -> Instance:
    """A fresh instance of `name` (contextplane-file or kafka) under `root`, started."""
    if name == "contextplane-file":
        merged = {**CONTEXTPLANE_SETTINGS, **(settings or {})}
        return ContextplaneInstance(root / name, "file", settings=merged).start()
    if name == "kafka":
        return Target(name, root / name).instance("groups").start()
    raise ValueError(f"unknown target {name!r}; choose from {', '.join(TARGET_NAMES)}")


def stop_all(instances: dict[str, Instance]) -> None:
    for inst in instances.values():
        try:
            inst.stop()
        except Exception:  # noqa: BLE001 - a broker that hangs on stop is killed
            if inst.pid:
                os.kill(inst.pid, 9)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(ours: float | None, kafka: float | None) -> float | None:
    return ours / kafka if ours is not None and kafka else None


def meta(names: list[str]) -> dict[str, Any]:
    import confluent_kafka as ck

    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "client": f"confluent-kafka {ck.__version__}, librdkafka {ck.libversion()[0]}",
        "targets": names,
    }


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.{digits}g}"
