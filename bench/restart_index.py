"""Restart time against the size of the object index (opt-in; not part of `bench.run`).

    python -m bench.restart_index --tmp /tmp/restart-index [--sizes 1,10,100]
        [--partitions 100] [--rounds 2] [--tree before=OLD/src --tree after=src]

For each size S (GiB) a broker (file:// objects, SQLite metadata) gets a topic of
`--partitions` partitions and a few real records in each, uploaded; then, with the broker
stopped, the metadata rows of S GiB of retained data are committed through the store's
own `commit_object`: 8 MiB objects (128 a GiB), each with one range of every partition,
offsets continuing each partition's log. Only the first objects exist in the object
store, so only the rows are at scale: the figure is metadata-scale, not bytes on disk.

Then the broker is started on a copy of that data directory and timed from process start
to (a) an acknowledged produce and (b) partition 0's first record fetched from offset 0
(`bench.workloads.time_to_serving`; serving = the later). Each `--tree` (a source tree,
run through `PYTHONPATH`, its bytecode compiled first as a wheel install has it) is
measured on its own copy of the same directory, the trees alternating round by round.
The metadata schema must be the same in every tree.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic

from bench.targets import compile_bytecode, free_port
from bench.workloads import _QUIET, time_to_serving
from contextplane.metadata.records import ObjectCommit, RangeCommit
from contextplane.metadata.store import open_metadata_store

TOPIC = "retained"
OBJECT_BYTES = 8 * 1024 * 1024
OBJECTS_PER_GIB = 1024 * 1024 * 1024 // OBJECT_BYTES
SETTINGS = {"object.compaction.enable": "false"}  # synthetic objects cannot be read
# Larger than the probe's max.partition.fetch.bytes: a fetch at offset 0 takes the real
# range only (a range is taken while the partition has read less than its limit).
REAL_VALUE = bytes(2048)


class Broker:
    """A broker process of one source tree on a data directory (`time_to_serving`'s
    instance: `start` returns at once, the probe waits for serving)."""

    def __init__(self, src: str, data_dir: Path, port: int) -> None:
        self.src = src
        self.data_dir = data_dir
        self.bootstrap = f"127.0.0.1:{port}"
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [sys.executable, "-m", "contextplane.cli.launch", "up", "--data-dir"]
        args += [str(self.data_dir), "--port", str(self.port)]
        for name, value in SETTINGS.items():
            args += ["--set", f"{name}={value}"]
        log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")  # noqa: SIM115
        env = {**os.environ, "PYTHONPATH": self.src}
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(300)


def wait_serving(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **_QUIET})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=1)
            return
        except ck.KafkaException:
            time.sleep(0.1)
    raise RuntimeError("the broker did not serve within 120 s")


def prepare(data_dir: Path, partitions: int, gib: int) -> int:
    """The data directory of `gib` GiB of (metadata-scale) retained data; returns the
    number of range rows."""
    port = free_port()
    broker = Broker(str(Path("src").resolve()), data_dir, port)
    data_dir.mkdir(parents=True)
    broker.start()
    try:
        wait_serving(broker.bootstrap)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap, **_QUIET})
        admin.create_topics([NewTopic(TOPIC, partitions, 1)])[TOPIC].result(30)
        producer = ck.Producer({"bootstrap.servers": broker.bootstrap, **_QUIET})
        failed: list[str] = []

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                failed.append(str(err))

        for partition in range(partitions):
            producer.produce(TOPIC, REAL_VALUE, partition=partition, on_delivery=delivered)
        assert producer.flush(60) == 0 and not failed, failed
    finally:
        broker.stop()  # a clean stop uploads what is pending
    return asyncio.run(commit_rows(data_dir, partitions, gib * OBJECTS_PER_GIB))


async def commit_rows(data_dir: Path, partitions: int, objects: int) -> int:
    store = open_metadata_store(f"sqlite:///{data_dir / 'metadata.db'}")
    await store.open()
    try:
        led = {p.stream_id: p for p in await store.partitions(TOPIC)}
        ends = {s: r.end_offset for s, r in (await store.range_summaries()).items()}
        assert set(led) <= set(ends), "the real records were not uploaded at the clean stop"
        offsets = {s: max(ends.get(s, 0), p.log_start_offset) for s, p in led.items()}
        range_bytes = OBJECT_BYTES // partitions
        now_ms = int(time.time() * 1000)
        for number in range(objects):
            ranges = []
            for position, stream_id in enumerate(sorted(led)):
                base = offsets[stream_id]
                offsets[stream_id] = base + 1000
                ranges.append(
                    RangeCommit(
                        stream_id, base, base + 1000, position * range_bytes, range_bytes, now_ms
                    )
                )
            commit = ObjectCommit(
                f"synthetic/{number:08d}.obj",
                OBJECT_BYTES,
                now_ms,
                ranges,
                {s: p.leader_epoch for s, p in led.items()},
                {},
            )
            outcome = await store.commit_object(commit)
            assert outcome.committed == set(led), outcome
        return objects * partitions
    finally:
        await store.close()


def measure(src: str, prepared: Path, scratch: Path) -> dict[str, Any]:
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(prepared, scratch)
    broker = Broker(src, scratch, free_port())
    try:
        # One small range per fetch: the real one at offset 0, not the synthetic after it.
        small = {"max.partition.fetch.bytes": 1024}
        return time_to_serving(broker, TOPIC, b"after restart", 600, small)
    finally:
        broker.stop()
        shutil.rmtree(scratch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tmp", type=Path, required=True)
    parser.add_argument("--sizes", default="1,10,100", help="GiB of retained metadata")
    parser.add_argument("--partitions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=SRC")
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree) or {"current": "src"}
    variants = {name: str(Path(src).resolve()) for name, src in trees.items()}
    for src in variants.values():
        compile_bytecode(Path(src))
    results = []
    for gib in [int(s) for s in args.sizes.split(",")]:
        prepared = args.tmp / f"prepared-{gib}"
        if prepared.exists():
            shutil.rmtree(prepared)
        started = time.monotonic()
        rows = prepare(prepared, args.partitions, gib)
        print(f"{gib} GiB: {rows} range rows committed in {time.monotonic() - started:.0f} s")
        serving: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, src in variants.items():
                result = measure(src, prepared, args.tmp / "run")
                print(f"  {name}: {json.dumps(result)}", flush=True)
                if result["serving_s"] is not None:
                    serving[name].append(result["serving_s"])
        medians = {name: statistics.median(v) for name, v in serving.items() if v}
        results.append({"gib": gib, "rows": rows, "serving_s": medians})
        print(f"  median serving: {medians}", flush=True)
        shutil.rmtree(prepared)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
