"""Debug probes for the benchmark: off unless `debug.probe.file` names a file.

Once a second the broker appends one JSON line to that file: how late the event loop ran
a 1 ms timer (p50/p99/max over the second: work on the loop delays every connection by
that much; measured with `clock.elapsed_ns`, because uvloop's own clock counts whole
milliseconds and its timers fall due on whole milliseconds: below ~1 ms it is noise);
beside it the loop thread's CPU time between asking for that timer and running it
(`loop_cpu_lag`, the same statistics): the work on the loop that delayed it, without the
time the thread was not scheduled, which on a machine others share is most of the
lateness; the
garbage collector's pauses by generation, the broker's own time for the Produce requests
answered in that second (p50/p99/max from the frame read to the response written,
Kafka's TotalTimeMs: a producer's latency less the client's and the network's part),
the process's RSS beside the memory budget's used bytes, and the object store's
requests so far. A clean stop writes a last line
(`"final": true`) after storage has uploaded what it could, so the bench reads exact
request counts for the process's lifetime.

The probes cost a timer a millisecond and a file write a second: a benchmark's instrument,
never on in production. The bench enables them; nothing else reads the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, TextIO

from contextplane.broker.stats import BrokerStats
from contextplane.clock import Clock, elapsed_ns
from contextplane.storage.engine import StorageEngine
from contextplane.storage.objectstore import BoundedObjectStore

log = logging.getLogger(__name__)

# The timer the loop-lag probe asks for, and how often a line is written.
TICK_S = 0.001
REPORT_S = 1.0
_PRODUCE_KEY = 0
# A Produce's time in Kafka's request phases, as (start, end) indexes of its stats row
# (`RequestTimes.add`): waiting to be handled behind its connection's earlier requests
# (queue), the handler (local), waiting for the responses before it (turn), for its
# own durability (remote), and the write.
PRODUCE_PHASES = {
    "queue": (1, 2),
    "local": (2, 3),
    "turn": (3, 4),
    "remote": (4, 5),
    "write": (5, 6),
}
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class LagWindow:
    """The loop's lateness samples (seconds) of one reporting window."""

    __slots__ = ("_samples",)

    def __init__(self) -> None:
        self._samples: list[float] = []

    def add(self, lateness_s: float) -> None:
        self._samples.append(max(0.0, lateness_s))

    def take(self) -> dict[str, float | int | None]:
        """This window's count and p50/p99/max in ms; starts the next window."""
        samples, self._samples = sorted(self._samples), []
        if not samples:
            return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
        return {
            "count": len(samples),
            "p50_ms": percentile(samples, 0.50) * 1000,
            "p99_ms": percentile(samples, 0.99) * 1000,
            "max_ms": samples[-1] * 1000,
        }


class ProduceTimes:
    """The broker's Produce request times (`BrokerStats`) answered since the last take."""

    def __init__(self, stats: BrokerStats) -> None:
        self._stats = stats
        self._seen = self._count()

    def _count(self) -> int:
        times = self._stats.requests.get(_PRODUCE_KEY)
        return 0 if times is None else times.count

    def take(self) -> dict[str, Any]:
        """This window's count and p50/p99/max in ms (of the ones the ring still holds),
        and the p99 of each phase of a request's time (`PRODUCE_PHASES`)."""
        times = self._stats.requests.get(_PRODUCE_KEY)
        rows = times.rows_since(self._seen) if times is not None else []
        self._seen = self._count()
        if not rows:
            return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
        window = sorted((r[6] - r[1]) / 1e6 for r in rows)
        phases = {
            name: percentile(sorted((r[end] - r[start]) / 1e6 for r in rows), 0.99)
            for name, (start, end) in PRODUCE_PHASES.items()
        }
        return {
            "count": len(window),
            "p50_ms": percentile(window, 0.50),
            "p99_ms": percentile(window, 0.99),
            "max_ms": window[-1],
            "phases_p99_ms": phases,
        }


class GcPauses:
    """Every collection's generation and duration, via `gc.callbacks`, per window."""

    def __init__(self) -> None:
        self._started_ns = 0
        self._window: dict[str, dict[str, float]] = {}

    def install(self) -> None:
        gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started_ns = elapsed_ns()
            return
        self.record(info["generation"], (elapsed_ns() - self._started_ns) / 1e6)

    def record(self, generation: int, pause_ms: float) -> None:
        entry = self._window.setdefault(
            str(generation), {"count": 0, "total_ms": 0.0, "max_ms": 0.0}
        )
        entry["count"] += 1
        entry["total_ms"] += pause_ms
        entry["max_ms"] = max(entry["max_ms"], pause_ms)

    def take(self) -> dict[str, dict[str, float]]:
        """This window's pauses by generation; starts the next window."""
        window, self._window = self._window, {}
        return window


def rss_bytes() -> int | None:
    """The process's resident set now (Linux /proc), None elsewhere."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return None


def object_store_counts(storage: StorageEngine) -> dict[str, int]:
    """The object store's requests since start (empty for an unbounded test store), and
    which of its PUTs were rewrites (object compaction, the log cleaner) rather than
    ingest, with the uploads' objects and bytes (their average size)."""
    objects = storage.objects
    if not isinstance(objects, BoundedObjectStore):
        return {}
    return {
        "gets": objects.gets,
        "get_bytes": objects.get_bytes,
        "puts": objects.puts,
        "put_bytes": objects.put_bytes,
        "deletes": objects.deletes,
        "compaction_puts": storage.compactor.stats.objects_written,
        "cleaner_puts": storage.cleaner.stats.objects_written,
        "upload_objects": storage.uploader.objects_committed,
        "upload_object_bytes": storage.uploader.bytes_committed,
    }


def governor_counts(storage: StorageEngine) -> dict[str, int]:
    governor = storage.loop_governor
    return {"deferred": governor.deferred, "forced": governor.forced}


def log_object_store_counts(storage: StorageEngine) -> None:
    """One line at a clean stop: what the process asked of the object store."""
    counts = object_store_counts(storage)
    if counts:
        log.info(
            "object store requests since start: %d GETs (%d bytes), %d PUTs (%d bytes; %d"
            " object compaction's, %d the log cleaner's), %d DELETEs",
            counts["gets"],
            counts["get_bytes"],
            counts["puts"],
            counts["put_bytes"],
            counts["compaction_puts"],
            counts["cleaner_puts"],
            counts["deletes"],
        )


class Probes:
    """The loop-lag and reporting tasks and the GC callback, writing to `path`."""

    def __init__(self, path: Path, storage: StorageEngine, clock: Clock) -> None:
        self._path = path
        self._storage = storage
        self._clock = clock
        self._lag = LagWindow()
        self._cpu_lag = LagWindow()
        self._asked_cpu_ns = 0
        self._gc = GcPauses()
        self._file: TextIO | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._asked_ns = 0
        self._seq = 0
        self._produce: ProduceTimes | None = None

    def watch_requests(self, stats: BrokerStats) -> None:
        """Report the Produce request times of `stats` (once the request path exists)."""
        self._produce = ProduceTimes(stats)

    def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._path.open("a")
        self._gc.install()
        self._tasks = [asyncio.create_task(self._report(), name="probe-report")]
        self._ask_timer()
        log.info("debug probes write to %s each second", self._path)

    async def stop(self) -> None:
        """Stop the tasks and write the last line (call after storage has closed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._gc.uninstall()
        if self._file is not None:
            self._write(final=True)
            self._file.close()
            self._file = None

    def _ask_timer(self) -> None:
        # A bare callback, not a task sleeping: a thousand wake-ups a second stay cheap.
        self._asked_ns = elapsed_ns()
        self._asked_cpu_ns = time.thread_time_ns()
        self._timer = asyncio.get_running_loop().call_later(TICK_S, self._on_timer)

    def _on_timer(self) -> None:
        self._lag.add((elapsed_ns() - self._asked_ns) / 1e9 - TICK_S)
        self._cpu_lag.add((time.thread_time_ns() - self._asked_cpu_ns) / 1e9)
        self._ask_timer()

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(REPORT_S)
            self._write(final=False)

    def line(self, final: bool) -> dict[str, Any]:
        self._seq += 1
        budget = self._storage.budget
        return {
            "seq": self._seq,
            "pid": os.getpid(),
            "monotonic_ms": self._clock.monotonic_ms(),
            "final": final,
            "loop_lag": self._lag.take(),
            "loop_cpu_lag": self._cpu_lag.take(),
            "gc": self._gc.take(),
            "produce": None if self._produce is None else self._produce.take(),
            "rss_bytes": rss_bytes(),
            "budget_used_bytes": budget.used_bytes,
            "budget_total_bytes": budget.total_bytes,
            # Of the used bytes: responses connections hold until their clients read them.
            "budget_response_bytes": budget.response_bytes,
            # Requests read and not yet handled (the listeners hold them to a quarter).
            "budget_request_bytes": budget.request_bytes,
            "object_store": object_store_counts(self._storage),
            # Bulk work's turns since start (loop_governor.py): deferred, forced after the
            # longest wait.
            "governor": governor_counts(self._storage),
        }

    def _write(self, final: bool) -> None:
        assert self._file is not None
        try:
            self._file.write(json.dumps(self.line(final)) + "\n")
            self._file.flush()
        except OSError as exc:  # a full disk costs the probe its line, never the broker
            log.warning("debug probe line not written: %s", exc)
