"""Micro-benchmark of the request path: small requests pipelined on one connection, and
produce throughput on one connection.

    .venv/bin/python -m bench.request_path
    .venv/bin/python -m bench.request_path --tree before=/path/to/old/src --tree after=src

Workloads, each on one fresh connection to an idle broker:

* `api_versions_per_s`: 10,000 ApiVersions v3 requests written back to back (a writer
  thread keeps the socket full while the reader takes the responses), requests per
  second from the first byte written to the last response read;
* `metadata_per_s`: the same with 10,000 Metadata v12 requests for one 1-partition topic;
* `produce_mb_per_s`: 300 Produce v9 requests (acks=all) of one 100-record batch of 1 KiB
  values each (about 100 kB a request, 30 MB in all) to a 1-partition topic, pipelined
  (the broker bounds what it reads by queued.max.request.bytes), MB of record batches per
  second; `produce_per_s` is the same in requests.

Beside each throughput, the broker's CPU time per request over the same workload
(`*_cpu_us`, user + system of all its threads, from /proc): on a shared machine the wall
clock measures the other work as much as the broker, its CPU time much less so.

Each `--tree` runs a broker from that source tree (PYTHONPATH), all started before the
first round; the rounds alternate between the trees (run i of every tree before run
i + 1 of any, order rotating), so load from other work on the machine falls on every tree
alike. Prints one JSON line per round, then the median per tree and, with two or more
trees, each tree's ratio to the first (throughput: above 1 is faster than the first;
CPU per request: below 1 is cheaper).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import statistics
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kio.serial import entity_reader, entity_writer

from conformance.wire import encode_batch
from contextplane.protocol.build import build
from contextplane.protocol.codec import request_schema, response_schema
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient

PRODUCE, METADATA, API_VERSIONS, CREATE_TOPICS = 0, 3, 18, 19
TOPIC = "request-path"
SMALL_REQUESTS = 10_000
PRODUCE_REQUESTS = 300
RECORDS_PER_BATCH = 100
VALUE_BYTES = 1024
METRICS = (
    "api_versions_per_s",
    "metadata_per_s",
    "produce_mb_per_s",
    "produce_per_s",
    "api_versions_cpu_us",
    "metadata_cpu_us",
    "produce_cpu_us",
)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sizes:
    small_requests: int = SMALL_REQUESTS
    produce_requests: int = PRODUCE_REQUESTS
    records_per_batch: int = RECORDS_PER_BATCH


def request_frame(api_key: int, version: int, correlation_id: int, fields: dict[str, Any]) -> bytes:
    schema = request_schema(api_key, version)
    head = struct.pack(">hhih", api_key, version, correlation_id, 5) + b"bench"
    if schema.__flexible__:
        head += b"\x00"
    buffer = io.BytesIO()
    entity_writer(schema)(buffer, build(schema, fields))
    payload = head + buffer.getvalue()
    return struct.pack(">i", len(payload)) + payload


def _read_exact(sock: socket.socket, view: memoryview) -> None:
    while view:
        received = sock.recv_into(view)
        if not received:
            raise ConnectionError("the broker closed the connection")
        view = view[received:]


def pipeline(
    bootstrap: str,
    frames: list[bytes],
    check: Callable[[int, bytes], None] | None = None,
) -> float:
    """Write `frames` back to back from a thread while reading every response in order;
    seconds from the first write to the last response. `check(i, response)` sees each
    response (without its size prefix)."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=120) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = b"".join(frames)
        failure: list[BaseException] = []

        def write() -> None:
            try:
                sock.sendall(data)
            except OSError as exc:  # the reader reports the closed connection
                failure.append(exc)

        writer = threading.Thread(target=write)
        size = bytearray(4)
        started = time.perf_counter()
        writer.start()
        try:
            for i in range(len(frames)):
                _read_exact(sock, memoryview(size))
                (length,) = struct.unpack(">i", size)
                response = bytearray(length)
                _read_exact(sock, memoryview(response))
                (correlation_id,) = struct.unpack_from(">i", response)
                if correlation_id != i:
                    raise AssertionError(f"response {i} has correlation id {correlation_id}")
                if check is not None:
                    check(i, bytes(response))
            elapsed = time.perf_counter() - started
        finally:
            writer.join()
        if failure:
            raise failure[0]
        return elapsed


def api_versions_frames(count: int) -> list[bytes]:
    fields = {"client_software_name": "bench", "client_software_version": "1"}
    return [request_frame(API_VERSIONS, 3, i, fields) for i in range(count)]


def metadata_frames(count: int) -> list[bytes]:
    fields = {"topics": [{"name": TOPIC}], "allow_auto_topic_creation": False}
    return [request_frame(METADATA, 12, i, fields) for i in range(count)]


def produce_frames(count: int, records: int) -> list[bytes]:
    value = (b"0123456789abcdef" * (VALUE_BYTES // 16 + 1))[:VALUE_BYTES]
    batch = encode_batch([value] * records, timestamp=int(time.time() * 1000))
    fields = {
        "transactional_id": None,
        "acks": -1,
        "timeout": 30_000,
        "topic_data": [{"name": TOPIC, "partition_data": [{"index": 0, "records": batch}]}],
    }
    return [request_frame(PRODUCE, 9, i, fields) for i in range(count)]


def _produce_ok(_i: int, response: bytes) -> None:
    body, _ = entity_reader(response_schema(PRODUCE, 9))(response, 5)  # header v1: one tag byte
    error = body.responses[0].partition_responses[0].error_code
    if error.value != 0:
        raise AssertionError(f"produce failed: {error!r}")


def create_topic(bootstrap: str, topic: str = TOPIC) -> None:
    with RawClient(bootstrap) as client:
        response = client.request(
            CREATE_TOPICS,
            7,
            topics=[{"name": topic, "num_partitions": 1, "replication_factor": -1}],
            timeout=60_000,
            validate_only=False,
        )
        if response.topics[0].error_code.value != 0:
            raise RuntimeError(f"topic not created: {response}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


def _timed(pid: int, work: Callable[[], float]) -> tuple[float, float]:
    """(wall seconds `work` reports, broker CPU seconds meanwhile)."""
    before = cpu_seconds(pid)
    elapsed = work()
    return elapsed, cpu_seconds(pid) - before


def measure(bootstrap: str, pid: int, sizes: Sizes) -> dict[str, float]:
    """One round of every workload. Throughput is wall-clock and suffers from whatever
    else runs on the machine; the broker's CPU time per request (`*_cpu_us`, from
    /proc, 10 ms ticks) much less so."""
    small = sizes.small_requests
    api_versions = api_versions_frames(small)
    api_versions_s, api_versions_cpu = _timed(pid, lambda: pipeline(bootstrap, api_versions))
    metadata = metadata_frames(small)
    metadata_s, metadata_cpu = _timed(pid, lambda: pipeline(bootstrap, metadata))
    produce = produce_frames(sizes.produce_requests, sizes.records_per_batch)
    produce_s, produce_cpu = _timed(pid, lambda: pipeline(bootstrap, produce, _produce_ok))
    batch_bytes = sizes.produce_requests * len(produce[0])  # frames: batch plus ~60 bytes
    return {
        "api_versions_per_s": round(small / api_versions_s, 1),
        "metadata_per_s": round(small / metadata_s, 1),
        "produce_mb_per_s": round(batch_bytes / produce_s / 1e6, 2),
        "produce_per_s": round(sizes.produce_requests / produce_s, 1),
        "api_versions_cpu_us": round(1e6 * api_versions_cpu / small, 1),
        "metadata_cpu_us": round(1e6 * metadata_cpu / small, 1),
        "produce_cpu_us": round(1e6 * produce_cpu / sizes.produce_requests, 1),
    }


def summarise(results: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Median of each metric per tree and, after the first tree, its ratio to the first."""
    medians = {
        name: {metric: statistics.median(r[metric] for r in rounds) for metric in METRICS}
        for name, rounds in results.items()
    }
    first = next(iter(medians))
    for name, figures in medians.items():
        if name != first:
            for metric in METRICS:
                figures[f"{metric}_ratio"] = round(figures[metric] / medians[first][metric], 3)
    return medians


def run(
    trees: dict[str, str], rounds: int, sizes: Sizes, root: Path
) -> dict[str, list[dict[str, float]]]:
    brokers: dict[str, BrokerProcess] = {}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    saved = os.environ.get("PYTHONPATH")
    try:
        for name, src in trees.items():
            os.environ["PYTHONPATH"] = str(Path(src).resolve())
            brokers[name] = BrokerProcess(root / name).start()
            create_topic(brokers[name].bootstrap)
        names = list(trees)
        for round_ in range(rounds):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                broker = brokers[name]
                assert broker.process is not None
                result = measure(broker.bootstrap, broker.process.pid, sizes)
                results[name].append(result)
                print(json.dumps({"tree": name, "round": round_, **result}), flush=True)
    finally:
        for broker in brokers.values():
            broker.stop()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.request_path")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=SRC")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--small-requests", type=int, default=SMALL_REQUESTS)
    parser.add_argument("--produce-requests", type=int, default=PRODUCE_REQUESTS)
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree) or {"current": str(Path("src").resolve())}
    root = Path(tempfile.mkdtemp(prefix="request-path-"))
    try:
        results = run(trees, args.rounds, Sizes(args.small_requests, args.produce_requests), root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for name, summary in summarise(results).items():
        print(json.dumps({"tree": name, "median_over_rounds": summary}))


if __name__ == "__main__":
    main()
