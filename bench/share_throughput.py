"""Share-group throughput: records per second acknowledged by 4 share consumers,
contextplane beside Apache Kafka 4.4 in one run.

    .venv/bin/python -m bench.share_throughput                 # 50,000 records, 3 rounds
    .venv/bin/python -m bench.share_throughput --records 5000 --targets contextplane-file

`--records` 1 KiB records are produced round-robin over a `--partitions` topic first.
Per round (target order rotating), a fresh share group (share.auto.offset.reset=earliest,
set with IncrementalAlterConfigs as in Kafka) gets `--consumers` confluent-kafka
`ShareConsumer`s, one process each (so the client's Python work is not serialized by one
GIL), explicit acknowledgement: every record delivered is ACCEPTed and each poll's batch
committed with commit_async; a record counts once the broker confirms its acknowledgement
(the acknowledgement commit callback). The consumers subscribe; once ShareGroupDescribe
shows every one of them holding partitions, all start polling at once (a consumer that
joined first would otherwise take every record); `records_per_s` = records ÷ (last
confirmation − first record delivered), `records_per_s_from_start` counts from the
moment they start polling. Every produced record must be confirmed exactly once
(`missing`, `duplicates`; `redelivered`: deliveries with a delivery count above 1). Beside it, the
broker's CPU time per 1,000 records over each round (group join included). Writes
`share-results.json` and `share-results.md` to `--out`.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

from bench import group_targets, workloads
from bench.targets import Instance

TOPIC = "share-throughput"
ROUND_TIMEOUT_S = 600.0

Key = tuple[int, int]  # (partition, offset)


def _consume(
    bootstrap: str,
    group: str,
    total: int,
    counter: Any,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    """One share consumer (a child process): ACCEPT everything until `total` records are
    confirmed across all consumers; puts what it saw on `out`."""
    from confluent_kafka import AcknowledgeType, ShareConsumer

    consumer = ShareConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "share.acknowledgement.mode": "explicit",
            **workloads._QUIET,
        }
    )
    confirmed: list[Key] = []
    errors: list[str] = []
    seen = {"first": None, "last_confirm": None, "delivered": 0, "redelivered": 0}

    def committed(offsets: dict[Any, set[int]], error: object) -> None:
        if error is not None:
            errors.append(str(error))
            return
        count = 0
        for partition, acked in offsets.items():
            confirmed.extend((partition.partition, offset) for offset in acked)
            count += len(acked)
        seen["last_confirm"] = time.monotonic()
        with counter.get_lock():
            counter.value += count

    consumer.set_acknowledgement_commit_callback(committed)
    consumer.subscribe([TOPIC])
    ready.release()
    go.wait()
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    try:
        while counter.value < total and time.monotonic() < deadline:
            batch = consumer.poll(0.1) or []
            for message in batch:
                if message.error() is not None:
                    errors.append(str(message.error()))
                    continue
                if seen["first"] is None:
                    seen["first"] = time.monotonic()
                seen["delivered"] += 1
                seen["redelivered"] += message.delivery_count() > 1
                consumer.acknowledge(message, AcknowledgeType.ACCEPT)
            if batch:
                consumer.commit_async()
    finally:
        consumer.close()
    out.put({**seen, "confirmed": confirmed, "errors": errors[:10]})


def produce(bootstrap: str, records: int, partitions: int) -> set[Key]:
    from confluent_kafka import Producer

    values = workloads.make_values(1024)
    where: set[Key] = set()
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20, **workloads._QUIET}
    )

    def delivered(error: object, message: Any) -> None:
        if error is None:
            where.add((message.partition(), message.offset()))

    for i in range(records):
        while True:
            try:
                producer.produce(
                    TOPIC, values[i % len(values)], partition=i % partitions, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120) or len(where) != records:
        raise RuntimeError(f"produced {len(where)} of {records}")
    return where


def earliest(bootstrap: str, group: str) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    entry = ConfigEntry(
        "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[entry])
    admin = AdminClient({"bootstrap.servers": bootstrap, **workloads._QUIET})
    admin.incremental_alter_configs([resource])[resource].result(30)


def _wait_assigned(bootstrap: str, group: str, members: int, timeout_s: float = 60) -> int:
    """Members holding partitions of the group's current assignment (ShareGroupDescribe),
    waited for until all `members` do: a consumer that joins late would otherwise find
    the first one holding every record. Partitions: at most one member each when there
    are fewer partitions than members."""
    from tests.support.rawclient import RawClient

    deadline = time.monotonic() + timeout_s
    assigned = 0
    while time.monotonic() < deadline:
        with RawClient(bootstrap) as client:
            described = client.call(77, 1, group_ids=[group], include_authorized_operations=False)
        group_described = described.groups[0]
        assigned = sum(
            1
            for m in group_described.members
            if m.member_epoch == group_described.assignment_epoch and m.assignment.topic_partitions
        )
        if assigned >= members:
            break
        time.sleep(0.2)
    return assigned


def one_round(bootstrap: str, group: str, produced: set[Key], consumers: int) -> dict[str, Any]:
    """Records/s acknowledged by `consumers` share consumers, and the exactly-once check."""
    earliest(bootstrap, group)
    ctx = multiprocessing.get_context("spawn")
    counter, ready, go, out = ctx.Value("q", 0), ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    args = (bootstrap, group, len(produced), counter, ready, go, out)
    procs = [ctx.Process(target=_consume, args=args, daemon=True) for _ in range(consumers)]
    for proc in procs:
        proc.start()
    for _ in procs:
        if not ready.acquire(timeout=120):
            raise RuntimeError("a share consumer did not start")
    assigned = _wait_assigned(bootstrap, group, consumers)
    started = time.monotonic()
    go.set()
    reports = [out.get(timeout=ROUND_TIMEOUT_S + 120) for _ in procs]
    for proc in procs:
        proc.join(60)
    counts = collections.Counter(key for r in reports for key in r["confirmed"])
    firsts = [r["first"] for r in reports if r["first"] is not None]
    lasts = [r["last_confirm"] for r in reports if r["last_confirm"] is not None]
    result: dict[str, Any] = {
        "records": len(produced),
        "consumers": consumers,
        "confirmed": sum(counts.values()),
        "missing": len(produced - counts.keys()),
        "unknown": len(counts.keys() - produced),
        "duplicates": sum(1 for n in counts.values() if n > 1),
        "delivered": sum(r["delivered"] for r in reports),
        "redelivered": sum(r["redelivered"] for r in reports),
        "members_assigned_at_start": assigned,
        "per_consumer": [len(r["confirmed"]) for r in reports],
        "errors": [e for r in reports for e in r["errors"]],
    }
    if firsts and lasts:
        result["seconds"] = max(lasts) - min(firsts)
        result["seconds_from_start"] = max(lasts) - started
        result["records_per_s"] = len(produced) / result["seconds"]
        result["records_per_s_from_start"] = len(produced) / result["seconds_from_start"]
    return result


def run(
    names: list[str], rounds: int, records: int, partitions: int, consumers: int, tmp: Path
) -> dict[str, Any]:
    t0 = time.monotonic()
    results: dict[str, Any] = {
        "meta": group_targets.meta(names),
        "settings": {
            "rounds": rounds,
            "records": records,
            "value_bytes": 1024,
            "partitions": partitions,
            "consumers": consumers,
            "processes": "one process per share consumer",
        },
        "runs": {n: [] for n in names},
    }
    insts: dict[str, Instance] = {}
    produced: dict[str, set[Key]] = {}
    try:
        for name in names:
            insts[name] = group_targets.start_with_topic(name, tmp, TOPIC, partitions)
            produced[name] = produce(insts[name].bootstrap, records, partitions)
            group_targets.log(
                f"{name}: started at {insts[name].bootstrap}, {records} records produced", t0
            )
        for i in range(rounds):
            for name in group_targets.rotated(names, i):
                cpu0 = insts[name].cpu_seconds()[0]
                res = one_round(insts[name].bootstrap, f"share-{i}", produced[name], consumers)
                # The broker's CPU (user + system) over the whole round, join included.
                cpu_ms = (insts[name].cpu_seconds()[0] - cpu0) * 1000
                res["broker_cpu_ms_per_1000"] = cpu_ms * 1000 / records
                results["runs"][name].append(res)
                brief = {k: v for k, v in res.items() if k != "errors" or v}
                group_targets.log(f"  round {i} {name}: {brief}", t0)
    finally:
        group_targets.stop_all(insts)
    group_targets.finish(results, t0)
    results["summary"] = summarize(results)
    return results


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key in ("records_per_s", "records_per_s_from_start", "broker_cpu_ms_per_1000"):
        rows.append({"metric": key, **group_targets.figure(results["runs"], key)})
    exact = {
        name: all(r["missing"] == r["duplicates"] == r["unknown"] == 0 for r in runs)
        for name, runs in results["runs"].items()
    }
    rows.append({"metric": "every record acknowledged exactly once", "exact": exact})
    return rows


def markdown(results: dict[str, Any]) -> str:
    names = results["meta"]["targets"]
    head = ["metric", *names] + (["contextplane ÷ Kafka"] if len(names) == 2 else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in results["summary"]:
        if "exact" in row:
            cells = [row["metric"], *("yes" if row["exact"][n] else "NO" for n in names)]
            cells += [""] if len(names) == 2 else []
        else:
            cells = [row["metric"], *(group_targets.fmt(row["medians"][n]) for n in names)]
            cells += [group_targets.fmt(row["ratio"])] if len(names) == 2 else []
        lines.append("| " + " | ".join(cells) + " |")
    meta, settings = results["meta"], results["settings"]
    lines += [
        "",
        f"{settings['consumers']} share consumers (processes), {settings['records']} records "
        f"of 1 KiB on {settings['partitions']} partitions, medians of {settings['rounds']} "
        f"interleaved rounds; " + group_targets.load_line(meta),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.share_throughput")
    parser.add_argument("--targets", default=",".join(group_targets.TARGET_NAMES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument("--tmp", type=Path, default=None, help="where brokers keep data")
    args = parser.parse_args(argv)
    names = [n for n in args.targets.split(",") if n]
    unknown = [n for n in names if n not in group_targets.TARGET_NAMES]
    if unknown or not names or args.records < 1 or args.consumers < 1:
        raise SystemExit(f"unknown targets {unknown} (or no records, no consumers)")
    return group_targets.run_and_write(
        args.out,
        args.tmp,
        "share",
        lambda tmp: run(names, args.rounds, args.records, args.partitions, args.consumers, tmp),
        markdown,
    )


if __name__ == "__main__":
    sys.exit(main())
