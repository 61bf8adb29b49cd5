"""Produce latency with the object WAL (`wal.url`) against the store's own PUT latency,
measured in the same run.

    .venv/bin/python -m bench.object_wal_latency [--rounds 3] [--seconds 10] [--rate 1000]

One SeaweedFS (`weed mini` on loopback) and two brokers on it: one with the object WAL on
the bucket, one with the local WAL (for reference). Each round, in turn: a paced
confluent-kafka producer (acks=all, idempotent, linger 0, 200-byte values, `--rate`
msg/s for `--seconds`) against each broker, taking librdkafka's own per-message latency
(produce() to delivery report; the producer has connected and got its producer id
before the first timed message); then PUTs straight to the store through obstore, paced
at `--rate` for `--seconds` (the object WAL's own PUT rate at linger 0: a request a
message, a PUT a request), each the size of the object WAL's average object in its
latest phase (read from its keys), alone (`puts_*`) and in a thread beside the object-WAL
producer (`puts_beside_*`: the store's PUTs under the load the broker's PUTs see). The
order of the three phases rotates between rounds, so load from other work falls on all
alike. Prints one JSON line per round, then the medians and the ratio the issue sets a
goal for: object-WAL produce p99 / PUT p99 (≤ 2), against either PUT figure.

SeaweedFS on loopback does not fsync and answers in milliseconds: the figures are a
ratio, not a durability claim.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import obstore
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.storage.object_wal_names import parse_key
from tests.support.broker import BrokerProcess
from tests.support.seaweedfs import SeaweedFS

VALUE_BYTES = 200


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _produce(bootstrap: str, topic: str, rate: float, seconds: float) -> list[float]:
    """Per-message latency (ms) of a paced producer."""
    latencies: list[float] = []

    def report(err: Any, message: Any) -> None:
        if err is None:
            latencies.append(message.latency() * 1000)

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
        }
    )
    value = b"v" * VALUE_BYTES
    # Connection, metadata and producer id first: not part of any message's latency.
    producer.produce(topic, value=value)
    assert producer.flush(30) == 0
    count = int(rate * seconds)
    start = time.monotonic()
    for i in range(count):
        due = start + i / rate
        while (delay := due - time.monotonic()) > 0:
            producer.poll(delay)
        producer.produce(topic, value=value, on_delivery=report)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert len(latencies) == count, f"{count - len(latencies)} not acknowledged"
    return latencies


def _wal_object_bytes(seaweedfs: SeaweedFS, prefix: str, seen: set[str]) -> float:
    """The average size of the WAL objects written since `seen` (from their names)."""
    sizes = []
    for key in seaweedfs.list_keys(prefix, under=None):
        if key in seen:
            continue
        seen.add(key)
        obj = parse_key(key)
        if obj is not None:
            sizes.append(obj.end - obj.start)
    return statistics.mean(sizes) if sizes else 4096.0


def _puts(seaweedfs: SeaweedFS, size: int, rate: float, seconds: float) -> list[float]:
    """PUT latency (ms) of objects of `size` bytes, paced at `rate` a second (the object
    WAL's PUT rate: with linger 0 each message is a request and each request a PUT), one
    after another when a PUT outlasts its slot."""
    store = seaweedfs.store(f"bench-puts-{uuid.uuid4().hex[:8]}")
    body = b"p" * size
    latencies = []
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        if (delay := start + i / rate - time.monotonic()) > 0:
            time.sleep(delay)
        began = time.monotonic()
        obstore.put(store, f"{i:08d}", body, use_multipart=False)
        latencies.append((time.monotonic() - began) * 1000)
    return latencies


def _puts_into(
    out: list[float], seaweedfs: SeaweedFS, size: int, rate: float, seconds: float
) -> None:
    out.extend(_puts(seaweedfs, size, rate, seconds))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of both brokers (e.g. upload.interval.ms=600000: no upload or WAL trim)",
    )
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    with tempfile.TemporaryDirectory(prefix="objwal-bench-") as tmp:
        root = Path(tmp)
        seaweedfs = SeaweedFS(root / "weed").start()
        wal_prefix = "bench/wal"
        brokers = {
            "object_wal": BrokerProcess(
                root / "object-wal",
                object_store=seaweedfs.url_for("bench/data-object-wal"),
                settings={"wal.url": seaweedfs.url_for(wal_prefix), **extra},
            ),
            "local_wal": BrokerProcess(
                root / "local-wal",
                object_store=seaweedfs.url_for("bench/data-local-wal"),
                settings=extra,
            ),
        }
        rows: list[dict[str, Any]] = []
        try:
            for broker in brokers.values():
                broker.start()
                admin = AdminClient({"bootstrap.servers": broker.bootstrap})
                admin.create_topics([NewTopic("latency", 1)])["latency"].result(15)
            seen: set[str] = set()
            # A warm-up of the object WAL gives the PUT size of a round the PUTs open.
            _produce(brokers["object_wal"].bootstrap, "latency", args.rate, 2)
            object_bytes = _wal_object_bytes(seaweedfs, wal_prefix, seen)
            phases = ["object_wal", "puts", "local_wal"]
            for round_ in range(args.rounds):
                row: dict[str, Any] = {"round": round_}
                order = phases[round_ % 3 :] + phases[: round_ % 3]
                for phase in order:
                    if phase == "puts":
                        size = int(object_bytes)
                        samples = _puts(seaweedfs, size, args.rate, args.seconds)
                        row["put_object_bytes"] = size
                    else:
                        bootstrap = brokers[phase].bootstrap
                        beside: list[float] = []
                        if phase == "object_wal":  # the store's PUTs under the same load
                            puts = threading.Thread(
                                target=_puts_into,
                                args=(
                                    beside,
                                    seaweedfs,
                                    int(object_bytes),
                                    args.rate,
                                    args.seconds,
                                ),
                            )
                            puts.start()
                        samples = _produce(bootstrap, "latency", args.rate, args.seconds)
                        if phase == "object_wal":
                            puts.join()
                            row["puts_beside_p50_ms"] = round(_pct(beside, 0.5), 2)
                            row["puts_beside_p99_ms"] = round(_pct(beside, 0.99), 2)
                            object_bytes = _wal_object_bytes(seaweedfs, wal_prefix, seen)
                    row[f"{phase}_p50_ms"] = round(_pct(samples, 0.5), 2)
                    row[f"{phase}_p99_ms"] = round(_pct(samples, 0.99), 2)
                    row[f"{phase}_count"] = len(samples)
                row["ratio_p99"] = round(row["object_wal_p99_ms"] / row["puts_p99_ms"], 2)
                row["ratio_p99_beside"] = round(
                    row["object_wal_p99_ms"] / row["puts_beside_p99_ms"], 2
                )
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            for broker in brokers.values():
                broker.stop()
            seaweedfs.stop()
        medians = {
            key: statistics.median(r[key] for r in rows)
            for key in rows[0]
            if key != "round" and isinstance(rows[0][key], (int, float))
        }
        print(json.dumps({"medians": medians}), flush=True)


if __name__ == "__main__":
    main()
