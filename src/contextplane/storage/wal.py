"""The write-ahead log as the storage engine sees it.

An append is acknowledged once the WAL says it is durable. Two implementations ship:
`FileWal` (file_wal.py: segments on local disk, group commit with one fdatasync) and
`MemoryWal` (memory_wal.py: for tests and the simulation, with injectable faults). An
object-storage WAL mode would be a third.

The contract every implementation keeps:

* `append` returns the entry's position at once and a future resolved when the entry is
  durable; futures resolve in append order.
* A failed write fails every entry not yet durable (those being written and those queued
  behind them), and `on_failure(position, error)` is told synchronously, before any other
  append can run, with the position of the first failed entry: the owner takes back the
  offsets it handed out. The log stays usable; the next append tries again.
* Positions only grow, across restarts too; `recover` yields the durable entries from the
  oldest one still kept, in position order, and then the log is open for appends.
* `trim(position)` may delete entries wholly before `position`, never one at or after it.
* `open_batches` pins the bytes of durable entries synchronously (a trim that runs before
  `read` cannot take them away).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
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

    def recover(self) -> Iterator[WalEntry]:
        """Every durable entry, oldest first; then the log is open for appends."""
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
