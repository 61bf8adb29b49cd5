"""Run every workload against every target given; write results.json and results.md.

    .venv/bin/python -m bench.run                       # standard profile, all targets
    .venv/bin/python -m bench.run --quick               # small data, every workload
    .venv/bin/python -m bench.run --profile smoke --targets contextplane-file
    .venv/bin/python -m bench.run --targets contextplane-file,kafka --out /tmp/bench-out

See bench/README.md for what each workload does and how each figure is measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench import limits as limits_mod
from bench import masking, pinning, registry_lookups, report, store_alone, workloads
from bench.isolation import measuring
from bench.object_reads import GetWindow, replay_one_partition
from bench.probes import (
    puts_of,
    rewrites_and_uploads,
    window_between,
    window_end,
    window_start,
)
from bench.profiler import Profiler
from bench.profiles import GIB, MIB, PROFILES, Profile
from bench.selection import WORKLOADS, parse_workloads, phases, skipped_keys
from bench.stats import spread
from bench.targets import TARGETS, Instance, Target
from tests.support.broker import BrokerProcess

ROOT = Path(__file__).resolve().parent.parent

# Phases each target takes part in. Kafka with flush=1 differs from Kafka only in the
# produce path, so it runs the produce workloads (its catch-up / restart / memory would
# repeat Kafka's at the cost of minutes). Masking and the schema registry are contextplane's
# alone, and the object store plays no part in them: one contextplane target measures them.
PHASES: dict[str, tuple[str, ...]] = {
    "contextplane-file": ("produce", "retained", "partitions", "masking", "registry"),
    "contextplane-s3": ("produce", "retained", "partitions"),
    "kafka": ("produce", "retained", "partitions"),
    "kafka-flush1": ("produce",),
    "tansu": ("produce", "retained", "partitions"),
}
WRITE_REQUESTS = ("PUT", "PUT_PART", "POST_CREATE_MULTIPART", "POST_COMPLETE_MULTIPART", "POST")
SKIPPED = "runs the produce workloads only: it is Kafka with a different flush policy"
ONLY_ON_CONTEXTPLANE = {
    "masking": "masked fetch is measured on contextplane-file only (no other target masks fields)",
    "registry": "measured on contextplane-file only (the registry is contextplane's)",
}


class Log:
    def __init__(self, path: Path) -> None:
        self.fh = path.open("a")
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        line = f"[{time.monotonic() - self.t0:7.1f}s] {message}"
        print(line, flush=True)
        self.fh.write(line + "\n")
        self.fh.flush()


def _rm(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _stop(instance: Instance | None, log: Log) -> None:
    if instance is None:
        return
    try:
        instance.stop()
    except Exception as exc:  # noqa: BLE001 - a broker that hangs on stop is killed
        log(f"  stop failed ({exc}); killing")
        with _suppress():
            pid = instance.pid
            if pid:
                os.kill(pid, 9)


class _suppress:  # noqa: N801 - tiny context manager
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


# -- phases ------------------------------------------------------------------------------


def phase_produce(
    targets: list[Target],
    prof: Profile,
    values: list[bytes],
    outs: dict[str, dict[str, Any]],
    ctx: dict[str, Any],
) -> None:
    """Throughput and latency for every target, interleaved: run i of every target before
    run i + 1 of any, in a rotating order, so load from other work on the machine is
    spread over all targets rather than landing on one."""
    log: Log = ctx["log"]
    chosen: frozenset[str] = ctx["workloads"]
    insts: dict[str, Instance] = {}
    try:
        for target in targets:
            out = outs[target.name]
            try:
                inst = target.instance("produce").start()
                insts[target.name] = inst
                created = workloads.create_topic(inst.bootstrap, "tput", prof.partitions, 60)
                if created["error"]:
                    raise RuntimeError(f"create topic: {created['error']}")
                if created["partitions_seen"] != prof.partitions:
                    out["notes"].append(
                        f"asked for {prof.partitions} partitions, Metadata shows "
                        f"{created['partitions_seen']}"
                    )
                for i in range(prof.latency_runs if "latency" in chosen else 0):
                    workloads.create_topic(inst.bootstrap, f"lat-{i}", prof.partitions, 60)
                if "latency" in chosen:
                    workloads.create_topic(inst.bootstrap, "lat-warm", prof.partitions, 60)
                workloads.produce_bulk(inst.bootstrap, "tput", prof.partitions, values, seconds=1)
                log(f"{target.name}: started for the produce workloads")
            except Exception as exc:  # noqa: BLE001 - reported; the other targets go on
                log(f"{target.name}: produce setup failed: {traceback.format_exc()}")
                for key in PHASE_RESULT_KEYS["produce"]:
                    out["errors"][key] = f"failed: {type(exc).__name__}: {exc}"
                if target.name in insts:
                    _stop(insts.pop(target.name), log)
        names = list(insts)
        tput: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for i in range(prof.throughput_runs if "throughput" in chosen else 0):
            for name in names[i % len(names) :] + names[: i % len(names)] if names else []:
                mark = window_start(insts[name])
                with measuring(insts[name], insts.values()):
                    cpu0 = insts[name].cpu_seconds()
                    res = workloads.produce_bulk(
                        insts[name].bootstrap,
                        "tput",
                        prof.partitions,
                        values,
                        seconds=prof.throughput_seconds,
                    )
                    cpu1 = insts[name].cpu_seconds()
                res["probes"] = window_end(insts[name], mark)
                res["broker_cpu"] = (cpu1[0] - cpu0[0]) / res["seconds"]
                res["store_cpu"] = (cpu1[1] - cpu0[1]) / res["seconds"]
                log(
                    f"  {name} throughput run {i + 1}: {res['MBps']:.1f} MB/s "
                    f"({res['msgs_per_s']:.0f} msg/s, failed {res['failed']}, cores used: "
                    f"client {res['client_cpu']:.2f}, broker {res['broker_cpu']:.2f}, "
                    f"store {res['store_cpu']:.2f})"
                )
                tput[name].append(res)
        for name in names if "throughput" in chosen else []:
            runs = tput[name]
            outs[name]["throughput"] = {
                "MBps": spread([r["MBps"] for r in runs]),
                "msgs_per_s": spread([r["msgs_per_s"] for r in runs]),
                "client_cpu": spread([r["client_cpu"] for r in runs]),
                "broker_cpu": spread([r["broker_cpu"] for r in runs]),
                "store_cpu": spread([r["store_cpu"] for r in runs]),
                "runs": [{k: v for k, v in r.items() if k != "per_partition"} for r in runs],
            }
        if ctx["profile_broker"]:
            for name in names:
                inst = insts[name]
                if not name.startswith("contextplane") or not inst.pid:
                    continue
                seconds = max(prof.throughput_seconds, 3.0)
                profiler = Profiler(inst.pid, ctx["out"] / f"pyspy-{name}-produce.txt", seconds)
                res = workloads.produce_bulk(
                    inst.bootstrap, "tput", prof.partitions, values, seconds=seconds
                )
                summary = profiler.finish()
                summary["MBps_while_profiled"] = res["MBps"]
                outs[name].setdefault("profiles", {})["produce"] = summary
                log(f"  {name} profiled produce run: {res['MBps']:.1f} MB/s")
        lat: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        plan = pinning.machine_split()
        warmups = _latency_warmups(insts, prof, values, plan, log) if "latency" in chosen else {}
        for i in range(prof.latency_runs if "latency" in chosen else 0):
            for name in names[i % len(names) :] + names[: i % len(names)] if names else []:
                mark = window_start(insts[name])
                with measuring(insts[name], insts.values()), _pinned(plan, insts[name]):
                    res = workloads.latency_run(
                        insts[name].bootstrap,
                        f"lat-{i}",
                        prof.partitions,
                        values,
                        prof.latency_rate,
                        prof.latency_seconds,
                    )
                res["probes"] = window_end(insts[name], mark)
                log(
                    f"  {name} latency run {i + 1}: produce p99 {res['produce']['p99_ms']:.2f} ms,"
                    f" e2e p99 {res['end_to_end']['p99_ms']:.2f} ms "
                    f"({res['produce']['count']}/{res['end_to_end']['count']} samples)"
                )
                lat[name].append(res)
        for name in names if "latency" in chosen else []:
            runs = lat[name]
            latency: dict[str, Any] = {
                kind: {
                    key: spread([r[kind][key] for r in runs])
                    for key in ("p50_ms", "p99_ms", "p999_ms", "max_ms")
                }
                for kind in ("produce", "end_to_end")
            }
            latency["runs"] = runs
            latency["warmup"] = warmups.get(name)
            latency["pinning"] = plan.describe()
            # The loop's lag beside the producer's p99 (worst second of each run).
            latency["loop_lag_p99_max_ms"] = spread(
                [
                    _get_path(r, "probes", "loop_lag_ms", "p99_max")
                    for r in runs
                    if _get_path(r, "probes", "loop_lag_ms", "p99_max") is not None
                ]
            )
            outs[name]["latency"] = latency
            insts[name].sample_rss()
            outs[name]["produce_phase_peak_rss_MB"] = insts[name].peak_rss_kb / 1024
    finally:
        for inst in insts.values():
            _stop(inst, log)
            _rm(inst.directory)


def _pinned(plan: pinning.Split, inst: Instance) -> Any:
    return pinning.pinned(plan, [inst.pid or 0, inst.store_pid() or 0])


def _latency_warmups(
    insts: dict[str, Instance], prof: Profile, values: list[bytes], plan: pinning.Split, log: Log
) -> dict[str, dict[str, Any]]:
    """One run of the latency load per target before the measured ones (a JVM's JIT, a
    broker's caches and connections warm), its figures kept apart from the rows."""
    warmups = {}
    for name, inst in insts.items():
        with measuring(inst, insts.values()), _pinned(plan, inst):
            res = workloads.latency_run(
                inst.bootstrap,
                "lat-warm",
                prof.partitions,
                values,
                prof.latency_rate,
                prof.latency_warmup_seconds,
            )
        warmups[name] = {
            key: res[key] for key in ("seconds", "sent", "failed", "produce", "end_to_end")
        }
        log(
            f"  {name} latency warm-up ({prof.latency_warmup_seconds:g} s, not recorded): "
            f"produce p99 {res['produce']['p99_ms']:.2f} ms, "
            f"e2e p99 {res['end_to_end']['p99_ms']:.2f} ms"
        )
    return warmups


def _pinning_note(plan: pinning.Split) -> str:
    if plan.reason is not None:
        return f"not pinned ({plan.reason})"
    return f"pinned to cores {sorted(plan.client)} and {sorted(plan.broker)}"


def _get_path(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _load(
    inst: Instance, topic: str, prof: Profile, values: list[bytes], have: int, want: int
) -> dict[str, Any]:
    if want <= have:
        return {"messages": 0, "bytes": 0, "seconds": 0.0, "MBps": 0.0, "failed": 0}
    res = workloads.produce_bulk(
        inst.bootstrap, topic, prof.partitions, values, total_bytes=want - have
    )
    if res["failed"]:
        raise RuntimeError(f"load failed for {res['failed']} messages: {res['first_error']}")
    return res


def _space_for(directory: Path, wanted: int, log: Log) -> int:
    free = shutil.disk_usage(directory).free
    # contextplane holds the WAL and the objects briefly; SeaweedFS keeps its own copy.
    budget = int(free / 2.5)
    if wanted > budget:
        log(f"  only {free / GIB:.1f} GiB free: scaling {wanted / GIB:.1f} GiB down")
        return max(budget // MIB * MIB, 64 * MIB)
    return wanted


def _store_alone(inst: Instance, out: dict[str, Any], log: Log) -> None:
    """The store's own read speed for the retained objects: one GET at a time, and 8 in
    flight (the broker's read concurrency), each pass after a page-cache eviction."""
    try:
        figures = store_alone.measure(inst.object_store(), inst.evict_page_cache)  # type: ignore[attr-defined]
        out["store_get"] = figures["one_at_a_time"]
        out["store_get_8"] = figures[f"in_flight_{store_alone.IN_FLIGHT}"]
    except Exception as exc:  # noqa: BLE001 - a side measurement only
        out["errors"]["store_get"] = f"failed: {type(exc).__name__}: {exc}"
        out["store_get"] = out["store_get_8"] = None
    log(f"  store alone, 4 MiB ranged GETs: one at a time {out['store_get']}")
    log(f"  store alone, 8 in flight: {out['store_get_8']}")


def phase_retained(
    target: Target, prof: Profile, values: list[bytes], out: dict[str, Any], ctx: dict[str, Any]
) -> None:
    log: Log = ctx["log"]
    chosen: frozenset[str] = ctx["workloads"]
    restarts = "restart" in chosen
    size = len(values[0])
    large = _space_for(target.root, prof.restart_large_bytes, log)
    if large != prof.restart_large_bytes:
        out["notes"].append(
            f"restart 'large' scaled to {large / GIB:.2f} GiB for lack of disk space"
        )
    small = min(prof.restart_small_bytes, large)
    catchup = min(prof.catchup_bytes, large)
    inst = target.instance("retained").start()
    restart: dict[str, Any] = {}
    if restarts:
        out["restart"] = restart
    try:
        bs = inst.bootstrap
        for topic in ("retained", "live"):
            created = workloads.create_topic(bs, topic, prof.partitions, 60)
            if created["error"]:
                raise RuntimeError(f"create topic {topic}: {created['error']}")
        loads = []
        have = 0
        if restarts:
            loads.append(_load(inst, "retained", prof, values, have, small))
            have = small
            log(f"  loaded {have / GIB:.2f} GiB at {loads[-1]['MBps']:.1f} MB/s")
        if restarts and target.keeps_data_across_restart:
            restart["small"] = workloads.time_to_serving(inst, "retained", values[0])
            restart["small"]["retained_bytes"] = have
            log(f"  restart with {have / GIB:.2f} GiB: {restart['small']}")
        loads.append(_load(inst, "retained", prof, values, have, catchup))
        have = max(have, catchup)
        messages = sum(r["messages"] for r in loads) + (
            1 if restarts and target.keeps_data_across_restart else 0  # the restart's message
        )
        if "catch-up" in chosen and target.keeps_data_across_restart:
            # A restart empties contextplane's log cache; eviction empties the page cache.
            restart["catchup"] = workloads.time_to_serving(inst, "retained", values[0])
            restart["catchup"]["retained_bytes"] = have
            messages += 1
            evicted = inst.evict_page_cache()
            log(f"  restarted, evicted {evicted / GIB:.2f} GiB from the page cache")
            if target.kind == "contextplane":
                _store_alone(inst, out, log)
        elif "catch-up" in chosen:
            out["notes"].append(
                "catch-up reads from the broker's memory: memory:// is its only storage engine"
            )
        if "catch-up" in chosen:
            profiler = None
            cpu0 = inst.cpu_seconds()
            mark = window_start(inst)
            read_marks: list[int | None] = []
            t_read = time.monotonic()
            if ctx["profile_broker"] and target.kind == "contextplane" and inst.pid:
                expected_s = max(3.0, have / (150 * 1e6))
                profiler = Profiler(
                    inst.pid, ctx["out"] / f"pyspy-{target.name}-catchup.txt", expected_s
                )
            res = workloads.catchup_run(
                bs,
                "retained",
                prof.partitions,
                messages,
                "live",
                values,
                prof.latency_rate,
                prof.catchup_before_seconds,
                timeout=max(120.0, have / (5 * 1e6)),
                during=lambda: read_marks.append(window_start(inst)),
            )
            # Loop lag, GC and memory beside the producer's p99, before and during the read.
            read_mark = read_marks[0] if read_marks else None
            res["probes_before"] = window_between(inst, mark, read_mark)
            res["probes_during"] = window_end(inst, read_mark)
            if profiler is not None:
                out.setdefault("profiles", {})["catchup"] = profiler.finish()
            cpu1 = inst.cpu_seconds()
            elapsed = time.monotonic() - t_read
            res["broker_cpu"] = (cpu1[0] - cpu0[0]) / elapsed
            res["store_cpu"] = (cpu1[1] - cpu0[1]) / elapsed
            res["retained_bytes"] = have
            out["catchup"] = res
            log(
                f"  catch-up {res['read']['bytes'] / GIB:.2f} GiB at {res['MBps']:.1f} MB/s "
                f"(complete={res['read']['complete']}, cores: broker {res['broker_cpu']:.2f}, "
                f"store {res['store_cpu']:.2f}); producer p99 "
                f"{res['producer_before']['p99_ms']:.2f} → "
                f"{res['producer_during']['p99_ms']:.2f} ms; loop lag p99 (worst second) "
                f"{_get_path(res, 'probes_before', 'loop_lag_ms', 'p99_max')} → "
                f"{_get_path(res, 'probes_during', 'loop_lag_ms', 'p99_max')} ms"
            )
        if restarts and target.keeps_data_across_restart:
            loads.append(_load(inst, "retained", prof, values, have, large))
            have = max(have, large)
            log(f"  loaded to {have / GIB:.2f} GiB at {loads[-1]['MBps']:.1f} MB/s")
            restart["large"] = workloads.time_to_serving(inst, "retained", values[0])
            restart["large"]["retained_bytes"] = have
            log(f"  restart with {have / GIB:.2f} GiB: {restart['large']}")
        elif restarts:
            reason = "memory:// storage engine keeps nothing across a restart"
            restart["small"] = {"na": reason}
            restart["large"] = {"na": reason}
        load_bytes = sum(r["bytes"] for r in loads)
        load_seconds = sum(r["seconds"] for r in loads)
        counts = inst.object_counts()
        out["retained"] = {
            "bytes": load_bytes,
            "load_MBps": load_bytes / load_seconds / 1e6 if load_seconds else None,
            "message_bytes": size,
            "object_counts": counts,
            "puts_per_gib": (counts["PUT"] / (load_bytes / GIB))
            if counts and "PUT" in counts and load_bytes
            else None,
        }
        inst.sample_rss()
        out["retained"]["peak_rss_MB"] = inst.peak_rss_kb / 1024
    finally:
        _stop(inst, log)
        _rm(inst.directory)


def phase_partitions(
    target: Target, prof: Profile, values: list[bytes], out: dict[str, Any], ctx: dict[str, Any]
) -> None:
    log: Log = ctx["log"]
    chosen: frozenset[str] = ctx["workloads"]
    full_read = bool({"object-requests", "peak-rss"} & chosen)
    replay = "replay" in chosen
    results: dict[str, Any] = {}
    counts = list(prof.partition_counts) if full_read else []
    if full_read:
        out["partitions"] = results
    if replay:
        if not target.keeps_data_across_restart:
            out["replay"] = {"na": "the storage engine keeps nothing across a restart"}
            replay = False
        elif prof.replay_partitions not in counts:
            counts.append(prof.replay_partitions)
    for count in counts:
        key = str(count)
        if count > 1000 and not target.has_object_store:
            results[key] = {"na": "object requests only (no object store); RSS asked at ≤1,000"}
            continue
        inst = target.instance(f"p{count}", count_objects=True).start()
        entry: dict[str, Any] = {"partitions": count, "counting": inst.object_counting}
        results[key] = entry
        killed = False
        try:
            bs = inst.bootstrap
            created = workloads.create_topic(bs, "parts", count, prof.partitions_create_timeout)
            entry["create_s"] = created["seconds"]
            entry["partitions_seen"] = created["partitions_seen"]
            if created["error"] or created["partitions_seen"] < count:
                reason = (
                    f"CreateTopics with {count:,} partitions not ready in "
                    f"{prof.partitions_create_timeout:.0f} s (Metadata shows "
                    f"{created['partitions_seen']})"
                )
                entry["create_error"] = created["error"]
                entry["na"] = reason
                entry.pop("create_s")
                log(f"  {count} partitions: {reason}")
                if target.kind == "contextplane" and inst.pid:
                    os.kill(inst.pid, 9)  # its event loop may be stuck creating partitions
                    killed = True
                continue
            before = inst.object_counts() or {}
            # The broker's own PUT count opens here: its first line after the topic exists.
            before_line = inst.probes.next_line(timeout=15) if inst.probes else None
            load = workloads.produce_bulk(
                bs, "parts", count, values, total_bytes=prof.partitions_bytes
            )
            entry["load"] = {k: v for k, v in load.items() if k != "per_partition"}
            expected = load["messages"]
            replay_here = replay and count == prof.replay_partitions
            ingested: dict[str, int] = {}
            if target.has_object_store or replay_here:
                # A clean stop uploads what is pending; a restart reads cold from objects.
                inst.stop()
                ingested = inst.object_counts() or {}
                # ... and closes on the clean stop's last line, written after its drain.
                final_line = inst.probes.final_line() if inst.probes else None
                opened, closed = puts_of(before_line), puts_of(final_line)
                if opened is not None and closed is not None:
                    entry["broker_puts"] = closed - opened
                    stored = ((final_line or {}).get("object_store") or {}).get("put_bytes")
                    entry["broker_put_bytes"] = stored  # the objects' bytes, since start
                entry.update(rewrites_and_uploads(before_line, final_line))
            if replay_here:
                res = replay_one_partition(
                    inst, "parts", count, load["per_partition"][0], timeout=600
                )
                out["replay"] = res
                log(
                    f"  replay of one partition of {count:,}: "
                    f"{res['read']['bytes'] / MIB:.1f} MiB at {res['MBps']:.1f} MB/s, "
                    f"GETs {res.get('gets')} ({res.get('gets_per_gib')} per GiB)"
                )
            if not full_read:
                continue
            before_start = inst.object_counts() or {}  # the replay's requests are its own
            mark = window_start(inst)
            if inst.pid is None:
                inst.start()
            window = GetWindow(inst).open(mark)
            after_start = inst.object_counts() or {}
            read = workloads.consume_all(bs, "parts", count, expected, timeout=600)
            entry["read"] = read
            counted = window.close()
            entry["probes"] = counted.pop("probes", None)
            after_read = inst.object_counts() or {}
            inst.sample_rss()
            entry["peak_rss_MB"] = inst.peak_rss_kb / 1024
            gib_in = load["bytes"] / GIB
            gib_out = read["bytes"] / GIB
            if target.has_object_store:
                puts: int | None
                if inst.object_counting.startswith("HTTP"):
                    # Every write-class request: a multipart upload is several requests.
                    puts = sum(
                        ingested.get(k, 0) - before.get(k, 0)
                        for k in WRITE_REQUESTS
                        if k in ingested
                    )
                    entry["objects_written"] = sum(
                        ingested.get(k, 0) - before.get(k, 0)
                        for k in ("PUT", "POST_COMPLETE_MULTIPART")
                    )
                else:
                    # The broker's count, not the files left: object compaction deletes
                    # the objects it merged.
                    puts = entry.get("broker_puts")
                # The target is on ingest: compaction's and the cleaner's rewrites (one
                # PUT each, counted by the broker) are reported apart.
                rewrites = entry.get("rewrite_puts")
                entry["puts_all"] = puts
                if puts is not None and rewrites is not None:
                    puts -= rewrites
                entry["puts"] = puts
                entry["puts_per_gib"] = puts / gib_in if puts is not None and gib_in else None
                entry["rewrite_puts_per_gib"] = (
                    rewrites / gib_in if rewrites is not None and gib_in else None
                )
                entry.update(counted)  # gets: the proxy's on s3://, the broker's on file://
                gets = counted.get("gets")
                entry["gets_per_gib"] = gets / gib_out if gets is not None and gib_out else None
                if inst.object_counting.startswith("HTTP"):
                    entry["startup_requests"] = {
                        k: after_start.get(k, 0) - before_start.get(k, 0)
                        for k in after_start
                        if not k.endswith("_bytes")
                    }
                entry["object_counts"] = after_read
            else:
                entry["puts_per_gib"] = {"na": inst.object_counting}
                entry["gets_per_gib"] = {"na": inst.object_counting}
            log(
                f"  {count} partitions: create {entry['create_s']:.1f} s, load "
                f"{load['MBps']:.1f} MB/s, read {read['MBps']:.1f} MB/s, PUT/GiB "
                f"{entry.get('puts_per_gib')} (+ rewrites {entry.get('rewrite_puts_per_gib')}; "
                f"uploads of {entry.get('upload_object_MiB_mean')} MiB mean), "
                f"GET/GiB {entry.get('gets_per_gib')}, "
                f"peak RSS {entry['peak_rss_MB']:.0f} MB"
            )
        except Exception as exc:  # noqa: BLE001 - one partition count failing is reported
            entry["na"] = f"failed: {type(exc).__name__}: {exc}"
            log(f"  {count} partitions failed: {traceback.format_exc()}")
        finally:
            if not killed:
                _stop(inst, log)
            _rm(inst.directory)


def phase_masking(
    target: Target, prof: Profile, values: list[bytes], out: dict[str, Any], ctx: dict[str, Any]
) -> None:
    """bench/masking.py: its own broker (SASL users, the registry beside it) under the
    target's directory, every format."""
    out["masking"] = masking.run(prof.masking_records, prof.masking_rounds, target.root / "masking")


def phase_registry(
    target: Target, prof: Profile, values: list[bytes], out: dict[str, Any], ctx: dict[str, Any]
) -> None:
    """bench/registry_lookups.py against a broker of its own under the target's directory."""
    broker = BrokerProcess(target.root / "registry-broker").start()
    try:
        out["registry"] = registry_lookups.measure(
            broker.bootstrap,
            prof.registry_schemas,
            seconds=prof.registry_seconds,
            rounds=prof.registry_rounds,
        )
    finally:
        broker.stop()


PHASE_FUNCS = {
    "retained": phase_retained,
    "partitions": phase_partitions,
    "masking": phase_masking,
    "registry": phase_registry,
}
PHASE_RESULT_KEYS = {
    "produce": ("throughput", "latency"),
    "retained": ("catchup", "restart", "retained"),
    "partitions": ("partitions", "replay"),
    "masking": ("masking",),
    "registry": ("registry",),
}


def new_result(target: Target, chosen: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "label": target.label,
        **target.describe(),
        "notes": [],
        "na": {},
        "errors": {},
        "seconds": {},
    }
    for phase, keys in PHASE_RESULT_KEYS.items():
        if phase not in PHASES[target.name]:
            for key in keys:
                out["na"][key] = "not run: " + ONLY_ON_CONTEXTPLANE.get(phase, SKIPPED)
    for key in skipped_keys(chosen):
        out["na"].setdefault(key, "not run: not among --workloads")
    if target.name == "tansu":
        out["notes"].append(
            "ListOffsets high watermarks are unreliable on Tansu: consumers start from explicit "
            "offsets and completion is counted by delivered messages, not by watermarks"
        )
    return out


def run_target_phases(
    target: Target, prof: Profile, out: dict[str, Any], ctx: dict[str, Any]
) -> None:
    """The per-target phases (retained data, partition counts), one target at a time."""
    log: Log = ctx["log"]
    for phase in ("retained", "partitions", "masking", "registry"):
        if phase not in PHASES[target.name] or phase not in phases(ctx["workloads"]):
            continue
        log(f"{target.name}: {phase}")
        t0 = time.monotonic()
        try:
            PHASE_FUNCS[phase](target, prof, ctx["values"], out, ctx)
        except Exception as exc:  # noqa: BLE001 - the run goes on; the error is reported
            log(f"{target.name}: {phase} failed: {traceback.format_exc()}")
            for key in PHASE_RESULT_KEYS[phase]:
                out["errors"].setdefault(key, f"failed: {type(exc).__name__}: {exc}")
        out["seconds"][phase] = time.monotonic() - t0


def _parse_targets(items: list[str]) -> list[str]:
    names: list[str] = []
    for item in items:
        for name in item.replace(",", " ").split():
            if name == "all":
                names.extend(TARGETS)
            elif name == "contextplane":
                names.extend(["contextplane-file", "contextplane-s3"])
            elif name not in TARGETS:
                raise SystemExit(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
            else:
                names.append(name)
    return list(dict.fromkeys(names)) or list(TARGETS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick profile (smoke run)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None)
    parser.add_argument(
        "--targets",
        nargs="*",
        default=[],
        help=f"any of {', '.join(TARGETS)} (comma or space separated; default all)",
    )
    parser.add_argument(
        "--workloads",
        nargs="*",
        default=[],
        help=f"any of {', '.join(WORKLOADS)} (comma or space separated; default all)",
    )
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument("--tmp", type=Path, default=None, help="where brokers keep data")
    parser.add_argument(
        "--profile-broker",
        action="store_true",
        help="sample contextplane with py-spy during an extra throughput run and the catch-up",
    )
    args = parser.parse_args(argv)
    prof = PROFILES[args.profile or ("quick" if args.quick else "standard")]
    names = _parse_targets(args.targets)
    chosen = parse_workloads(args.workloads)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = (args.out or ROOT / "bench" / "results" / f"{stamp}-{prof.name}").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.tmp is not None:
        Path(args.tmp).mkdir(parents=True, exist_ok=True)  # a new directory is fine
    tmp = Path(tempfile.mkdtemp(prefix="cp-bench-", dir=args.tmp))
    log = Log(out_dir / "run.log")
    t_start = time.monotonic()
    results: dict[str, Any] = {
        "meta": {
            "started": dt.datetime.now().isoformat(timespec="seconds"),
            "host": f"{platform.node()} ({os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GIB:.0f} GiB)",
            "python": sys.version.split()[0],
            "client": "librdkafka (confluent-kafka "
            f"{workloads.ck.version()[0]}, librdkafka {workloads.ck.libversion()[0]}) "
            "for every target",
            "targets": names,
            "workloads": [name for name in WORKLOADS if name in chosen],
            "tmp": str(tmp),
            "disk_free_GiB": shutil.disk_usage(tmp).free / GIB,
        },
        "profile": prof.as_dict(),
        "limits": None,
        "targets": {},
        "notes": [
            "Object requests: s3:// counted per HTTP request by tests/support/s3proxy.py in front "
            "of SeaweedFS, where 'PUTs' are all write requests (object PUTs, multipart part PUTs "
            "and their POSTs); file:// PUTs = the broker's own object store counter (debug probe "
            "lines, load to clean stop), also recorded on s3:// as `broker_puts`. PUTs per GiB "
            "ingested leave out the rewrites' PUTs (object compaction, the log cleaner: the "
            "broker's count, `rewrite_puts`, one PUT each); `puts_all` keeps them. One PUT per "
            "8 MiB upload would be 128 per GiB. GETs: s3:// per HTTP request; file:// the "
            "broker's own object store counter (debug probe lines), also recorded on s3:// "
            "as `broker_gets`.",
            "Probes (contextplane, `debug.probe.file`): loop lag = lateness of a 1 ms timer "
            "on the broker's event loop, p50/p99/max per second; GC pauses by generation; RSS "
            "beside the memory budget's used bytes. Per workload under `probes`.",
            "Peak RSS = VmHWM of the broker process (JVM for Kafka; SeaweedFS not included).",
            f"Latency rows: after one warm-up run of the same load per target "
            f"({prof.latency_warmup_seconds:g} s, `latency.warmup`, not in the rows); the "
            f"clients' settings are the same for every target (recorded per run); load client "
            f"and broker {_pinning_note(pinning.machine_split())}.",
            "Restart = SIGTERM (clean stop), then process start → first acknowledged produce "
            "and first fetched retained record (the later of the two). Kafka's figure "
            "includes JVM start and the harness's 0.25 s readiness poll.",
        ],
    }
    ctx = {
        "log": log,
        "out": out_dir,
        "profile_broker": args.profile_broker,
        "values": workloads.make_values(prof.message_bytes),
        "workloads": chosen,
    }
    log(f"profile {prof.name}, targets {names}, workloads {sorted(chosen)}")
    log(f"  out {out_dir}, tmp {tmp}")
    try:
        if "limits" in chosen:
            log("limits")
            results["limits"] = limits_mod.measure(
                tmp / "limits", prof.limit_write_bytes, prof.limit_fsyncs, prof.limit_tcp_bytes
            )
            results["limits"]["puts_per_gib_floor"] = GIB / (8 * MIB)
            log(f"  {json.dumps(results['limits'])}")
            _rm(tmp / "limits")
        targets = {name: Target(name, tmp / name) for name in names}
        for name, target in targets.items():
            results["targets"][name] = new_result(target, chosen)
        try:
            producers = [
                t
                for n, t in targets.items()
                if "produce" in PHASES[n] and "produce" in phases(chosen)
            ]
            log(f"produce workloads, interleaved: {[t.name for t in producers]}")
            t0 = time.monotonic()
            phase_produce(producers, prof, ctx["values"], results["targets"], ctx)
            for target in producers:
                results["targets"][target.name]["seconds"]["produce (all targets)"] = (
                    time.monotonic() - t0
                )
            _write(out_dir, results, t_start)
            for name, target in targets.items():
                try:
                    run_target_phases(target, prof, results["targets"][name], ctx)
                finally:
                    target.close()
                    _rm(target.root)
                _write(out_dir, results, t_start)
        finally:
            for target in targets.values():
                target.close()
    finally:
        _rm(tmp)
        results["meta"]["runtime_s"] = time.monotonic() - t_start
        _write(out_dir, results, t_start)
    log(f"done in {results['meta']['runtime_s']:.0f} s; results in {out_dir}")
    print(report.markdown(results))
    return 0


def _write(out_dir: Path, results: dict[str, Any], t_start: float) -> None:
    results["meta"]["runtime_s"] = time.monotonic() - t_start
    results["evaluation"] = report.evaluate(results)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (out_dir / "results.md").write_text(report.markdown(results))


if __name__ == "__main__":
    sys.exit(main())
