"""bench/transactions.py runs end to end on its smallest profile against contextplane
(its figures are never judged here): every transaction size and the paced latency run
produce figures under the keys the report reads, and the table names every metric."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import transactions

ROOT = Path(__file__).resolve().parents[2]


def test_the_transaction_benchmark_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.transactions",
            "--profile",
            "smoke",
            "--targets",
            "contextplane-file",
            "--out",
            str(out),
            "--tmp",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    results = json.loads((out / "txn-results.json").read_text())
    assert {"meta", "profile", "errors", "throughput", "latency", "summary"} <= results.keys()
    assert not results["errors"], results["errors"]
    smoke = transactions.PROFILES["smoke"]
    for size in smoke.txn_sizes:
        (run,) = results["throughput"][str(size)]["contextplane-file"]
        assert "error" not in run, run
        assert run["records_per_txn"] == size
        assert run["transactions"] > 0 and run["records"] == run["transactions"] * size
        assert run["failed"] == 0
        for key in ("records_per_s", "MBps", "txn_per_s", "broker_cpu"):
            assert run[key] > 0, key
        assert run["commit"]["count"] == run["transactions"]
    (latency,) = results["latency"]["contextplane-file"]
    assert latency["error"] is None
    assert latency["records_committed"] > 0
    for isolation in ("read_committed", "read_uncommitted"):
        # Every committed record reaches both consumers, and each is a latency sample.
        assert latency["records_received"][isolation] == latency["records_committed"]
        assert latency[isolation]["count"] > 0
        assert latency[isolation]["p50_ms"] <= latency[isolation]["p99_ms"]

    metrics = {row["metric"] for row in results["summary"]["rows"]}
    expected = {label for _, label, _, _ in transactions.THROUGHPUT_FIGURES}
    expected |= {label for _, label, _, _ in transactions.LATENCY_FIGURES}
    assert metrics == expected
    for row in results["summary"]["rows"]:
        assert row["medians"]["contextplane-file"] is not None, row
    # Without Kafka in the run there is nothing to divide by: no ratio column.
    table = (out / "txn-results.md").read_text()
    header = table.splitlines()[0]
    assert "contextplane file://" in header and "÷ Kafka" not in header
    assert "read_committed end-to-end p99" in table
    # Temporary broker data is removed after the run.
    assert not list(tmp_path.glob("cp-txnbench-*"))


def test_ratios_divide_each_contextplane_median_by_kafkas_median() -> None:
    prof = transactions.PROFILES["smoke"]

    def runs(*values: float) -> list[dict[str, object]]:
        return [{"records_per_s": v, "commit": {"p99_ms": v / 100}} for v in values]

    results: dict[str, object] = {
        "throughput": {
            str(size): {"contextplane-file": runs(10, 30, 20), "kafka": runs(5, 40, 10)}
            for size in prof.txn_sizes
        },
        "latency": {"contextplane-file": [{"error": "broken"}], "kafka": []},
    }
    rows = transactions.summarize(results, prof)["rows"]
    (records,) = [r for r in rows if r["key"] == "records_per_s" and "100 " in r["workload"]]
    assert records["medians"] == {"contextplane-file": 20, "kafka": 10}
    assert records["ratio_to_kafka"] == {"contextplane-file": 2.0}
    (commit,) = [r for r in rows if r["key"] == "commit.p99_ms" and "100 " in r["workload"]]
    assert commit["ratio_to_kafka"] == {"contextplane-file": 2.0}
    # A run that failed has no figures: its row says n/a instead of dividing by nothing.
    latency = [r for r in rows if r["key"] == "read_committed.p99_ms"]
    assert latency[0]["medians"] == {"contextplane-file": None, "kafka": None}
    assert latency[0]["ratio_to_kafka"] == {"contextplane-file": None}
