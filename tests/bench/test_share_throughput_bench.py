"""bench/share_throughput.py runs end to end on a few records against contextplane (its
figures are never judged here): every produced record is confirmed acknowledged exactly
once, by consumers that were all assigned when polling began, and the rate is reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDS, CONSUMERS = 400, 4


def test_the_share_benchmark_checks_every_record_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "bench.share_throughput", "--targets", "contextplane-file"]
    command += ["--rounds", "1", "--records", str(RECORDS), "--consumers", str(CONSUMERS)]
    command += ["--out", str(out), "--tmp", str(tmp_path)]
    proc = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "share-results.json").read_text())
    (run,) = results["runs"]["contextplane-file"]
    assert run["errors"] == []
    assert (run["confirmed"], run["missing"], run["duplicates"], run["unknown"]) == (
        RECORDS,
        0,
        0,
        0,
    )
    assert run["members_assigned_at_start"] == CONSUMERS
    assert len(run["per_consumer"]) == CONSUMERS and sum(run["per_consumer"]) == RECORDS
    assert run["records_per_s"] > 0
    exact = results["summary"][-1]["exact"]
    assert exact == {"contextplane-file": True}
    assert (
        "| every record acknowledged exactly once | yes |" in (out / "share-results.md").read_text()
    )
