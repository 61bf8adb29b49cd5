"""Smoke test: the benchmark harness runs end to end (tiniest profile, contextplane only).

Benchmarks are never judged here: only that `python -m bench.run` finishes and writes a
JSON result and a Markdown table with the expected keys.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(tmp_path: Path, *args: str, timeout: float) -> dict[str, Any]:
    """`python -m bench.run --profile smoke` with `args`; its results.json (the run must
    succeed), written under tmp_path/out with the brokers' data under tmp_path."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--profile", "smoke", *args]
        + ["--out", str(out), "--tmp", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow  # a minute and more: the whole benchmark harness end to end
def test_bench_smoke_profile_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = run_bench(tmp_path, "--targets", "contextplane-file", timeout=240)
    assert {"meta", "profile", "limits", "targets", "evaluation", "notes"} <= results.keys()
    assert results["profile"]["name"] == "smoke"
    limits = results["limits"]
    for key in (
        "seq_write_fdatasync_MBps",
        "seq_read_uncached_MBps",
        "fdatasync_64kib",
        "loopback_tcp_MBps",
    ):
        assert key in limits
    target = results["targets"]["contextplane-file"]
    assert not target["errors"], target["errors"]
    assert target["throughput"]["MBps"]["median"] > 0
    assert target["latency"]["produce"]["p99_ms"]["median"] > 0
    assert target["latency"]["end_to_end"]["p99_ms"]["median"] > 0
    assert target["catchup"]["read"]["complete"]
    # The broker's probes, beside the producer's p99 before and during the catch-up.
    for window in ("probes_before", "probes_during"):
        probes = target["catchup"][window]
        assert probes["seconds"] >= 1
        assert probes["loop_lag_ms"]["p99_max"] >= 0
        assert probes["rss_MB_max"] > 0 and probes["budget_total_MB"] > 0
        assert isinstance(probes["gc"], dict)
    assert target["latency"]["runs"][0]["probes"]["loop_lag_ms"]["max"] >= 0
    assert target["throughput"]["runs"][0]["probes"]["rss_MB_max"] > 0
    # The store alone, one GET at a time and 8 in flight over the same objects.
    assert target["store_get"]["MBps"] > 0 and target["store_get"]["in_flight"] == 1
    assert target["store_get_8"]["MBps"] > 0 and target["store_get_8"]["in_flight"] == 8
    assert target["store_get_8"]["gets"] == target["store_get"]["gets"] > 0
    assert target["restart"]["small"]["serving_s"] > 0
    assert target["restart"]["large"]["serving_s"] > 0
    for count in ("8", "100"):
        assert target["partitions"][count]["puts_per_gib"] > 0
        assert target["partitions"][count]["peak_rss_MB"] > 0
        # file:// GETs, counted by the broker itself (its probe lines).
        assert target["partitions"][count]["gets_per_gib"] > 0
        assert target["partitions"][count]["broker_get_bytes"] > 0
        assert target["partitions"][count]["probes"]["seconds"] >= 1
    # One partition of the many-partition topic, read cold from offset 0.
    replay = target["replay"]
    assert replay["partitions"] == results["profile"]["replay_partitions"] == 100
    assert replay["read"]["complete"] and replay["read"]["messages"] > 0
    assert replay["MBps"] > 0 and replay["gets"] > 0 and replay["gets_per_gib"] > 0
    # The same records read with and without a masking policy, every format.
    assert set(target["masking"]) == {"avro", "json", "protobuf"}
    for figures in target["masking"].values():
        assert figures["throughput_ratio"] > 0
        assert figures["records"] == results["profile"]["masking_records"]
    # Schema registry lookups, every kind.
    assert target["registry"]["registered_per_s"] > 0
    assert len(target["registry"]["lookups"]) == 3
    assert all(kind["median"] > 0 for kind in target["registry"]["lookups"].values())
    metrics = [row["metric"] for row in results["evaluation"]["rows"]]
    assert any(m.startswith("Produce throughput") for m in metrics)
    assert any(m.startswith("Restart") for m in metrics)
    assert any(m.startswith("One partition of 100 replayed") for m in metrics)
    assert any("8 in flight" in m for m in metrics)
    assert any("loop lag" in m for m in metrics)
    assert any(m.startswith("Masked fetch / unmasked, Avro") for m in metrics)
    assert any(m.startswith("Schema registry GET /schemas/ids/{id}") for m in metrics)

    table = (out / "results.md").read_text()
    assert "| Metric | Goal (contextplane) | contextplane file://" in table
    assert "Physical limits" in table
    assert "Produce throughput" in table and "End-to-end latency" in table
    # Temporary broker data is removed after the run.
    assert not list(tmp_path.glob("cp-bench-*"))


@pytest.mark.slow  # ~20 s: a broker with a 100-partition topic, loaded and restarted
def test_bench_runs_only_the_workloads_asked_for(tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = run_bench(
        tmp_path, "--targets", "contextplane-file", "--workloads", "replay", timeout=180
    )
    assert results["meta"]["workloads"] == ["replay"]
    assert results["limits"] is None
    target = results["targets"]["contextplane-file"]
    assert not target["errors"], target["errors"]
    assert target["replay"]["read"]["complete"] and target["replay"]["gets_per_gib"] > 0
    skipped_keys = ("throughput", "latency", "catchup", "restart", "partitions", "masking")
    for skipped in (*skipped_keys, "registry"):
        assert skipped not in target
        assert target["na"][skipped] == "not run: not among --workloads"
    assert set(target["seconds"]) == {"partitions"}
    assert "n/a: not run: not among --workloads" in (out / "results.md").read_text()


def test_bench_peers_come_from_the_bench_extra() -> None:
    """Tansu and py-spy are pinned in pyproject's `bench` extra, which the README's test
    command installs: the benchmark never installs anything unpinned at run time."""
    from bench.profiler import py_spy
    from bench.targets import tansu_binary

    version = subprocess.run(
        [tansu_binary(), "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    assert version.stdout.startswith("tansu ")
    assert py_spy() is not None


@pytest.mark.slow  # ~30 s: two brokers (one on SeaweedFS) and the latency load on each
def test_latency_rows_follow_a_warm_up_run_with_the_same_clients_for_every_target(
    tmp_path: Path,
) -> None:
    results = run_bench(
        tmp_path,
        "--targets",
        "contextplane-file,contextplane-s3",
        "--workloads",
        "latency",
        timeout=240,
    )
    profile = results["profile"]
    configs = []
    for name in ("contextplane-file", "contextplane-s3"):
        target = results["targets"][name]
        assert not target["errors"], target["errors"]
        latency = target["latency"]
        # The warm-up ran the same load for the profile's length, kept out of the rows.
        warmup = latency["warmup"]
        assert warmup["seconds"] == profile["latency_warmup_seconds"]
        assert warmup["sent"] > 0 and warmup["produce"]["count"] > 0
        assert len(latency["runs"]) == profile["latency_runs"]
        # Pinned where the machine has cores to spare, else the reason is given.
        pinning = latency["pinning"]
        assert pinning["pinned"] == (len(os.sched_getaffinity(0)) >= 3)
        assert pinning["pinned"] or pinning["reason"]
        # The rows are the measured runs' alone.
        p99s = [run["produce"]["p99_ms"] for run in latency["runs"]]
        assert latency["produce"]["p99_ms"]["median"] == statistics.median(p99s)
        for run in latency["runs"]:
            configs.append((run["consumer_config"], run["producer_config"]))
    assert configs and all(c == configs[0] for c in configs)
    assert configs[0][0]["fetch.wait.max.ms"] == 100
    assert any(note.startswith("Latency rows: after one warm-up run") for note in results["notes"])
