"""The object store's own read speed for the catch-up's objects, without the broker.

4 MiB ranged GETs (from offset 0) of the retained objects through obstore, as the broker
issues them: one at a time (the figure kept from earlier runs), and with 8 in flight
over the same objects (the concurrency of the broker's coalesced reads, so "0.8 × store"
compares like with like). The page cache is emptied before each pass, so neither pass
reads what the other left cached.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

MIB = 1024 * 1024
GET_BYTES = 4 * MIB
IN_FLIGHT = 8
KEYS_MAX = 48  # 6 rounds of 8 in flight
OBJECT_SUFFIX = ".obj"  # storage/object_format.py: every object key ends so


def object_keys(store: Any, count: int = KEYS_MAX) -> list[str]:
    """Up to `count` object keys of the store (relative to its prefix), sorted."""
    import obstore

    keys: list[str] = []
    for chunk in obstore.list(store):
        # Objects only: a file:// store also lists the temporary `.part` file of a write
        # the broker has under way, gone by the time it would be read.
        keys.extend(item["path"] for item in chunk if item["path"].endswith(OBJECT_SUFFIX))
    return sorted(keys)[:count]


def _summary(samples_ms: list[float], total: int, seconds: float, in_flight: int) -> dict[str, Any]:
    samples_ms.sort()
    return {
        "gets": len(samples_ms),
        "in_flight": in_flight,
        "bytes": total,
        "MBps": total / seconds / 1e6 if seconds else None,
        "p50_ms": samples_ms[len(samples_ms) // 2] if samples_ms else None,
        "max_ms": samples_ms[-1] if samples_ms else None,
    }


def one_at_a_time(store: Any, keys: list[str]) -> dict[str, Any]:
    import obstore

    samples: list[float] = []
    total = 0
    t0 = time.monotonic()
    for key in keys:
        t1 = time.monotonic()
        data = obstore.get_range(store, key, start=0, length=GET_BYTES)
        samples.append((time.monotonic() - t1) * 1000)
        total += len(memoryview(data))
    return _summary(samples, total, time.monotonic() - t0, 1)


def concurrent(store: Any, keys: list[str], in_flight: int = IN_FLIGHT) -> dict[str, Any]:
    import obstore

    samples: list[float] = []
    sizes: list[int] = []

    async def run() -> float:
        gate = asyncio.Semaphore(in_flight)

        async def one(key: str) -> None:
            async with gate:
                t1 = time.monotonic()
                data = await obstore.get_range_async(store, key, start=0, length=GET_BYTES)
                samples.append((time.monotonic() - t1) * 1000)
                sizes.append(len(memoryview(data)))

        t0 = time.monotonic()
        await asyncio.gather(*(one(key) for key in keys))
        return time.monotonic() - t0

    seconds = asyncio.run(run())
    return _summary(samples, sum(sizes), seconds, in_flight)


def measure(store: Any, evict: Callable[[], object]) -> dict[str, Any]:
    """Both passes over the same objects, the page cache emptied before each."""
    keys = object_keys(store)
    evict()
    serial = one_at_a_time(store, keys)
    evict()
    parallel = concurrent(store, keys)
    evict()
    return {"one_at_a_time": serial, f"in_flight_{IN_FLIGHT}": parallel}
