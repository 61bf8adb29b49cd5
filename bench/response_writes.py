"""The event loop's longest turns while a connection writes large Fetch-sized responses.

A real listener on uvloop (as the broker runs) answers each request of one client with a
64 MiB response of 256 KiB parts (a Fetch response's record chunks); the client reads
them on a thread as fast as it can, as a consumer does. A 1 ms timer on the loop records,
each time it runs, the loop thread's CPU time since it was asked for: the work that
delayed it, not the time the thread waited for a core (the machine is shared). Reported:
MB/s, how many times the timer ran, and that CPU lag's p99, mean of the 5 largest and max.

`--mode sliced` is the broker's writer (`broker/response_slices.py`: 1 MiB slices, 1 MiB
high-water mark); `--mode whole` hands the transport each response at once with the
8 MiB high-water mark it had before. Run both back to back, several times:

    .venv/bin/python -m bench.response_writes --mode whole
    .venv/bin/python -m bench.response_writes --mode sliced
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import time
from typing import Any

import uvloop

from contextplane.broker import server
from contextplane.broker.connections import ConnectionQuotas, RequestMemory
from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.listener import Listener, SharedLimits
from contextplane.settings import Settings
from contextplane.storage.memory import MemoryBudget
from tests.support.bare_pipeline import bare_pipeline

API_KEY = 18  # ApiVersions v0: the smallest request to answer with the large body
PART_BYTES = 256 * 1024
PARTS = 256  # 64 MiB: librdkafka's default fetch.max.bytes
_PARTS = [memoryview(bytes(PART_BYTES)) for _ in range(PARTS)]
RESPONSE_BYTES = PART_BYTES * PARTS


async def _large(ctx: RequestContext, request: Any) -> Reply:
    head = struct.pack(">ii", RESPONSE_BYTES + 4, ctx.header.correlation_id)
    return Reply(body=[head, *_PARTS])


def _request(correlation_id: int) -> bytes:
    header = struct.pack(">hhih", API_KEY, 0, correlation_id, 1) + b"c"
    return struct.pack(">i", len(header)) + header


def _read_all(port: int, responses: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as client:
        for correlation_id in range(responses):
            client.sendall(_request(correlation_id))
            missing = RESPONSE_BYTES + 8
            while missing:
                got = len(client.recv(1 << 20))
                if not got:
                    raise ConnectionError("the listener closed the connection")
                missing -= got


async def _measure(responses: int) -> dict[str, float]:
    budget = MemoryBudget(total_bytes=512 * 1024 * 1024, log_cache_cap_bytes=0)
    pipeline = bare_pipeline(API_KEY, _large)
    shared = SharedLimits(
        ConnectionQuotas(100, 100, {}), RequestMemory(1024 * 1024), response_budget=budget
    )
    listener = Listener(pipeline, Settings(), shared=shared)
    await listener.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    lags: list[int] = []
    asked = [0]
    timer: list[asyncio.TimerHandle] = []

    def ask() -> None:
        asked[0] = time.thread_time_ns()
        timer[:] = [loop.call_later(0.001, ran)]

    def ran() -> None:
        lags.append(time.thread_time_ns() - asked[0])
        ask()

    ask()
    started = time.perf_counter()
    try:
        await asyncio.to_thread(_read_all, listener.port, responses)
    finally:
        seconds = time.perf_counter() - started
        timer[0].cancel()
        listener.close()
    lags.sort()
    return {
        "MBps": responses * RESPONSE_BYTES / seconds / 1e6,
        "timer_runs": len(lags),
        "cpu_lag_p99_ms": lags[min(len(lags) - 1, int(0.99 * len(lags)))] / 1e6,
        "cpu_lag_top5_mean_ms": sum(lags[-5:]) / len(lags[-5:]) / 1e6,
        "cpu_lag_max_ms": lags[-1] / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("sliced", "whole"), default="sliced")
    parser.add_argument("--responses", type=int, default=24)
    args = parser.parse_args()
    if args.mode == "whole":
        server._WRITE_SLICE_BYTES = 1 << 40  # one slice: the whole response at once
        server._WRITE_HIGH_WATER_BYTES = 8 * 1024 * 1024
    result = uvloop.run(_measure(args.responses))
    print(args.mode, " ".join(f"{k}={v:.2f}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main()
