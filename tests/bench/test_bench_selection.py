"""`--workloads` and the probe summaries: what runs, and what the bench makes of the
broker's probe lines (no broker: the lines are written here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.probes import ProbeFile, gets_of, rewrites_and_uploads, summarize
from bench.selection import WORKLOADS, parse_workloads, phases, skipped_keys


def test_no_workloads_given_means_every_workload() -> None:
    assert parse_workloads([]) == frozenset(WORKLOADS)
    assert parse_workloads(["all"]) == frozenset(WORKLOADS)


def test_workloads_are_comma_or_space_separated_and_unknown_names_are_refused() -> None:
    assert parse_workloads(["catch-up,object-requests", "replay"]) == {
        "catch-up",
        "object-requests",
        "replay",
    }
    with pytest.raises(SystemExit, match="unknown workload 'catchup'"):
        parse_workloads(["catchup"])


def test_only_the_phases_of_the_chosen_workloads_run_and_the_rest_is_marked_skipped() -> None:
    chosen = parse_workloads(["catch-up,replay"])
    assert phases(chosen) == {"retained", "partitions"}
    skipped = skipped_keys(chosen)
    assert {"throughput", "latency", "restart", "partitions"} <= skipped
    assert not {"catchup", "store_get", "store_get_8", "replay", "retained"} & skipped


def _line(seq: int, p99: float, gets: int, gc: dict[str, object] | None = None) -> dict:
    return {
        "seq": seq,
        "final": False,
        "loop_lag": {"count": 900, "p50_ms": 0.1, "p99_ms": p99, "max_ms": p99 * 2},
        "gc": gc or {},
        "rss_bytes": 100_000_000 + seq,
        "budget_used_bytes": 5_000_000 * seq,
        "budget_total_bytes": 536_870_912,
        "object_store": {"gets": gets, "get_bytes": gets * 1000, "puts": 0, "put_bytes": 0},
    }


def test_a_window_summarizes_loop_lag_gc_and_memory_per_second() -> None:
    lines = [
        _line(1, 1.0, 0, {"0": {"count": 3, "total_ms": 0.6, "max_ms": 0.3}}),
        _line(2, 9.0, 5, {"2": {"count": 1, "total_ms": 40.0, "max_ms": 40.0}}),
        _line(3, 2.0, 9, {"0": {"count": 1, "total_ms": 0.5, "max_ms": 0.5}}),
    ]
    summary = summarize(lines)
    assert summary["seconds"] == 3
    assert summary["loop_lag_ms"] == {
        "p50_median": 0.1,
        "p99_median": 2.0,
        "p99_max": 9.0,
        "max": 18.0,
    }
    assert summary["gc"] == {
        "0": {"count": 4, "total_ms": pytest.approx(1.1), "max_ms": 0.5},
        "2": {"count": 1, "total_ms": 40.0, "max_ms": 40.0},
    }
    assert summary["gc_pause_max_ms"] == 40.0
    assert summary["budget_used_MB_max"] == 15.0
    assert summary["rss_MB_max"] == pytest.approx(100.000003)
    assert len(summary["series"]) == 3
    assert summarize([]) == {"na": "no probe lines in this window"}


def test_the_probe_file_reads_complete_lines_and_marks_windows(tmp_path: Path) -> None:
    probes = ProbeFile(tmp_path / "probes.jsonl")
    assert probes.mark() == 0 and probes.next_line(timeout=0.2) is None
    with probes.path.open("w") as file:
        file.write(json.dumps(_line(1, 1.0, 3)) + "\n")
        file.write(json.dumps(_line(2, 1.0, 7)) + "\n")
        file.write('{"seq": 3, "loop')  # being written
    assert probes.mark() == 2
    assert gets_of(probes.since(1)[0]) == {"GET": 7, "GET_bytes": 7000}
    assert probes.next_line(1)["seq"] == 2  # type: ignore[index]
    assert probes.final_line() is None


def test_rewrite_puts_and_the_uploads_mean_size_are_counted_between_two_lines() -> None:
    """The ingest target leaves out object compaction's and the cleaner's PUTs: the window
    reports them, and the uploads' count and mean size, from the broker's counters."""

    def line(puts: int, compaction: int, cleaner: int, uploads: int, mib: int) -> dict:
        counts = {"puts": puts, "compaction_puts": compaction, "cleaner_puts": cleaner}
        counts |= {"upload_objects": uploads, "upload_object_bytes": mib * 1024 * 1024}
        return {"object_store": counts}

    opened, closed = line(3, 1, 0, 2, 16), line(70, 5, 2, 62, 512)
    assert rewrites_and_uploads(opened, closed) == {
        "rewrite_puts": 6,
        "upload_objects": 60,
        "upload_object_MiB_mean": 8.27,
    }
    # A broker without the rewrite counters (an older build): nothing is claimed.
    assert rewrites_and_uploads({"object_store": {"puts": 3}}, closed) == {}
