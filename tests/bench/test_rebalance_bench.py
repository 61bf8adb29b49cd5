"""bench/rebalance.py runs end to end on a tiny group against contextplane (its figures
are never judged here): under both protocols every round has a join and a leave time,
and at each the members named own every partition exactly once, balanced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEMBERS, PARTITIONS = 3, 6


def test_the_rebalance_benchmark_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "bench.rebalance", "--targets", "contextplane-file"]
    command += ["--protocols", "classic-cooperative,consumer", "--rounds", "1"]
    command += ["--members", str(MEMBERS), "--partitions", str(PARTITIONS)]
    command += ["--out", str(out), "--tmp", str(tmp_path)]
    proc = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "rebalance-results.json").read_text())
    for protocol in ("classic-cooperative", "consumer"):
        (run,) = results["runs"][protocol]["contextplane-file"]
        assert "error" not in run, run
        assert run["join_s"] > 0 and run["leave_s"] > 0
        for phase, members in (("after_join", MEMBERS), ("after_leave", MEMBERS - 1)):
            owned = [p for held in run[phase].values() for p in held]
            assert len(run[phase]) == members, (phase, run[phase])
            assert sorted(owned) == list(range(PARTITIONS)), (phase, run[phase])
    phases = {(row["protocol"], row["phase"]) for row in results["summary"]}
    assert phases == {
        (p, f) for p in ("classic-cooperative", "consumer") for f in ("join_s", "leave_s")
    }
    table = (out / "rebalance-results.md").read_text()
    assert "| consumer | leave |" in table
