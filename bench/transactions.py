"""Transactional produce throughput and read_committed end-to-end latency, contextplane
side by side with Apache Kafka in one run.

    .venv/bin/python -m bench.transactions                       # standard profile
    .venv/bin/python -m bench.transactions --profile smoke --targets contextplane-file
    .venv/bin/python -m bench.transactions --targets contextplane-file,kafka --profile-broker

Every target is started once (fresh data), gets an 8-partition topic per workload, and
the runs are interleaved: run i of every target before run i + 1 of any, in a rotating
order, so load from other work on the shared machine is spread over all targets. The
figures are medians over the runs, with each contextplane target's ratio to Kafka's median
from the same run. Writes `txn-results.json` and `txn-results.md` to `--out`.
See bench/README.md ("Transactions") for the workloads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import txn_workloads, workloads
from bench.profiler import Profiler
from bench.targets import TARGETS, Instance, Target

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TARGETS = ("contextplane-file", "contextplane-s3", "kafka")
PARTITIONS = 8
VALUE_BYTES = 1024


@dataclass(frozen=True)
class TxnProfile:
    name: str
    runs: int
    throughput_seconds: float
    txn_sizes: tuple[int, ...]
    latency_seconds: float
    latency_rate: int  # transactions per second
    latency_records: int  # records per transaction
    latency_producers: int  # paced producers sharing the rate
    warmup_seconds: float  # untimed transactions per target before the first run (JIT)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


PROFILES = {
    "smoke": TxnProfile("smoke", 1, 1.5, (100, 1000), 2.0, 20, 10, 2, 0.5),
    "quick": TxnProfile("quick", 2, 4.0, (100, 1000), 4.0, 20, 10, 10, 3.0),
    "standard": TxnProfile("standard", 3, 10.0, (100, 1000), 10.0, 20, 10, 10, 5.0),
}

# (key in a run's result, label, unit, higher is better)
THROUGHPUT_FIGURES = (
    ("records_per_s", "records/s", "", True),
    ("MBps", "MB/s", "", True),
    ("txn_per_s", "transactions/s", "", True),
    ("commit.p50_ms", "commit_transaction p50", "ms", False),
    ("commit.p99_ms", "commit_transaction p99", "ms", False),
)
LATENCY_FIGURES = (
    ("read_committed.p50_ms", "read_committed end-to-end p50", "ms", False),
    ("read_committed.p99_ms", "read_committed end-to-end p99", "ms", False),
    ("read_committed.max_ms", "read_committed end-to-end max", "ms", False),
    ("read_uncommitted.p50_ms", "read_uncommitted end-to-end p50", "ms", False),
    ("read_uncommitted.p99_ms", "read_uncommitted end-to-end p99", "ms", False),
    ("commit.p50_ms", "commit_transaction p50 (paced)", "ms", False),
    ("commit.p99_ms", "commit_transaction p99 (paced)", "ms", False),
    ("rate_achieved_txn_per_s", "transactions/s achieved", "", True),
)


def _get(result: dict[str, Any], dotted: str) -> float | None:
    value: Any = result
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) else None


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [v for v in (_get(r, key) for r in runs) if v is not None and v == v]
    return statistics.median(values) if values else None


def _rotated(names: list[str], i: int) -> list[str]:
    k = i % len(names) if names else 0
    return names[k:] + names[:k]


def _log(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:7.1f}s] {message}", flush=True)


def _start_targets(
    targets: list[Target],
    prof: TxnProfile,
    values: list[bytes],
    errors: dict[str, str],
    t0: float,
) -> dict[str, Instance]:
    """A fresh instance per target with its topics, warmed up by untimed transactions."""
    insts: dict[str, Instance] = {}
    for target in targets:
        try:
            inst = target.instance("txn").start()
            insts[target.name] = inst
            for topic in _topics(prof):
                created = workloads.create_topic(inst.bootstrap, topic, PARTITIONS, 60)
                if created["error"]:
                    raise RuntimeError(f"create topic {topic}: {created['error']}")
            for size in prof.txn_sizes:
                txn_workloads.transactional_throughput(
                    inst.bootstrap,
                    f"txn-tput-{size}",
                    PARTITIONS,
                    values,
                    size,
                    prof.warmup_seconds / len(prof.txn_sizes),
                )
            _log(f"{target.name}: started at {inst.bootstrap}", t0)
        except Exception as exc:  # noqa: BLE001 - reported; the other targets go on
            _log(f"{target.name}: setup failed: {traceback.format_exc()}", t0)
            errors[target.name] = f"setup failed: {type(exc).__name__}: {exc}"
            if target.name in insts:
                insts.pop(target.name).stop()
    return insts


def _topics(prof: TxnProfile) -> list[str]:
    tput = [f"txn-tput-{size}" for size in prof.txn_sizes]
    return tput + [f"txn-lat-{i}" for i in range(prof.runs)]


def run(
    names: list[str], prof: TxnProfile, tmp: Path, out: Path, profile_broker: bool = False
) -> dict[str, Any]:
    t0 = time.monotonic()
    values = workloads.make_values(VALUE_BYTES)
    results: dict[str, Any] = {
        "meta": {
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "cores": os.cpu_count(),
            "loadavg_before": os.getloadavg(),
            "client": f"confluent-kafka {workloads.ck.version()[0]}, "
            f"librdkafka {workloads.ck.libversion()[0]}",
            "targets": names,
        },
        "profile": prof.as_dict(),
        "errors": {},
        "throughput": {str(size): {n: [] for n in names} for size in prof.txn_sizes},
        "latency": {n: [] for n in names},
        "profiles": {},
    }
    targets = [Target(name, tmp / name) for name in names]
    insts: dict[str, Instance] = {}
    try:
        insts = _start_targets(targets, prof, values, results["errors"], t0)
        live = list(insts)
        for i in range(prof.runs):
            for size in prof.txn_sizes:
                for name in _rotated(live, i):
                    _throughput_run(insts[name], name, size, prof, values, results, t0)
            for name in _rotated(live, i):
                _latency_run(insts[name], name, f"txn-lat-{i}", prof, values, results, t0)
        if profile_broker:
            for name in live:
                if name.startswith("contextplane"):
                    results["profiles"][name] = _profile(insts[name], name, prof, values, out)
    finally:
        for inst in insts.values():
            try:
                inst.stop()
            except Exception as exc:  # noqa: BLE001 - a broker that hangs on stop is killed
                _log(f"stop failed ({exc}); killing", t0)
                if inst.pid:
                    os.kill(inst.pid, 9)
        for target in targets:
            target.close()
    results["meta"]["loadavg_after"] = os.getloadavg()
    results["meta"]["runtime_s"] = time.monotonic() - t0
    results["summary"] = summarize(results, prof)
    return results


def _throughput_run(
    inst: Instance,
    name: str,
    size: int,
    prof: TxnProfile,
    values: list[bytes],
    results: dict[str, Any],
    t0: float,
) -> None:
    try:
        cpu0 = inst.cpu_seconds()
        res = txn_workloads.transactional_throughput(
            inst.bootstrap, f"txn-tput-{size}", PARTITIONS, values, size, prof.throughput_seconds
        )
        cpu1 = inst.cpu_seconds()
        res["broker_cpu"] = (cpu1[0] - cpu0[0]) / res["seconds"]
        res["store_cpu"] = (cpu1[1] - cpu0[1]) / res["seconds"]
    except Exception as exc:  # noqa: BLE001 - reported, the next run goes on
        res = {"error": f"{type(exc).__name__}: {exc}"}
        _log(f"  {name} txn={size}: failed: {res['error']}", t0)
    else:
        _log(
            f"  {name} txn={size}: {res['records_per_s']:.0f} rec/s, {res['MBps']:.1f} MB/s, "
            f"{res['txn_per_s']:.1f} txn/s, commit p50/p99 {res['commit']['p50_ms']:.1f}/"
            f"{res['commit']['p99_ms']:.1f} ms (broker {res['broker_cpu']:.2f} cores)",
            t0,
        )
    results["throughput"][str(size)][name].append(res)


def _latency_run(
    inst: Instance,
    name: str,
    topic: str,
    prof: TxnProfile,
    values: list[bytes],
    results: dict[str, Any],
    t0: float,
) -> None:
    try:
        res = txn_workloads.committed_latency_run(
            inst.bootstrap,
            topic,
            PARTITIONS,
            values,
            prof.latency_rate,
            prof.latency_records,
            prof.latency_seconds,
            prof.latency_producers,
        )
    except Exception as exc:  # noqa: BLE001 - reported, the next run goes on
        res = {"error": f"{type(exc).__name__}: {exc}"}
        _log(f"  {name} latency: failed: {res['error']}", t0)
    else:
        rc, ru = res["read_committed"], res["read_uncommitted"]
        _log(
            f"  {name} latency: {res['rate_achieved_txn_per_s']:.0f}/{prof.latency_rate} txn/s, "
            f"read_committed p50/p99/max {rc['p50_ms']:.1f}/{rc['p99_ms']:.1f}/"
            f"{rc['max_ms']:.1f} ms, read_uncommitted p50/p99 {ru['p50_ms']:.1f}/"
            f"{ru['p99_ms']:.1f} ms ({rc['count']}/{ru['count']} samples)",
            t0,
        )
    results["latency"][name].append(res)


def _profile(
    inst: Instance, name: str, prof: TxnProfile, values: list[bytes], out: Path
) -> dict[str, Any]:
    """py-spy on the broker during one more throughput run of each size and one latency
    run (the figures of these runs are not part of the medians)."""
    profiles: dict[str, Any] = {}
    seconds = max(prof.throughput_seconds, 3.0)
    if not inst.pid:
        return {"error": "broker not running"}
    for size in prof.txn_sizes:
        profiler = Profiler(inst.pid, out / f"pyspy-{name}-txn{size}.txt", seconds)
        txn_workloads.transactional_throughput(
            inst.bootstrap, f"txn-tput-{size}", PARTITIONS, values, size, seconds
        )
        profiles[f"txn{size}"] = profiler.finish()
    latency_seconds = max(prof.latency_seconds, 3.0)
    profiler = Profiler(inst.pid, out / f"pyspy-{name}-latency.txt", latency_seconds + 2)
    txn_workloads.committed_latency_run(
        inst.bootstrap,
        "txn-lat-0",
        PARTITIONS,
        values,
        prof.latency_rate,
        prof.latency_records,
        latency_seconds,
        prof.latency_producers,
    )
    profiles["latency"] = profiler.finish()
    return profiles


def summarize(results: dict[str, Any], prof: TxnProfile) -> dict[str, Any]:
    """Medians per target and each target's ratio to Kafka's median (target / Kafka)."""
    rows: list[dict[str, Any]] = []

    def add(workload: str, runs_by_target: dict[str, list[dict[str, Any]]], figures: Any) -> None:
        for key, label, unit, higher_better in figures:
            medians = {n: _median(runs, key) for n, runs in runs_by_target.items()}
            kafka = medians.get("kafka")
            ratios = {
                n: (m / kafka if m is not None and kafka else None)
                for n, m in medians.items()
                if n != "kafka"
            }
            rows.append(
                {
                    "workload": workload,
                    "metric": label,
                    "key": key,
                    "unit": unit,
                    "higher_is_better": higher_better,
                    "medians": medians,
                    "ratio_to_kafka": ratios,
                }
            )

    for size in prof.txn_sizes:
        add(
            f"transactions of {size} records",
            results["throughput"][str(size)],
            THROUGHPUT_FIGURES,
        )
    add(
        f"paced, {prof.latency_rate} txn/s of {prof.latency_records} records "
        f"({prof.latency_producers} producers)",
        results["latency"],
        LATENCY_FIGURES,
    )
    return {"rows": rows}


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def markdown(results: dict[str, Any]) -> str:
    names = results["meta"]["targets"]
    others = [n for n in names if n != "kafka"]
    head = ["Workload", "Metric", *(TARGETS[n] for n in names)]
    if "kafka" in names:
        head += [f"{n} ÷ Kafka" for n in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in results["summary"]["rows"]:
        unit = f" ({row['unit']})" if row["unit"] else ""
        cells = [row["workload"], row["metric"] + unit]
        cells += [_fmt(row["medians"].get(n)) for n in names]
        if "kafka" in names:
            cells += [_fmt(row["ratio_to_kafka"].get(n)) for n in others]
        lines.append("| " + " | ".join(cells) + " |")
    meta = results["meta"]
    lines += [
        "",
        f"Medians of {results['profile']['runs']} interleaved runs; started "
        f"{meta['started']}, {meta['runtime_s']:.0f} s, load average before "
        f"{meta['loadavg_before'][0]:.2f}, after {meta['loadavg_after'][0]:.2f} "
        f"({meta['cores']} cores)."
        + (
            " Ratios: contextplane ÷ Kafka (throughput above 1 and latency below 1 favour "
            "contextplane)."
            if "kafka" in names
            else ""
        ),
    ]
    if results["errors"]:
        lines += ["", "Errors: " + json.dumps(results["errors"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transactions")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="standard")
    parser.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help=f"comma separated, any of {', '.join(DEFAULT_TARGETS)}",
    )
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument("--tmp", type=Path, default=None, help="where brokers keep data")
    parser.add_argument(
        "--profile-broker", action="store_true", help="py-spy on contextplane, extra runs"
    )
    parser.add_argument(
        "--latency-rate", type=int, default=None, help="paced transactions/s (profile's)"
    )
    parser.add_argument(
        "--latency-producers", type=int, default=None, help="paced producers (profile's)"
    )
    args = parser.parse_args(argv)
    names = [n for n in args.targets.replace(" ", ",").split(",") if n]
    unknown = [n for n in names if n not in DEFAULT_TARGETS]
    if unknown or not names:
        raise SystemExit(f"unknown targets {unknown}; choose from {', '.join(DEFAULT_TARGETS)}")
    prof = PROFILES[args.profile]
    if args.latency_rate is not None:
        prof = replace(prof, latency_rate=args.latency_rate)
    if args.latency_producers is not None:
        prof = replace(prof, latency_producers=args.latency_producers)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (args.out or ROOT / "bench" / "results" / f"{stamp}-txn-{prof.name}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="cp-txnbench-", dir=args.tmp))
    try:
        results = run(names, prof, tmp, out, args.profile_broker)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (out / "txn-results.json").write_text(json.dumps(results, indent=1, default=str))
    table = markdown(results)
    (out / "txn-results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
