"""What the group benchmarks (`bench.rebalance`, `bench.share_throughput`) share: one
instance per target, started with the same group settings on both sides, and the
medians and contextplane ÷ Kafka ratios of their summaries."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.targets import ContextplaneInstance, Instance, Target

ROOT = Path(__file__).resolve().parent.parent
TARGET_NAMES = ("contextplane-file", "kafka")

# The harness starts Kafka with group.initial.rebalance.delay.ms=0; contextplane's default
# is Kafka's own 3000, so it is set to 0 here too, or every classic join would wait 3 s
# more on one side only.
GROUP_SETTINGS = {"group.initial.rebalance.delay.ms": "0"}


def start(name: str, root: Path, settings: dict[str, str] | None = None) -> Instance:
    """A fresh instance of `name` (contextplane-file or kafka) under `root`, started."""
    if name == "contextplane-file":
        merged = {**GROUP_SETTINGS, **(settings or {})}
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


def figure(by_target: dict[str, list[dict[str, Any]]], key: str) -> dict[str, Any]:
    """One figure's median per target over the rounds that have it, the rounds counted,
    and contextplane ÷ Kafka."""
    medians = {n: median([r[key] for r in runs if key in r]) for n, runs in by_target.items()}
    return {
        "medians": medians,
        "rounds": {n: sum(key in r for r in runs) for n, runs in by_target.items()},
        "ratio": ratio(medians.get("contextplane-file"), medians.get("kafka")),
    }


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


def start_with_topic(name: str, root: Path, topic: str, partitions: int) -> Instance:
    """`start`, then the benchmark's topic created on it."""
    from bench import workloads

    inst = start(name, root)
    created = workloads.create_topic(inst.bootstrap, topic, partitions, 60)
    if created["error"]:
        inst.stop()
        raise RuntimeError(f"{name}: create topic: {created['error']}")
    return inst


def rotated(names: list[str], i: int) -> list[str]:
    """Round i's target order: each target goes first in turn."""
    k = i % len(names)
    return names[k:] + names[:k]


def log(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:7.1f}s] {message}", flush=True)


def finish(results: dict[str, Any], started: float) -> None:
    results["meta"]["loadavg_after"] = os.getloadavg()
    results["meta"]["runtime_s"] = time.monotonic() - started


def load_line(meta: dict[str, Any]) -> str:
    return (
        f"{meta['client']}; load average before {meta['loadavg_before'][0]:.2f}, after "
        f"{meta['loadavg_after'][0]:.2f} ({meta['cores']} cores), {meta['runtime_s']:.0f} s."
    )


def run_and_write(
    out: Path | None,
    tmp_root: Path | None,
    kind: str,
    run: Callable[[Path], dict[str, Any]],
    markdown: Callable[[dict[str, Any]], str],
) -> int:
    """`run` in a fresh temp dir (removed after), then `<kind>-results.json` and `.md`
    written to `out` (default `bench/results/<time>-<kind>/`) and the table printed."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = (out or ROOT / "bench" / "results" / f"{stamp}-{kind}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"cp-{kind}-", dir=tmp_root))
    try:
        results = run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (out / f"{kind}-results.json").write_text(json.dumps(results, indent=1, default=str))
    table = markdown(results)
    (out / f"{kind}-results.md").write_text(table)
    print(table)
    return 0
