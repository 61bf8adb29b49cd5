"""The write-ahead log as the storage engine sees it.

An append is acknowledged once the WAL says it is durable. Two implementations ship:
`FileWal` (file_wal.py: segments on local disk, group commit with one fdatasync) and
`MemoryWal` (memory_wal.py: for tests and the simulation, with injectable faults), and
`ObjectWal` (object_wal.py: one object PUT per group commit, `wal.url`).

The contract every implementation keeps:

* `append` returns the entry's position at once and a future resolved when the entry is
  durable; futures resolve in append order.
* A failed write fails every entry not yet durable (those being written and those queued
  behind them), and `on_failure(position, error)` is told synchronously, before any other
  append can run, with the position of the first failed entry: the owner takes back the
  offsets it handed out. The log stays usable; the next append tries again.
* Positions only grow while a process runs (the local WALs keep them growing across
  restarts too); `recover_pages` yields the durable entries from the oldest one still
  kept, in position order and in pages (an object WAL reads them over the network),
  and then the log is open for appends.
* `trim(position)` may delete entries wholly before `position`, never one at or after it.
* `open_batches` pins the bytes of durable entries synchronously (a trim that runs before
  `read` cannot take them away).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


class WalWriteError(OSError):
    """An append could not be made durable; nothing of it is visible or acknowledged."""


@dataclass(slots=True)
class WalEntry:
    position: int  # WAL position of the entry's first byte
    end_position: int
    stream_id: int
    base_offset: int
    batch: bytes


class WalRead(Protocol):
    """Batch bytes pinned by `open_batches`: read them once, or close without reading."""

    async def read(self) -> list[bytes]:
        """The batches' bytes, in the order asked for; releases what was pinned."""
        ...

    def close(self) -> None:
        """Release what was pinned without reading (idempotent)."""
        ...


class WriteAheadLog(Protocol):
    on_failure: Callable[[int, BaseException], None] | None

    def recover_pages(self) -> AsyncIterator[list[WalEntry]]:
        """Every durable entry, oldest first, in pages; then the log is open for appends."""
        ...

    def append(
        self, stream_id: int, base_offset: int, batch: bytes
    ) -> tuple[int, asyncio.Future[None]]:
        """Queue one entry; its position, and a future resolved when it is durable."""
        ...

    @property
    def end_position(self) -> int:
        """Position after the last appended (not necessarily durable) entry."""
        ...

    @property
    def durable_position(self) -> int: ...

    @property
    def start_position(self) -> int:
        """Position of the oldest entry still kept."""
        ...

    def open_batches(self, batches: Sequence[tuple[int, int]]) -> WalRead:
        """Pin the record batches of durable entries, each given as (entry position,
        batch size); raises WalWriteError if one is not (or no longer) in the log."""
        ...

    def trim(self, position: int, reclaim_active: bool = False) -> int:
        """Delete what lies wholly before `position` (it is in objects); with
        `reclaim_active` (the disk is full) give back as much space as possible. Returns
        how many units (segments, entries) were deleted."""
        ...

    def free_bytes(self) -> int:
        """Space the log could still write."""
        ...

    def close(self) -> None: ...


# Entries and bytes per page, at most, when a local WAL's recovery is handed out in
# pages: a page holds its batches until replayed, so it is bounded by bytes as well (173
# entries of 1 MiB made one 160 MiB page, past the memory budget, before the bound).
RECOVERY_PAGE_ENTRIES = 4096
RECOVERY_PAGE_BYTES = 4 * 1024 * 1024


async def pages_of(
    entries: Iterable[WalEntry],
    size: int = RECOVERY_PAGE_ENTRIES,
    size_bytes: int = RECOVERY_PAGE_BYTES,
) -> AsyncIterator[list[WalEntry]]:
    """A local WAL's recovery as `recover_pages` hands it out."""
    page: list[WalEntry] = []
    held = 0
    for entry in entries:
        page.append(entry)
        held += len(entry.batch)
        if len(page) == size or held >= size_bytes:
            yield page
            page, held = [], 0
    if page:
        yield page
