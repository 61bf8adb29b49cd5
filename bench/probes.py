"""The broker's debug probes as the bench reads them.

Every contextplane instance runs with `debug.probe.file` set: the broker appends a JSON
line each second (loop lag p50/p99/max, GC pauses by generation, RSS, the memory budget's
used bytes, object store requests since start) and a last one at a clean stop
(`"final": true`). The bench marks the file before a workload (`mark`), and afterwards
summarizes the lines written since (`summarize`), or waits for the next line to read the
request counters (`next_line`). Counters restart with each broker process.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

MB = 1e6
MIB = 1024 * 1024


class ProbeFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for text in self.path.read_text().splitlines():
            try:
                out.append(json.loads(text))
            except ValueError:  # a line being written as we read
                break
        return out

    def mark(self) -> int:
        """How many lines are written so far: the start of a window."""
        return len(self.lines())

    def since(self, mark: int) -> list[dict[str, Any]]:
        return self.lines()[mark:]

    def next_line(self, mark: int | None = None, timeout: float = 10.0) -> dict[str, Any] | None:
        """The first line written after `mark` (default: now); None if none comes in time
        (the broker stopped, or probes are off)."""
        start = self.mark() if mark is None else mark
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.since(start)
            if lines:
                return lines[0]
            time.sleep(0.1)
        return None

    def final_line(self) -> dict[str, Any] | None:
        """The last line of the last clean stop, if the file ends with one."""
        lines = self.lines()
        return lines[-1] if lines and lines[-1].get("final") else None

    def window(self, mark: int) -> dict[str, Any]:
        return summarize(self.since(mark))


def _gets(line: dict[str, Any] | None) -> tuple[int, int] | None:
    store = (line or {}).get("object_store") or {}
    if "gets" not in store:
        return None
    return int(store["gets"]), int(store["get_bytes"])


def gets_of(line: dict[str, Any] | None) -> dict[str, int] | None:
    """GET count and bytes of a probe line (None if the line has no store counters)."""
    found = _gets(line)
    return {"GET": found[0], "GET_bytes": found[1]} if found else None


def puts_of(line: dict[str, Any] | None) -> int | None:
    """The PUTs a probe line counts since its process started (None: no store counters)."""
    store = (line or {}).get("object_store") or {}
    return int(store["puts"]) if "puts" in store else None


def rewrite_puts_of(line: dict[str, Any] | None) -> int | None:
    """The PUTs of rewrites (object compaction's and the log cleaner's outputs) a probe
    line counts since its process started: the part of `puts_of` that is not ingest."""
    store = (line or {}).get("object_store") or {}
    if "compaction_puts" not in store:
        return None
    return int(store["compaction_puts"]) + int(store.get("cleaner_puts", 0))


def uploads_of(line: dict[str, Any] | None) -> tuple[int, int] | None:
    """The objects the uploader committed since start and their bytes (None: not kept)."""
    store = (line or {}).get("object_store") or {}
    if "upload_objects" not in store:
        return None
    return int(store["upload_objects"]), int(store["upload_object_bytes"])


def rewrites_and_uploads(
    opened: dict[str, Any] | None, closed: dict[str, Any] | None
) -> dict[str, Any]:
    """Between two probe lines: the rewrites' PUTs (object compaction, the log cleaner),
    and the uploader's objects with their mean size (what sets ingest PUTs per GiB)."""
    out: dict[str, Any] = {}
    rewrites = (rewrite_puts_of(opened), rewrite_puts_of(closed))
    if rewrites[0] is not None and rewrites[1] is not None:
        out["rewrite_puts"] = rewrites[1] - rewrites[0]
    uploads = (uploads_of(opened), uploads_of(closed))
    if uploads[0] is not None and uploads[1] is not None:
        objects = uploads[1][0] - uploads[0][0]
        out["upload_objects"] = objects
        if objects:
            mean = (uploads[1][1] - uploads[0][1]) / objects
            out["upload_object_MiB_mean"] = round(mean / MIB, 2)
    return out


def _phase_medians(produce: list[dict[str, Any]]) -> dict[str, float]:
    """Per phase, the median over the seconds of its p99 (lines of older brokers have
    no phases)."""
    seconds = [entry["phases_p99_ms"] for entry in produce if entry.get("phases_p99_ms")]
    names = seconds[0].keys() if seconds else ()
    return {name: round(statistics.median(s[name] for s in seconds), 2) for name in names}


def summarize(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """A workload's window: loop lag (median of the per-second p50s, median and max of the
    per-second p99s, the largest lateness), GC pauses by generation, peak RSS and budget
    use, and the per-second series (p99 ms, max ms, RSS MB, budget MB)."""
    if not lines:
        return {"na": "no probe lines in this window"}
    seconds = [line for line in lines if (line.get("loop_lag") or {}).get("count")]
    p50s = [line["loop_lag"]["p50_ms"] for line in seconds]
    p99s = [line["loop_lag"]["p99_ms"] for line in seconds]
    maxes = [line["loop_lag"]["max_ms"] for line in seconds]
    gc: dict[str, dict[str, float]] = {}
    for line in lines:
        for gen, entry in (line.get("gc") or {}).items():
            total = gc.setdefault(gen, {"count": 0, "total_ms": 0.0, "max_ms": 0.0})
            total["count"] += entry["count"]
            total["total_ms"] += entry["total_ms"]
            total["max_ms"] = max(total["max_ms"], entry["max_ms"])
    # The loop thread's CPU between asking for the 1 ms timer and running it: the work
    # that delayed it, not the time the thread waited for a core (older brokers: none).
    cpu_lags = [
        line["loop_cpu_lag"] for line in lines if (line.get("loop_cpu_lag") or {}).get("count")
    ]
    cpu_p99s = [entry["p99_ms"] for entry in cpu_lags]
    # The broker's own Produce request times (absent from lines of older brokers).
    produce = [line["produce"] for line in lines if (line.get("produce") or {}).get("count")]
    produce_p99s = [entry["p99_ms"] for entry in produce]
    # Bulk work's turns that waited for requests, and those forced (older brokers: none).
    governed = [line["governor"] for line in lines if line.get("governor")]
    rss = [line["rss_bytes"] for line in lines if line.get("rss_bytes")]
    used = [line["budget_used_bytes"] for line in lines if "budget_used_bytes" in line]
    return {
        "seconds": len(lines),
        "loop_lag_ms": {
            "p50_median": statistics.median(p50s) if p50s else None,
            "p99_median": statistics.median(p99s) if p99s else None,
            "p99_max": max(p99s) if p99s else None,
            "max": max(maxes) if maxes else None,
        },
        "loop_cpu_lag_ms": {
            "p99_median": statistics.median(cpu_p99s) if cpu_p99s else None,
            "p99_max": max(cpu_p99s) if cpu_p99s else None,
            # A long turn delays one timer only: its largest is the longest turn's work.
            "max_median": statistics.median(e["max_ms"] for e in cpu_lags) if cpu_lags else None,
            "max": max((e["max_ms"] for e in cpu_lags), default=None),
        },
        "produce_ms": {
            "p99_median": statistics.median(produce_p99s) if produce_p99s else None,
            # Each phase's p99 (broker/probes.py PRODUCE_PHASES), median second.
            "phases_p99_median": _phase_medians(produce),
            "p99_max": max(produce_p99s) if produce_p99s else None,
            "max": max((entry["max_ms"] for entry in produce), default=None),
        },
        "turns_deferred": _grown(governed, "deferred"),
        "turns_forced": _grown(governed, "forced"),
        "gc": gc,
        "gc_pause_max_ms": max((g["max_ms"] for g in gc.values()), default=0.0),
        "rss_MB_max": max(rss) / MB if rss else None,
        "budget_used_MB_max": max(used) / MB if used else None,
        "budget_total_MB": lines[-1].get("budget_total_bytes", 0) / MB,
        "series": [
            [
                _round((line.get("loop_lag") or {}).get("p99_ms")),
                _round((line.get("loop_lag") or {}).get("max_ms")),
                _round(line["rss_bytes"] / MB if line.get("rss_bytes") else None),
                _round(line.get("budget_used_bytes", 0) / MB),
            ]
            for line in lines
        ],
        "series_columns": ["loop_lag_p99_ms", "loop_lag_max_ms", "rss_MB", "budget_used_MB"],
    }


def _grown(counts: list[dict[str, int]], key: str) -> int | None:
    """How much a counter grew over the window's lines (None: fewer than two)."""
    return counts[-1][key] - counts[0][key] if len(counts) > 1 else None


def window_start(instance: Any) -> int | None:
    """Mark an instance's probe file (None: the target has no probes)."""
    probes: ProbeFile | None = getattr(instance, "probes", None)
    return probes.mark() if probes is not None else None


def window_end(instance: Any, mark: int | None) -> dict[str, Any] | None:
    """The summary of the lines an instance's broker wrote since `mark`."""
    probes: ProbeFile | None = getattr(instance, "probes", None)
    if probes is None or mark is None:
        return None
    probes.next_line(timeout=3)  # the line of the second the workload ended in
    return probes.window(mark)


def window_between(instance: Any, start: int | None, end: int | None) -> dict[str, Any] | None:
    """The summary of the lines written between two marks."""
    probes: ProbeFile | None = getattr(instance, "probes", None)
    if probes is None or start is None or end is None:
        return None
    return summarize(probes.lines()[start:end])


def _round(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None
