"""A write-ahead log in memory, for tests and the deterministic simulation.

`MemoryWal` keeps the `WriteAheadLog` contract (wal.py) with no thread and no file: a
flush takes every queued entry, "writes" it to the medium (`WalMedium`), waits
`sync_delay_ms` (an asyncio sleep, so virtual time in the simulation) and makes it
durable. Entry positions and sizes are those of the file WAL.

Faults are plain attributes, set by the test:

* `write_error` / `sync_error`: every write (sync) fails with this error while set; as in
  the file WAL, the failed entries are cut back and the log stays usable.
* `stall()` / `resume()`: flushes stop after the write, before the sync, until resumed (a
  sync that hangs); a crash meanwhile leaves those entries written but not durable.
* `WalMedium.capacity_bytes`: a write that does not fit fails with ENOSPC, as a full disk.

A crash is `WalMedium.crash(keep_unsynced)`: entries written but not yet durable survive
only as the prefix the caller keeps (a disk may have flushed some of its cache), and every
`MemoryWal` opened before the crash stops touching the medium (its process is gone). A
`MemoryWal` opened on the same medium afterwards recovers what survived.
"""

from __future__ import annotations

import asyncio
import bisect
import errno
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from contextplane.storage.file_wal import BATCH_OFFSET_IN_ENTRY
from contextplane.storage.wal import WalEntry, WalWriteError, pages_of

log = logging.getLogger(__name__)


class WalMedium:
    """What survives a crash: durable entries, and entries written but not yet synced."""

    def __init__(self, capacity_bytes: int = 1 << 62) -> None:
        self.capacity_bytes = capacity_bytes
        self.entries: list[WalEntry] = []  # durable, in position order
        self.unsynced: list[WalEntry] = []  # written after them, not yet durable
        self.end_position = 0  # after the last durable entry (kept across trims)
        self.used_bytes = 0  # entries held, durable or not
        self.generation = 0  # bumped by each crash

    def crash(self, keep_unsynced: int = 0) -> None:
        """The process died: keep the first `keep_unsynced` written-but-unsynced entries
        (they reached the disk anyway), lose the rest."""
        kept, lost = self.unsynced[:keep_unsynced], self.unsynced[keep_unsynced:]
        self.entries.extend(kept)
        if kept:
            self.end_position = kept[-1].end_position
        self.used_bytes -= sum(e.end_position - e.position for e in lost)
        self.unsynced = []
        self.generation += 1


class _MemoryRead:
    def __init__(self, batches: list[bytes]) -> None:
        self._batches = batches

    async def read(self) -> list[bytes]:
        return self._batches

    def close(self) -> None:
        pass


class MemoryWal:
    """`WriteAheadLog` (wal.py) on a `WalMedium`."""

    def __init__(self, medium: WalMedium | None = None, sync_delay_ms: float = 0) -> None:
        self.medium = medium if medium is not None else WalMedium()
        self.sync_delay_ms = sync_delay_ms
        self.write_error: OSError | None = None
        self.sync_error: OSError | None = None
        self.on_failure: Callable[[int, BaseException], None] | None = None
        self._generation = self.medium.generation
        self._running = asyncio.Event()
        self._running.set()
        self._pending: list[WalEntry] = []
        self._pending_waiters: list[asyncio.Future[None]] = []
        self._pending_bytes = 0
        self._flushing = False
        self._positions: list[int] = []  # of durable entries, parallel to medium.entries
        self.syncs = 0
        self.failures = 0

    # -- faults ------------------------------------------------------------------------

    def stall(self) -> None:
        """Hold every flush after its write, before its sync, until `resume`."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def alive(self) -> bool:
        """False once the medium crashed: this log's process is gone."""
        return self.medium.generation == self._generation

    # -- the WriteAheadLog interface ---------------------------------------------------

    def recover(self) -> Iterator[WalEntry]:
        medium = self.medium
        assert not medium.unsynced, "recover() after a crash, not on a live log"
        self._positions = [e.position for e in medium.entries]
        yield from list(medium.entries)

    def recover_pages(self) -> AsyncIterator[list[WalEntry]]:
        """`recover` in pages, as the storage engine reads every WAL."""
        return pages_of(self.recover())

    @property
    def end_position(self) -> int:
        return self.medium.end_position + self._pending_bytes

    @property
    def durable_position(self) -> int:
        return self.medium.end_position

    @property
    def start_position(self) -> int:
        entries = self.medium.entries
        return entries[0].position if entries else self.medium.end_position

    def append(
        self, stream_id: int, base_offset: int, batch: bytes
    ) -> tuple[int, asyncio.Future[None]]:
        position = self.end_position
        size = BATCH_OFFSET_IN_ENTRY + len(batch)
        self._pending.append(WalEntry(position, position + size, stream_id, base_offset, batch))
        self._pending_bytes += size
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_waiters.append(waiter)
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush_loop())
        return position, waiter

    def open_batches(self, batches: Sequence[tuple[int, int]]) -> _MemoryRead:
        found = []
        entries = self.medium.entries
        for position, size in batches:
            index = bisect.bisect_left(self._positions, position)
            if index == len(entries) or entries[index].position != position:
                raise WalWriteError(f"WAL entry at {position} is not in the log")
            batch = entries[index].batch
            if len(batch) != size:
                raise WalWriteError(f"WAL entry at {position} holds {len(batch)} bytes, not {size}")
            found.append(batch)
        return _MemoryRead(found)

    def trim(self, position: int, reclaim_active: bool = False) -> int:
        """Entries are trimmed one by one (no segments), as far as `position` allows."""
        entries = self.medium.entries
        count = 0
        while count < len(entries) and entries[count].end_position <= position:
            count += 1
        if count:
            self.medium.used_bytes -= sum(e.end_position - e.position for e in entries[:count])
            del entries[:count]
            del self._positions[:count]
        return count

    def free_bytes(self) -> int:
        return max(0, self.medium.capacity_bytes - self.medium.used_bytes)

    def close(self) -> None:
        pass

    # -- flushing ----------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        try:
            while self._pending and self.alive:
                entries, waiters = self._pending, self._pending_waiters
                self._pending, self._pending_waiters = [], []
                try:
                    await self._write_and_sync(entries)
                except OSError as exc:
                    if self.alive:
                        self._fail_pending(waiters, exc)
                    return
                if not self.alive:
                    return
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
        finally:
            self._flushing = False

    async def _write_and_sync(self, entries: list[WalEntry]) -> None:
        medium = self.medium
        size = sum(e.end_position - e.position for e in entries)
        if self.write_error is not None:
            raise self.write_error
        if medium.used_bytes + size > medium.capacity_bytes:
            raise OSError(errno.ENOSPC, "No space left on device (memory WAL)")
        medium.unsynced.extend(entries)
        medium.used_bytes += size
        await asyncio.sleep(self.sync_delay_ms / 1000)
        await self._running.wait()
        if not self.alive:
            return
        if self.sync_error is not None:
            self._cut_unsynced()
            raise self.sync_error
        medium.entries.extend(medium.unsynced)
        self._positions.extend(e.position for e in medium.unsynced)
        medium.unsynced = []
        medium.end_position = entries[-1].end_position
        self._pending_bytes -= size
        self.syncs += 1

    def _cut_unsynced(self) -> None:
        medium = self.medium
        medium.used_bytes -= sum(e.end_position - e.position for e in medium.unsynced)
        medium.unsynced = []

    def _fail_pending(self, waiters: list[asyncio.Future[None]], exc: BaseException) -> None:
        """As the file WAL: fail every entry past the durable end and tell the owner."""
        self.failures += 1
        waiters = waiters + self._pending_waiters
        self._pending, self._pending_waiters, self._pending_bytes = [], [], 0
        log.warning("memory WAL write failed (%s); %d appends failed", exc, len(waiters))
        if self.on_failure is not None:
            self.on_failure(self.medium.end_position, exc)
        error = WalWriteError(f"write-ahead log write failed: {exc}")
        error.errno = exc.errno if isinstance(exc, OSError) else None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()
