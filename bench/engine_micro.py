"""In-process micro-benchmark of the storage engine's hot path: append + read.

    .venv/bin/python -m bench.engine_micro                      # this tree, one run
    .venv/bin/python -m bench.engine_micro --compare OTHER_SRC  # interleaved with another tree

No broker, no network: the engine on a file WAL (without fdatasync, so the figure is the
engine's CPU cost, not the disk's) and an in-memory object store. Three figures:

* `append_per_s`: batches appended and made durable, 64 in flight at a time (group commit);
* `tail_read_per_s`: reads of the newest batches from the log cache;
* `catch_up_read_per_s`: reads from objects at random offsets of a partition with many
  uploaded ranges (the object index lookup; the bytes come from the block cache).

`--compare` runs this tree and `OTHER_SRC` (a `src` directory, e.g. of another commit)
alternately in fresh processes, `--rounds` times each, and prints the medians and the
ratio this/other (> 1: this tree is faster).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

APPENDS = 20_000
IN_FLIGHT = 64
READS = 20_000
RANGES = 2_000
CATCH_UP_READS = 5_000


def _batch(value_bytes: int) -> bytes:
    from tests.support.rawclient import record_batch

    return record_batch([b"v" * value_bytes])


async def _open(data_dir: Path, log_cache_bytes: int, topics: dict[str, int]) -> Any:
    from contextplane.settings import Settings
    from contextplane.storage.engine import StorageEngine
    from tests.support.metadata import open_store

    settings = Settings(
        data_dir=data_dir,
        object_store_url="memory://",
        wal_fsync=False,
        upload_interval_ms=3_600_000,
        upload_bytes=1 << 30,
        log_cache_bytes=log_cache_bytes,
    )
    metadata = await open_store(settings, topics)
    engine = StorageEngine(settings, metadata)
    await engine.open()
    return engine, metadata


async def _measure(data_dir: Path) -> dict[str, float]:
    from contextplane.protocol.records import split_batches

    engine, metadata = await _open(data_dir / "tail", 64 << 20, {"t": 4})
    batches = split_batches(_batch(1000), 1 << 20)
    partitions = [engine.partitions[("t", i)] for i in range(4)]
    started = time.perf_counter()
    for start in range(0, APPENDS, IN_FLIGHT):
        pending = [
            engine.append(partitions[i % 4], batches).durable
            for i in range(start, start + IN_FLIGHT)
        ]
        await asyncio.gather(*pending)
    append_s = time.perf_counter() - started
    tail = partitions[0]
    started = time.perf_counter()
    for i in range(READS):
        await engine.read(tail, tail.high_watermark - 1 - i % 64, 1 << 20)
    read_s = time.perf_counter() - started
    await engine.close()
    await metadata.close()

    # Many small objects on one partition, no log cache: reads at random offsets go to
    # the object index (the bytes then come from the block cache).
    engine, metadata = await _open(data_dir / "catchup", 0, {"c": 1})
    catchup = engine.partitions[("c", 0)]
    small = split_batches(_batch(10), 1 << 20)
    for _ in range(RANGES):
        await engine.append(catchup, small).durable
        await engine.upload_once()
    rng = random.Random(1)
    offsets = [rng.randrange(RANGES) for _ in range(CATCH_UP_READS)]
    for offset in range(RANGES):  # fill the block cache
        await engine.read(catchup, offset, 1)
    started = time.perf_counter()
    for offset in offsets:
        await engine.read(catchup, offset, 1)
    catch_up_s = time.perf_counter() - started
    await engine.close()
    await metadata.close()
    return {
        "append_per_s": APPENDS / append_s,
        "tail_read_per_s": READS / read_s,
        "catch_up_read_per_s": CATCH_UP_READS / catch_up_s,
    }


def run_once() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="engine-micro-") as tmp:
        return asyncio.run(_measure(Path(tmp)))


def _run_in(src: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(Path.cwd())]))
    output = subprocess.run(
        [sys.executable, "-m", "bench.engine_micro", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def compare(other_src: Path, rounds: int) -> dict[str, Any]:
    this_src = Path(__file__).resolve().parent.parent / "src"
    results: dict[str, list[dict[str, float]]] = {"this": [], "other": []}
    for _ in range(rounds):
        results["this"].append(_run_in(this_src))
        results["other"].append(_run_in(other_src))
    summary: dict[str, Any] = {}
    for key in results["this"][0]:
        this = statistics.median(r[key] for r in results["this"])
        other = statistics.median(r[key] for r in results["other"])
        summary[key] = {"this": round(this), "other": round(other), "ratio": round(this / other, 3)}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="another tree's src directory")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one run, as one JSON line")
    args = parser.parse_args()
    if args.compare is not None:
        print(json.dumps(compare(args.compare.resolve(), args.rounds), indent=2))
    else:
        print(json.dumps({k: round(v) for k, v in run_once().items()}))


if __name__ == "__main__":
    main()
