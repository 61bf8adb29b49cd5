"""The write-ahead log's own thread: it writes and syncs one group commit at a time.

`loop.run_in_executor` per group commit cost the event loop a `ThreadPoolExecutor.submit`
(a work item, a concurrent future, the executor's lock and thread-count check) and an
asyncio future wrapping it, and queued the sync behind whatever else used the loop's
shared executor (WAL reads, `to_thread` calls). Here a commit is one `SimpleQueue.put`
(C code: it wakes the thread) and one `call_soon_threadsafe` back with the outcome.

The thread is started on the first commit and stopped by `stop` (it finishes the commit
in hand first). It does not own the log's state: `write` is the log's own method, and
the log hands it one commit at a time.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable

from contextplane.clock import elapsed_ns
from contextplane.latency_histogram import LatencyHistogram

log = logging.getLogger(__name__)

Done = Callable[[Exception | None], None]
_Job = tuple[list[bytes], asyncio.AbstractEventLoop, Done]


class SyncThread:
    def __init__(self, write: Callable[[list[bytes]], None], name: str = "wal-sync") -> None:
        self._write = write
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # Each group commit's write and sync (read by /metrics: contextplane_wal_sync).
        self.latency = LatencyHistogram()

    def submit(self, entries: list[bytes], loop: asyncio.AbstractEventLoop, done: Done) -> None:
        """Write `entries` on the thread; `done(error or None)` is then called on `loop`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._jobs.put((entries, loop, done))

    def stop(self) -> None:
        """Let the thread end after the commit in hand (does not wait for it)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            entries, loop, done = job
            error: Exception | None = None
            started = elapsed_ns()
            try:
                self._write(entries)
            except Exception as exc:  # the log fails the commit's appends on the loop
                error = exc
            self.latency.observe((elapsed_ns() - started) / 1e9)
            try:
                loop.call_soon_threadsafe(done, error)
            except RuntimeError:  # the loop is closed: nobody waits for this commit
                log.debug("write-ahead log commit finished after its loop closed")
