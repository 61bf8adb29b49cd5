"""bench/tracing_produce.py runs end to end on a tiny workload (its figures are never
judged here): both brokers produce in both shapes, the traced one's spans reach the
receiver, and the summary has each shape's medians and on / off ratios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_both_shapes_with_tracing_on_and_off() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.tracing_produce", "--rounds", "1", "--mb", "1"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    *rounds, summary_line = out.stdout.strip().splitlines()
    assert sorted((r["shape"], r["tracing"]) for r in map(json.loads, rounds)) == [
        ("batched", "off"),
        ("batched", "on"),
        ("small", "off"),
        ("small", "on"),
    ]
    summary = json.loads(summary_line)
    assert summary["sample"] == 1.0 and summary["spans_received"] > 0
    for shape in ("batched", "small"):
        assert set(summary[shape]) == {
            "median_mb_per_s",
            "median_broker_cpu_s_per_mb",
            "on_to_off_throughput",
            "on_to_off_broker_cpu",
        }
        assert summary[shape]["on_to_off_throughput"] > 0
