"""Turn the run's results into the Markdown table: absolute figures per target, the goal
from issue #4 beside each contextplane figure, the relevant physical limit and the ratio
of each contextplane figure to it, and the largest gaps to the best peer."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.targets import TARGETS

CP = ("contextplane-file", "contextplane-s3")
PEERS = ("kafka", "kafka-flush1", "tansu")
GIB = 1024**3


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None


def _fmt(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "—"
    if digits is None:
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 1 else 3
    return f"{value:,.{digits}f}"


@dataclass
class Cell:
    """A figure for one target: the headline value, how to print it, or why it is n/a."""

    value: float | None = None
    text: str | None = None
    na: str | None = None
    gap_value: float | None = None  # compared with the peers instead of `value`

    @property
    def compared(self) -> float | None:
        return self.gap_value if self.gap_value is not None else self.value

    def render(self) -> str:
        if self.na:
            return "n/a: " + self.na.removeprefix("n/a: ")
        if self.text is not None:
            return self.text
        return _fmt(self.value)


def _get(data: dict[str, Any], *path: str) -> Any:
    cur: Any = data
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def _na(target: dict[str, Any] | None, phase: str) -> str | None:
    if target is None:
        return "not run"
    reason = _get(target, "na", phase)
    if reason:
        return str(reason)
    if _get(target, phase) is None:
        return _get(target, "errors", phase) or "not measured"
    return None


def _spread_cell(target: dict[str, Any] | None, phase: str, *path: str) -> Cell:
    if (reason := _na(target, phase)) is not None:
        return Cell(na=reason)
    spread = _get(target or {}, phase, *path)
    if not isinstance(spread, dict) or spread.get("median") is None:
        return Cell(na="no data")
    med, lo, hi = spread["median"], spread["min"], spread["max"]
    if len(spread.get("runs", [])) > 1:
        return Cell(med, f"{_fmt(med)} ({_fmt(lo)}–{_fmt(hi)})")
    return Cell(med)


def _value_cell(target: dict[str, Any] | None, phase: str, *path: str) -> Cell:
    if (reason := _na(target, phase)) is not None:
        return Cell(na=reason)
    cur: Any = target or {}
    # A level below the target may say why it has no figure ({"na": reason}); the
    # target's own "na" maps phases to reasons and was consulted above.
    for key in (phase, *path):
        cur = cur.get(key) if isinstance(cur, dict) else None
        if isinstance(cur, dict) and cur.get("na"):
            return Cell(na=str(cur["na"]))
    number = _num(cur)
    return Cell(number) if number is not None else Cell(na="no data")


def _latency_cell(target: dict[str, Any] | None, kind: str) -> Cell:
    if (reason := _na(target, "latency")) is not None:
        return Cell(na=reason)
    lat = _get(target or {}, "latency", kind)
    if not isinstance(lat, dict) or lat["p99_ms"].get("median") is None:
        return Cell(na="no data")
    p50, p99, p999 = (lat[k]["median"] for k in ("p50_ms", "p99_ms", "p999_ms"))
    lo, hi = lat["p99_ms"]["min"], lat["p99_ms"]["max"]
    text = f"{_fmt(p50)} / **{_fmt(p99)}** ({_fmt(lo)}–{_fmt(hi)}) / {_fmt(p999)}"
    return Cell(p99, text)


# A goal's test of a value: one for every contextplane target, or one per target.
Check = Callable[[float], bool] | dict[str, Callable[[float], bool]] | None


@dataclass
class Row:
    label: str
    better: str  # "higher" | "lower" | "" (informative only)
    cell: Callable[[dict[str, Any] | None], Cell]
    goal: Callable[[dict[str, Any]], tuple[str, Check]] | None = None
    limit: Callable[[dict[str, Any]], tuple[float | None, str]] | None = None
    gap: bool = True


def _limit(results: dict[str, Any], key: str) -> float | None:
    return _num(_get(results, "limits", key))


def _peer(results: dict[str, Any], name: str, cell: Callable[[Any], Cell]) -> float | None:
    target = _get(results, "targets", name)
    return cell(target).value if target else None


def rows(results: dict[str, Any]) -> list[Row]:
    prof = results.get("profile", {})
    small = prof.get("restart_small_bytes", GIB) / GIB
    large = prof.get("restart_large_bytes", 10 * GIB) / GIB
    catchup_gib = prof.get("catchup_bytes", 2 * GIB) / GIB
    rate = prof.get("latency_rate", 0)
    out: list[Row] = []

    def tput(t: Any) -> Cell:
        return _spread_cell(t, "throughput", "MBps")

    def tput_goal(r: dict[str, Any]) -> tuple[str, Check]:
        # Issue #12: ≥ 1.5 × Kafka (defaults) on file://, ≥ 1.0 × on s3://.
        kafka = _peer(r, "kafka", tput)
        if kafka is None:
            return "≥ 1.5 × Kafka's (file://), ≥ 1.0 × (s3://)", None
        text = f"≥ {_fmt(1.5 * kafka)} file://, ≥ {_fmt(kafka)} s3:// (1.5 × / 1.0 × Kafka)"
        return text, {
            "contextplane-file": lambda v: v >= 1.5 * kafka,
            "contextplane-s3": lambda v: v >= kafka,
        }

    out.append(
        Row(
            "Produce throughput, acks=all, 1 KiB, lz4, 8 partitions (MB/s)",
            "higher",
            tput,
            tput_goal,
            lambda r: (_limit(r, "seq_write_fdatasync_MBps"), "disk seq write+fdatasync"),
        )
    )
    out.append(
        Row(
            "… same, messages/s",
            "higher",
            lambda t: _spread_cell(t, "throughput", "msgs_per_s"),
            gap=False,
        )
    )

    def cpu(t: Any) -> Cell:
        cell = _spread_cell(t, "throughput", "broker_cpu")
        store = _get(t or {}, "throughput", "store_cpu", "median")
        if cell.value is not None and store:
            cell.text = f"{cell.text or _fmt(cell.value)} + store {_fmt(store)}"
        return cell

    out.append(Row("… broker CPU during it (cores, of 2)", "lower", cpu, gap=False))

    def prod_goal(r: dict[str, Any]) -> tuple[str, Callable[[float], bool] | None]:
        p99 = _num(_get(r, "limits", "fdatasync_64kib", "p99_ms"))
        if p99 is None:
            return "≤ 3 × fdatasync p99", None
        return f"p99 ≤ {_fmt(3 * p99)} (3 × fdatasync p99)", lambda v: v <= 3 * p99

    out.append(
        Row(
            f"Produce latency p50 / **p99** / p99.9 at {rate} msg/s (ms)",
            "lower",
            lambda t: _latency_cell(t, "produce"),
            prod_goal,
            lambda r: (_num(_get(r, "limits", "fdatasync_64kib", "p99_ms")), "fdatasync p99"),
        )
    )

    def e2e(t: Any) -> Cell:
        return _latency_cell(t, "end_to_end")

    def e2e_goal(r: dict[str, Any]) -> tuple[str, Check]:
        kafka = _peer(r, "kafka", e2e)  # issue #12: ≤ 1.0 × Kafka's
        if kafka is None:
            return "p99 ≤ Kafka's", None
        return f"p99 ≤ {_fmt(kafka)} (1.0 × Kafka)", lambda v: v <= kafka

    out.append(
        Row(
            f"End-to-end latency p50 / **p99** / p99.9 at {rate} msg/s (ms)",
            "lower",
            e2e,
            e2e_goal,
            lambda r: (_num(_get(r, "limits", "fdatasync_64kib", "p99_ms")), "fdatasync p99"),
        )
    )

    def catchup_limit(r: dict[str, Any]) -> tuple[float | None, str]:
        values = [
            v
            for v in (_limit(r, "seq_read_uncached_MBps"), _limit(r, "loopback_tcp_MBps"))
            if v is not None
        ]
        return (min(values) if values else None), "min(disk seq read, loopback TCP)"

    out.append(
        Row(
            f"Catch-up read of {_fmt(catchup_gib)} GiB not in the log cache (MB/s)",
            "higher",
            lambda t: _value_cell(t, "catchup", "MBps"),
            lambda r: ("≥ 500", lambda v: v >= 500),
            catchup_limit,
        )
    )

    out.append(
        Row(
            "… the store alone: 4 MiB ranged GETs of those objects, one at a time (MB/s)",
            "higher",
            lambda t: _value_cell(t, "store_get", "MBps"),
            gap=False,
        )
    )
    out.append(
        Row(
            "… the store alone: the same GETs, 8 in flight (the broker's read concurrency) (MB/s)",
            "higher",
            lambda t: _value_cell(t, "store_get_8", "MBps"),
            gap=False,
        )
    )

    def catchup_p99(t: Any) -> Cell:
        if (reason := _na(t, "catchup")) is not None:
            return Cell(na=reason)
        before = _num(_get(t, "catchup", "producer_before", "p99_ms"))
        during = _num(_get(t, "catchup", "producer_during", "p99_ms"))
        if before is None or during is None:
            return Cell(na="no data")
        ratio = during / before if before else None
        return Cell(ratio, f"{_fmt(before)} → {_fmt(during)} (×{_fmt(ratio)})", gap_value=during)

    out.append(
        Row(
            "Producer p99 before → during catch-up (ms; ×ratio; gaps compare 'during')",
            "lower",
            catchup_p99,
            lambda r: ("during ≤ 2 × before", lambda v: v <= 2),
        )
    )

    def loop_lag(t: Any) -> Cell:
        if (reason := _na(t, "catchup")) is not None:
            return Cell(na=reason)
        before = _num(_get(t, "catchup", "probes_before", "loop_lag_ms", "p99_max"))
        during = _num(_get(t, "catchup", "probes_during", "loop_lag_ms", "p99_max"))
        gc_max = _num(_get(t, "catchup", "probes_during", "gc_pause_max_ms"))
        if during is None:
            return Cell(na="no probes (contextplane only)")
        return Cell(during, f"{_fmt(before)} → {_fmt(during)} (GC max {_fmt(gc_max)})")

    out.append(
        Row(
            "… broker loop lag p99 (worst second) before → during catch-up (ms; longest GC pause)",
            "lower",
            loop_lag,
            gap=False,
        )
    )
    for key, size in (("small", small), ("large", large)):
        out.append(
            Row(
                f"Restart: process start → serving produce+fetch, {_fmt(size)} GiB retained (s)",
                "lower",
                lambda t, k=key: _value_cell(t, "restart", k, "serving_s"),
                lambda r: ("≤ 1", lambda v: v <= 1),
            )
        )
    for count in prof.get("partition_counts", ()):
        out.append(
            Row(
                f"Object PUTs per GiB ingested, {count:,} partitions",
                "lower",
                lambda t, c=count: _value_cell(t, "partitions", str(c), "puts_per_gib"),
                lambda r: ("≤ 130", lambda v: v <= 130),
                lambda r: (_num(_get(r, "limits", "puts_per_gib_floor")), "1 PUT per 8 MiB object"),
                gap=False,
            )
        )
    for count in prof.get("partition_counts", ()):
        out.append(
            Row(
                f"Rewrite PUTs per GiB ingested (object compaction, cleaner), {count:,} partitions",
                "lower",
                lambda t, c=count: _value_cell(t, "partitions", str(c), "rewrite_puts_per_gib"),
                gap=False,
            )
        )
    for count in prof.get("partition_counts", ()):
        out.append(
            Row(
                f"Object GETs per GiB read (after restart), {count:,} partitions",
                "lower",
                lambda t, c=count: _value_cell(t, "partitions", str(c), "gets_per_gib"),
                lambda r: ("≤ 130", lambda v: v <= 130),
                gap=False,
            )
        )
    replay_parts = prof.get("replay_partitions", 1000)
    out.append(
        Row(
            f"One partition of {replay_parts:,} replayed from offset 0, cold (MB/s)",
            "higher",
            lambda t: _value_cell(t, "replay", "MBps"),
            gap=False,
        )
    )
    out.append(
        Row(
            "… its object GETs per GiB read",
            "lower",
            lambda t: _value_cell(t, "replay", "gets_per_gib"),
            gap=False,
        )
    )
    for count in prof.get("partition_counts", ())[:2]:
        goal = (lambda r: ("≤ 300", lambda v: v <= 300)) if count == 1000 else None
        out.append(
            Row(
                f"Broker peak RSS, {count:,} partitions (MB)",
                "lower",
                lambda t, c=count: _value_cell(t, "partitions", str(c), "peak_rss_MB"),
                goal,
            )
        )
    for count in prof.get("partition_counts", ()):
        out.append(
            Row(
                f"CreateTopics with {count:,} partitions → ready (s)",
                "lower",
                lambda t, c=count: _value_cell(t, "partitions", str(c), "create_s"),
                gap=False,
            )
        )
    out.append(
        Row(
            f"Sustained load of {_fmt(large)} GiB (MB/s)",
            "higher",
            lambda t: _value_cell(t, "retained", "load_MBps"),
            limit=lambda r: (_limit(r, "seq_write_fdatasync_MBps"), "disk"),
            gap=False,
        )
    )
    for kind, label in (("avro", "Avro"), ("json", "JSON Schema"), ("protobuf", "Protobuf")):
        out.append(
            Row(
                f"Masked fetch / unmasked, {label} (records/s ratio, same run)",
                "higher",
                lambda t, k=kind: _value_cell(t, "masking", k, "throughput_ratio"),
                gap=False,
            )
        )
        out.append(
            Row(
                f"… broker CPU a masked {label} record adds (µs)",
                "lower",
                lambda t, k=kind: _value_cell(t, "masking", k, "masking_cpu_us_per_record"),
                gap=False,
            )
        )
    for kind in ("GET /schemas/ids/{id}", "GET /subjects/{s}/versions/latest",
                 "POST /subjects/{s} (lookup)"):  # fmt: skip
        out.append(
            Row(
                f"Schema registry {kind} (requests/s, 4 client threads)",
                "higher",
                lambda t, k=kind: _value_cell(t, "registry", "lookups", k, "median"),
                gap=False,
            )
        )
    return out


def evaluate(results: dict[str, Any]) -> dict[str, Any]:
    """Per row: the cells, the goal and its pass/fail per contextplane target, ratios."""
    targets = results.get("targets", {})
    table = []
    gaps = []
    for row in rows(results):
        cells = {name: row.cell(targets.get(name)) for name in TARGETS}
        goal_text, check = row.goal(results) if row.goal else ("", None)
        limit_value, limit_label = row.limit(results) if row.limit else (None, "")
        entry: dict[str, Any] = {
            "metric": row.label,
            "goal": goal_text,
            "cells": {k: c.render() for k, c in cells.items() if k in targets},
            "values": {k: c.value for k, c in cells.items() if k in targets},
            "limit": limit_value,
            "limit_label": limit_label,
            "pass": {},
            "ratio_to_limit": {},
        }
        for name in CP:
            value = cells[name].value
            if name not in targets or value is None:
                continue
            test = check.get(name) if isinstance(check, dict) else check
            if test is not None:
                entry["pass"][name] = bool(test(value))
            if limit_value:
                entry["ratio_to_limit"][name] = value / limit_value
        table.append(entry)
        if row.gap and row.better:
            peers = [cells[p].compared for p in PEERS if p in targets and cells[p].compared]
            for name in CP:
                mine = cells[name].compared
                if name not in targets or not mine or not peers:
                    continue
                best = max(peers) if row.better == "higher" else min(peers)
                factor = best / mine if row.better == "higher" else mine / best
                gaps.append(
                    {
                        "metric": row.label,
                        "target": name,
                        "contextplane": mine,
                        "best_peer": best,
                        "best_peer_name": next(
                            p for p in PEERS if p in targets and cells[p].compared == best
                        ),
                        "factor": factor,
                    }
                )
    gaps.sort(key=lambda g: g["factor"], reverse=True)
    seen: set[str] = set()
    top = []
    for gap in gaps:
        if gap["factor"] <= 1 or gap["metric"] in seen:
            continue
        seen.add(gap["metric"])
        top.append(gap)
    return {"rows": table, "gaps": top[:3], "all_gaps": gaps}


def markdown(results: dict[str, Any]) -> str:
    evaluation = evaluate(results)
    names = [n for n in TARGETS if n in results.get("targets", {})]
    cp_names = [n for n in CP if n in names]
    header = ["Metric", "Goal (contextplane)"] + [TARGETS[n] for n in names] + ["Limit"]
    header += [f"{TARGETS[n].split(' ')[1]} ÷ limit" for n in cp_names]
    lines = [
        f"## contextplane benchmarks — profile `{results['profile']['name']}`",
        "",
        f"Run {results['meta']['started']} on {results['meta']['host']}; total "
        f"{results['meta'].get('runtime_s', 0):.0f} s. Client: {results['meta']['client']}. "
        "Figures are medians with (min–max) of repeated runs where repeated; ✓/✗ = goal met.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for entry in evaluation["rows"]:
        cells = []
        for name in names:
            text = entry["cells"].get(name, "")
            if name in entry["pass"]:
                text += " ✓" if entry["pass"][name] else " ✗"
            cells.append(text)
        limit = entry["limit"]
        limit_text = f"{_fmt(limit)} ({entry['limit_label']})" if limit else ""
        ratios = [
            (f"{entry['ratio_to_limit'][n]:.2f}" if n in entry["ratio_to_limit"] else "")
            for n in cp_names
        ]
        lines.append(
            "| " + " | ".join([entry["metric"], entry["goal"], *cells, limit_text, *ratios]) + " |"
        )
    limits = results.get("limits") or {}
    if limits:
        fs = limits.get("fdatasync_64kib", {})
        lines += [
            "",
            "### Physical limits (same run)",
            "",
            "| limit | value |",
            "|---|---|",
            f"| sequential write, 4 MiB appends + fdatasync each | "
            f"{_fmt(limits.get('seq_write_fdatasync_4mib_MBps'))} MB/s |",
            f"| sequential write, 1 MiB appends + fdatasync each | "
            f"{_fmt(limits.get('seq_write_fdatasync_1mib_MBps'))} MB/s |",
            f"| sequential read, evicted from page cache | "
            f"{_fmt(limits.get('seq_read_uncached_MBps'))} MB/s |",
            f"| fdatasync of a 64 KiB append, p50 / p99 / p99.9 | {_fmt(fs.get('p50_ms'))} / "
            f"{_fmt(fs.get('p99_ms'))} / {_fmt(fs.get('p999_ms'))} ms |",
            f"| loopback TCP, one connection | {_fmt(limits.get('loopback_tcp_MBps'))} MB/s |",
        ]
    if evaluation["gaps"]:
        lines += ["", "### Largest gaps to the best peer", ""]
        for i, gap in enumerate(evaluation["gaps"], 1):
            lines.append(
                f"{i}. {gap['metric']}: {TARGETS[gap['target']]} {_fmt(gap['contextplane'])} vs "
                f"{TARGETS[gap['best_peer_name']]} {_fmt(gap['best_peer'])} "
                f"(×{gap['factor']:.1f})"
            )
    notes = list(results.get("notes") or [])
    for name in names:
        for note in results["targets"][name].get("notes", []):
            notes.append(f"{TARGETS[name]}: {note}")
    if notes:
        lines += ["", "### Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
