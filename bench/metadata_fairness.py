"""Probe latency under Metadata load: how long one connection's ApiVersions waits while
four other connections loop full Metadata requests over 20,000 partitions.

    .venv/bin/python -m bench.metadata_fairness
    .venv/bin/python -m bench.metadata_fairness --tree before=/path/to/old/src --tree after=src

Each `--tree` runs a broker from that source tree (PYTHONPATH), all brokers loaded with
the same topics; the rounds alternate between them (run i of every tree before run i + 1
of any, order rotating), so load from other work on the machine is spread over the trees.
Prints one JSON line per round and a summary (median and p99 probe latency, Metadata
responses per second).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient

METADATA, API_VERSIONS, CREATE_TOPICS = 3, 18, 19


def _load_topics(bootstrap: str, topics: int, partitions: int) -> None:
    with RawClient(bootstrap) as client:
        client.sock.settimeout(600)
        # One CreateTopics may write at most 10,000 metadata records (Kafka's bound): a
        # topic record and one per partition.
        per_request = max(1, 10_000 // (partitions + 1))
        for first in range(0, topics, per_request):
            names = [f"t{i}" for i in range(first, min(topics, first + per_request))]
            response = client.request(
                CREATE_TOPICS,
                7,
                topics=[
                    {"name": n, "num_partitions": partitions, "replication_factor": -1}
                    for n in names
                ],
                timeout=600_000,
                validate_only=False,
            )
            assert all(t.error_code == 0 for t in response.topics), response


def _loader(bootstrap: str, stop: threading.Event, answered: list[int]) -> None:
    with RawClient(bootstrap) as client:
        client.sock.settimeout(600)
        while not stop.is_set():
            client.send(METADATA, 12, topics=None, allow_auto_topic_creation=False)
            client._pending.pop(0)
            client.read_frame()  # the load is on the broker: responses are not decoded
            answered[0] += 1


def measure(bootstrap: str, seconds: float, loaders: int) -> dict[str, Any]:
    stop = threading.Event()
    answered = [0]
    threads = [
        threading.Thread(target=_loader, args=(bootstrap, stop, answered)) for _ in range(loaders)
    ]
    for thread in threads:
        thread.start()
    latencies = []
    try:
        with RawClient(bootstrap) as probe:
            probe.sock.settimeout(600)
            while answered[0] < loaders:  # every loader has had a response
                time.sleep(0.01)
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                sent = time.monotonic()
                probe.request(
                    API_VERSIONS, 3, client_software_name="p", client_software_version="1"
                )
                latencies.append(time.monotonic() - sent)
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            counted = answered[0]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    latencies.sort()
    return {
        "probes": len(latencies),
        "median_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
        "metadata_per_s": round(counted / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.metadata_fairness")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=SRC")
    parser.add_argument("--topics", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--loaders", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree) or {"current": str(Path("src").resolve())}
    root = Path(tempfile.mkdtemp(prefix="fairness-"))
    brokers: dict[str, BrokerProcess] = {}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    saved = os.environ.get("PYTHONPATH")
    try:
        for name, src in trees.items():
            os.environ["PYTHONPATH"] = str(Path(src).resolve())
            brokers[name] = BrokerProcess(root / name).start()
            _load_topics(brokers[name].bootstrap, args.topics, args.partitions)
        names = list(trees)
        for round_ in range(args.rounds):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                result = measure(brokers[name].bootstrap, args.seconds, args.loaders)
                results[name].append(result)
                print(json.dumps({"tree": name, "round": round_, **result}), flush=True)
    finally:
        for broker in brokers.values():
            broker.stop()
        shutil.rmtree(root, ignore_errors=True)
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    for name, rounds in results.items():
        summary = {
            key: statistics.median(r[key] for r in rounds)
            for key in ("median_ms", "p99_ms", "metadata_per_s")
        }
        print(json.dumps({"tree": name, "summary_over_rounds": summary}))


if __name__ == "__main__":
    main()
