"""A small, repeatable catch-up fairness run: producer p99 idle and during a cold read.

The standard bench's catch-up workload (`bench/run.py` phase_retained) reads 2 GiB after
loading 1 GiB more for the restart figures; this runs only its catch-up part on file://,
on a few hundred MiB, so a change to the Fetch path can be measured A/B in one sitting.
Each round starts a fresh broker per variant (the variants take turns at going first),
loads the topic, restarts the broker (empties its log cache), evicts the page cache, and
reads the whole topic from offset 0 while a paced producer (the latency workload's
settings) writes to another topic. It reports, per variant and round, the producer's p99
before and during the read, their ratio, the broker's loop lag p99 (worst second) before
and during, and the longest GC pause during the read.

A variant is a name and a source directory (`NAME=DIR`, DIR holding the `contextplane`
package; `NAME=.` is this tree): the broker subprocess imports it first (PYTHONPATH).

    .venv/bin/python -m bench.catchup_fairness --mib 384 --rounds 3 \\
        --variant base=/tmp/base/src --variant new=.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import workloads
from bench.probes import window_between, window_end, window_start
from bench.profiler import Profiler
from bench.targets import ContextplaneInstance

MIB = 1024 * 1024
PARTITIONS = 8
RATE = 2000  # messages/s of the paced producer, as the standard profile's latency_rate
# The producer's first seconds on a loaded machine (connection, metadata) are not idle.
WARMUP_SECONDS = 3.0
BEFORE_SECONDS = 4.0


def _variant(text: str) -> tuple[str, Path | None]:
    name, _, directory = text.partition("=")
    if not name or not directory:
        raise argparse.ArgumentTypeError(f"variant {text!r}: expected NAME=DIR")
    if directory == ".":
        return name, None
    path = Path(directory).resolve()
    if not (path / "contextplane").is_dir():
        raise argparse.ArgumentTypeError(f"variant {name}: no contextplane package in {path}")
    return name, path


def one_run(
    root: Path,
    source: Path | None,
    mib: int,
    values: list[bytes],
    settings: dict[str, str],
    profile: Path | None = None,
    reader_process: bool = True,
    rate: int = RATE,
) -> dict[str, Any]:
    previous = os.environ.get("PYTHONPATH")
    if source is not None:
        # For the whole run: the restart before the read starts a broker too (it ran this
        # tree's code, not the variant's, while only the first start had the variant's).
        os.environ["PYTHONPATH"] = str(source)
    try:
        return _measured(root, mib, values, settings, profile, reader_process, rate)
    finally:
        if source is not None:
            if previous is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = previous


def _measured(
    root: Path,
    mib: int,
    values: list[bytes],
    settings: dict[str, str],
    profile: Path | None,
    reader_process: bool,
    rate: int,
) -> dict[str, Any]:
    inst = ContextplaneInstance(root, "file", settings=settings).start()
    try:
        bs = inst.bootstrap
        for topic in ("retained", "live"):
            created = workloads.create_topic(bs, topic, PARTITIONS, 60)
            if created["error"]:
                raise RuntimeError(f"create topic {topic}: {created['error']}")
        load = workloads.produce_bulk(bs, "retained", PARTITIONS, values, total_bytes=mib * MIB)
        if load["failed"]:
            raise RuntimeError(f"load failed: {load['first_error']}")
        # A restart empties the log cache; as bench/run.py does, it waits until the broker
        # serves a produce and a fetch (one more message in the topic).
        workloads.time_to_serving(inst, "retained", values[0])
        inst.evict_page_cache()
        mark = window_start(inst)
        marks: list[int | None] = []
        profilers: list[Profiler] = []

        def reading() -> None:
            marks.append(window_start(inst))
            if profile is not None and inst.pid:  # py-spy over the read (~150 MB/s)
                profilers.append(Profiler(inst.pid, profile, max(3.0, mib * MIB / 150e6)))

        cpu0 = inst.cpu_seconds()[0]
        t0 = time.monotonic()
        res = workloads.catchup_run(
            bs,
            "retained",
            PARTITIONS,
            load["messages"] + 1,
            "live",
            values,
            rate,
            BEFORE_SECONDS,
            timeout=300.0,
            during=reading,
            reader_process=reader_process,
            warmup_seconds=WARMUP_SECONDS,
        )
        broker_cpu = (inst.cpu_seconds()[0] - cpu0) / (time.monotonic() - t0)
        before = window_between(inst, mark, marks[0]) or {}
        during = window_end(inst, marks[0]) or {}
        profiled = profilers[0].finish() if profilers else None
    finally:
        inst.stop()
        shutil.rmtree(root, ignore_errors=True)
    idle = res["producer_before"]["p99_ms"]
    busy = res["producer_during"]["p99_ms"]
    return {
        "complete": res["read"]["complete"],
        "MBps": round(res["MBps"], 1),
        "producer_p99_idle_ms": round(idle, 2),
        "producer_p99_during_ms": round(busy, 2),
        "ratio": round(busy / idle, 2) if idle else None,
        "loop_lag_p99_idle_ms": (before.get("loop_lag_ms") or {}).get("p99_max"),
        "loop_lag_p99_during_ms": (during.get("loop_lag_ms") or {}).get("p99_max"),
        "loop_cpu_lag_p99_idle_ms": (before.get("loop_cpu_lag_ms") or {}).get("p99_median"),
        "loop_cpu_lag_p99_during_ms": (during.get("loop_cpu_lag_ms") or {}).get("p99_median"),
        # The longest turn's CPU in the median second, and in the whole read.
        "loop_cpu_lag_max_idle_ms": (before.get("loop_cpu_lag_ms") or {}).get("max_median"),
        "loop_cpu_lag_max_during_ms": (during.get("loop_cpu_lag_ms") or {}).get("max_median"),
        "loop_cpu_lag_worst_during_ms": (during.get("loop_cpu_lag_ms") or {}).get("max"),
        # The broker's own Produce time (frame read to response written), median second.
        "broker_produce_p99_idle_ms": (before.get("produce_ms") or {}).get("p99_median"),
        "broker_produce_p99_during_ms": (during.get("produce_ms") or {}).get("p99_median"),
        # Where that time goes: each phase's p99 (queue, local, turn, remote, write).
        "broker_produce_phases_idle_ms": (before.get("produce_ms") or {}).get("phases_p99_median"),
        "broker_produce_phases_during_ms": (during.get("produce_ms") or {}).get(
            "phases_p99_median"
        ),
        "gc_pause_max_during_ms": during.get("gc_pause_max_ms"),
        # Catch-up chunks that waited for the live path's requests, and those forced.
        "turns_deferred_during": during.get("turns_deferred"),
        "turns_forced_during": during.get("turns_forced"),
        "gc_during": during.get("gc"),
        "broker_cpu": round(broker_cpu, 2),
        "loadavg_1m": os.getloadavg()[0],
        **({"profile": _loop_profile(profiled)} if profiled else {}),
    }


def _loop_profile(profiled: dict[str, Any]) -> dict[str, Any]:
    """The event loop's share of wall time and its top frames (own and inclusive %)."""
    if "error" in profiled:
        return profiled
    return {
        "event_loop_busy": profiled["event_loop_busy"],
        "own": [(f["frame"], round(f["pct"], 1)) for f in profiled["event_loop_top_own"]],
        "inclusive": [
            (f["frame"], round(f["pct"], 1)) for f in profiled["event_loop_top_inclusive"]
        ],
    }


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=384, help="MiB loaded and read back")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", type=_variant, action="append", default=[])
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="wal.fsync=false: on a machine whose disk others share, the producer's p99 is"
        " otherwise their fdatasync latency more than the broker's",
    )
    parser.add_argument(
        "--reader-in-process",
        action="store_true",
        help="read in this process, beside the paced producer (as the bench did before)",
    )
    parser.add_argument(
        "--rate",
        type=int,
        default=RATE,
        help="the paced producer's messages/s: lower it where the broker's share of a"
        " loaded machine cannot keep up with 2,000 a second even with no read",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of every variant's broker (e.g. response.send.threads=0)",
    )
    parser.add_argument("--out", type=Path, help="write every run as JSON here")
    parser.add_argument(
        "--profile", type=Path, help="py-spy each read into this directory (event loop's top)"
    )
    args = parser.parse_args()
    variants: list[tuple[str, Path | None]] = args.variant or [("this", None)]
    for _, source in variants:
        if source is not None:
            compileall.compile_dir(source / "contextplane", quiet=1)
    values = workloads.make_values(1024)
    settings = {"wal.fsync": "false"} if args.no_fsync else {}
    settings.update(item.split("=", 1) for item in args.set)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    tmp = Path(tempfile.mkdtemp(prefix="catchup-fairness-"))
    try:
        for round_no in range(args.rounds):
            turn = variants[round_no % len(variants) :] + variants[: round_no % len(variants)]
            for name, source in turn:
                profile = args.profile / f"pyspy-{round_no}-{name}.txt" if args.profile else None
                result = one_run(
                    tmp / f"{round_no}-{name}",
                    source,
                    args.mib,
                    values,
                    settings,
                    profile,
                    reader_process=not args.reader_in_process,
                    rate=args.rate,
                )
                runs[name].append(result)
                print(f"round {round_no} {name}: {json.dumps(result)}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("medians:")
    for name, results in runs.items():
        keys = (
            "ratio",
            "producer_p99_idle_ms",
            "producer_p99_during_ms",
            "loop_lag_p99_idle_ms",
            "loop_lag_p99_during_ms",
            "loop_cpu_lag_p99_idle_ms",
            "loop_cpu_lag_p99_during_ms",
            "loop_cpu_lag_max_idle_ms",
            "loop_cpu_lag_max_during_ms",
            "loop_cpu_lag_worst_during_ms",
            "broker_produce_p99_idle_ms",
            "broker_produce_p99_during_ms",
            "gc_pause_max_during_ms",
            "turns_deferred_during",
            "turns_forced_during",
            "MBps",
            "broker_cpu",
        )
        print(f"  {name}: " + ", ".join(f"{k}={_median(results, k)}" for k in keys))
        for when in ("idle", "during"):
            phases = [r[f"broker_produce_phases_{when}_ms"] for r in results]
            phases = [p for p in phases if p]
            if phases:
                medians = {k: _median(phases, k) for k in phases[0]}
                print(f"    broker produce p99 by phase, {when}: {medians}")
    if args.out is not None:
        args.out.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
