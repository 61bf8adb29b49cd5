"""Failover time: kill -9 of a broker → the first acknowledged produce to each of its
partitions, led elsewhere (issue #13 item 9, RFC 0004 §8).

    .venv/bin/python -m bench.cluster_failover [--rounds 3] [--session-ms 3000]
        [--modes object_wal,local_wal] [--store file|s3] [--partitions 12]

Per mode, three brokers on one PostgreSQL and one object store (`bench/cluster_setup.py`):
`object_wal` with `wal.url` on the store (any broker takes a dead one's partitions at
once, replaying its WAL), `local_wal` with the default local WAL and every partition
clean (all its records uploaded, `wal_dirty` = 0, waited for before the kill: a dirty
partition would wait for its broker's disk). Each round creates a fresh topic spread
over the three live brokers, produces 100 records to each partition, kills one broker
with SIGKILL (even rounds one that is not the controller, odd rounds the controller,
whose lease must lapse too before a new controller moves anything), and at once sends
one record to each of its partitions from an idempotent acks=all producer that was
already connected (`topic.metadata.refresh.interval.ms` 250, so the client's discovery
adds at most ~250 ms). Per partition: `claimed_s` (the kill → PostgreSQL names a live
leader, polled every 50 ms) and `served_s` (the kill → the record acknowledged). The
killed broker restarts on its data directory before the next round. The floor is
`broker.session.timeout.ms` (the lease must lapse before the controller moves anything),
so the figures are also given as a ratio to it, per mode and per kind of victim.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.cluster_setup import Cluster
from tests.e2e.test_cluster_failover import stored  # partition -> leader, target, dirty
from tests.support.wait import wait_until

RECORDS_PER_PARTITION = 100


def controller(url: str) -> int:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT node_id FROM controller").fetchone()
    return int(row[0]) if row else -1


def live(url: str) -> set[int]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT node_id FROM brokers WHERE state='live'").fetchall()
    return {r[0] for r in rows}


def create(cluster: Cluster, topic: str, partitions: int) -> dict[int, int]:
    """Create `topic` once every broker is live; partition -> its leader, once each is led
    where it is targeted."""
    nodes = set(cluster.brokers)
    wait_until(lambda: live(cluster.metadata_url) == nodes, 60, "every broker live")
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    wait_until(
        lambda: len(admin.list_topics(timeout=10).brokers) == len(nodes), 30, "brokers listed"
    )
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)

    def placed() -> bool:
        rows = stored(cluster.metadata_url, topic).values()
        return all(r["leader"] == r["target"] != -1 for r in rows)

    wait_until(placed, 60, "each partition led where targeted")
    return {p: r["leader"] for p, r in stored(cluster.metadata_url, topic).items()}


def producer(cluster: Cluster) -> Producer:
    return Producer(
        {
            "bootstrap.servers": cluster.bootstrap(),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
            "message.timeout.ms": 120_000,
            "topic.metadata.refresh.interval.ms": 250,
            "log_level": 2,  # not the dead broker's connection refusals
        }
    )


def one_round(cluster: Cluster, mode: str, index: int, partitions: int) -> dict[str, Any]:
    topic = f"failover-{mode}-{index}"
    led = create(cluster, topic, partitions)
    # Even rounds kill a broker that is not the controller, odd rounds the controller
    # (whose lease must lapse too before anything moves), when it leads some partition.
    leading = sorted(set(led.values()))
    holder = controller(cluster.metadata_url)
    others = [n for n in leading if n != holder] or leading
    victim = holder if index % 2 == 1 and holder in leading else others[index // 2 % len(others)]
    theirs = sorted(p for p, n in led.items() if n == victim)
    client = producer(cluster)
    for i in range(RECORDS_PER_PARTITION * partitions):
        client.produce(topic, value=b"r" * 512, partition=i % partitions)
        client.poll(0)
    assert client.flush(60) == 0, "records left unacknowledged before the kill"
    if mode == "local_wal":
        wait_until(
            lambda: all(r["dirty"] == 0 for r in stored(cluster.metadata_url, topic).values()),
            60,
            "every partition clean (uploaded)",
        )
    served: dict[int, float] = {}
    claimed: dict[int, float] = {}
    errors: list[str] = []

    def report(error: Any, message: Any) -> None:
        if error is not None:
            errors.append(str(error))
        else:
            served[message.partition()] = time.monotonic() - killed

    was_controller = controller(cluster.metadata_url) == victim
    cluster.brokers[victim].kill9()
    killed = time.monotonic()
    for p in theirs:
        client.produce(topic, value=b"after", partition=p, on_delivery=report)
    deadline = killed + 120

    def watch() -> None:
        # Until every claim is seen, not until the records are served: on a loaded
        # machine one poll of PostgreSQL can outlast the claim-to-served gap.
        while len(claimed) < len(theirs) and time.monotonic() < deadline:
            try:
                rows = stored(cluster.metadata_url, topic)
            except psycopg.Error:  # a slow or refused connection: poll again
                rows = {}
            for p, row in rows.items():
                if p in theirs and p not in claimed and row["leader"] not in (-1, victim):
                    claimed[p] = time.monotonic() - killed
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    while len(served) + len(errors) < len(theirs) and time.monotonic() < deadline:
        client.poll(0.02)
    watcher.join()
    client.flush(10)
    cluster.brokers[victim].start()
    cluster.wait_listed()
    return {
        "mode": mode,
        "round": index,
        "victim": victim,
        "victim_was_controller": was_controller,
        "partitions": theirs,
        "claimed_s": {str(p): round(s, 3) for p, s in sorted(claimed.items())},
        "served_s": {str(p): round(s, 3) for p, s in sorted(served.items())},
        "errors": errors,
    }


def summary(rows: list[dict[str, Any]], session_s: float) -> dict[str, Any]:
    """Per mode and kind of victim (`controller`, `broker`): the median and max over rounds
    of the time until the last of the victim's partitions, and the median / session."""
    out: dict[str, Any] = {}
    for mode in sorted({r["mode"] for r in rows}):
        for victim in ("controller", "broker"):
            mine = [
                r for r in rows
                if r["mode"] == mode and r["victim_was_controller"] == (victim == "controller")
            ]  # fmt: skip
            for kind in ("claimed_s", "served_s"):
                last = [max(r[kind].values()) for r in mine if r[kind]]
                if not last:
                    continue
                name = f"{mode}.{victim}.{kind}"
                out[f"{name}_median"] = round(statistics.median(last), 3)
                out[f"{name}_max"] = round(max(last), 3)
                out[f"{name}_median_per_session"] = round(statistics.median(last) / session_s, 2)
        out[f"{mode}.unserved"] = sum(
            len(r["partitions"]) - len(r["served_s"]) for r in rows if r["mode"] == mode
        )
    return out


def run(
    root: Path, modes: list[str], rounds: int, session_ms: int, store: str, partitions: int
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for mode in modes:
        cluster = Cluster(root / mode, store=store)
        cluster.settings = {"broker.session.timeout.ms": str(session_ms)}
        if mode == "object_wal":
            cluster.settings["wal.url"] = cluster.store_url("wal")
        cluster.start()
        try:
            for index in range(rounds):
                row = one_round(cluster, mode, index, partitions)
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            cluster.stop()
    return {
        "session_timeout_ms": session_ms,
        "store": store,
        "rounds": rows,
        "summary": summary(rows, session_ms / 1000),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_failover")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--session-ms", type=int, default=3000)
    parser.add_argument("--modes", default="object_wal,local_wal")
    parser.add_argument("--store", choices=("file", "s3"), default="s3")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--out", type=Path, help="write the result's JSON here too")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        result = run(Path(tmp), modes, args.rounds, args.session_ms, args.store, args.partitions)
    print(json.dumps({"summary": result["summary"]}), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
