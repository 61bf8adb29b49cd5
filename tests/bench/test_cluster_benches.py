"""The cluster benches run end to end at a tiny size (their times are never judged here):
three brokers on PostgreSQL and a file:// store each. What they count must hold:

- zone_traffic: every client reaches the brokers through its zone's forwarders (bytes
  counted from every zone to each zone that leads a partition), the record flows carry
  at least the values produced and consumed, and their cross-zone share is the share of
  partitions led in another zone, within the records' framing; with the rack-aware
  replica selector the consumers' record bytes stay in their zones, with the zone writes'
  proxy the producers' and the consumers';
- cluster_failover: each of the killed broker's partitions is claimed by a live broker
  and a produce to it acknowledged;
- cluster_moves: a move reads no object and writes about its tail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(tmp_path: Path, module: str, *args: str) -> dict[str, Any]:
    out = tmp_path / f"{module}.json"
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


@pytest.mark.slow  # ~90 s: three times three brokers, nine forwarders, 6 MiB through them
def test_zone_traffic_counts_cross_zone_record_bytes_where_the_leaders_are(
    tmp_path: Path,
) -> None:
    clusters = tmp_path / "clusters"  # the brokers' logs stay here for a failure's cause
    both = run_bench(
        tmp_path, "zone_traffic", "--mib", "6", "--store", "file",
        "--variants", "leader,replica,proxy", "--keep", str(clusters),
    )  # fmt: skip

    def context(variant: str) -> str:
        return f"{json.dumps(both[variant], indent=1)}\nbroker logs under {clusters / variant}"

    # Fetch from an in-zone replica: the consumers' record bytes stay in their zones.
    assert both["replica"]["consumed"]["cross_record_share"] < 0.01, context("replica")
    # The zone writes' proxy: neither producers' nor consumers' record bytes leave them.
    for phase in ("produced", "consumed"):
        assert both["proxy"][phase]["cross_record_share"] < 0.01, (phase, context("proxy"))
    result = both["leader"]
    expected = result["expected_cross_share"]
    # Every zone's clients reach every zone that leads a partition. Placement may leave a
    # broker leading none of the 6 (then no record, and maybe no byte, goes to its zone).
    leading = {leader["rack"] for leader in result["leaders"].values()}
    pairs = {f"{c}->{b}" for c in "abc" for b in leading}
    for phase, flow in (("produced", "produce_up"), ("consumed", "fetch_down")):
        figures = result[phase]
        assert pairs <= set(figures["zone_pairs"]), (phase, context("leader"))
        flows = figures["flows"]
        carried = flows.get(f"cross_{flow}", 0) + flows.get(f"same_{flow}", 0)
        assert carried >= figures["values_bytes"], (phase, context("leader"))
        share = figures["cross_record_share"]
        assert expected <= share <= expected * 1.1, (phase, share, expected, context("leader"))


@pytest.mark.slow  # ~30 s: three brokers, one kill -9 and its restart
def test_failover_bench_serves_every_partition_of_the_killed_broker(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path, "cluster_failover", "--rounds", "1", "--modes", "object_wal",
        "--store", "file", "--partitions", "6", "--session-ms", "1500",
    )  # fmt: skip
    (row,) = result["rounds"]
    assert row["partitions"] and not row["errors"], row
    assert set(row["claimed_s"]) == set(row["served_s"]) == {str(p) for p in row["partitions"]}
    assert result["summary"]["object_wal.unserved"] == 0


@pytest.mark.slow  # ~40 s: three brokers, two small loads, a warm-up move and one measured
def test_move_bench_reads_nothing_and_writes_about_the_tail(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path, "cluster_moves", "--sizes-mib", "2,4", "--moves", "1",
        "--store", "file", "--tail-mib", "1",
    )  # fmt: skip
    assert len(result["rows"]) == 2
    for row in result["rows"]:
        assert row["store_get_bytes"] == 0, row
        assert row["tail_bytes"] <= row["store_put_bytes"] <= row["tail_bytes"] * 1.2, row
    assert result["summary"]["flat"] > 0
