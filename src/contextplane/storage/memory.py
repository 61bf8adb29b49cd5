"""One memory budget for the broker's buffers: log cache, block cache, in-flight I/O.

* The log cache holds batch bytes for tailing consumers and the uploader. Its bytes are
  evictable at any time, uploaded or not (the WAL keeps un-uploaded batches on disk), so
  it gets whatever the other accounts leave, capped by `log.cache.bytes`.
* Each cached batch also costs a fixed record (offsets, WAL position) while it waits for
  upload, even once its bytes left memory: `pinned` counts those records and all
  in-flight bytes; produce admission pushes back as it nears the budget.
* The block cache (object ranges for catch-up reads) is held to a quarter of the budget.
* In-flight bytes (objects being built and put, object and WAL reads) are reserved with
  `reserve`, which waits while half of the budget is already in flight.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

# Memory held by one cached batch's record beyond its bytes (a slotted object, its ints,
# a list slot and a resident-queue entry): tracemalloc measures 328 bytes per record.
CACHED_BATCH_OVERHEAD_BYTES = 330


class MemoryBudget:
    def __init__(self, total_bytes: int, log_cache_cap_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.log_cache_cap_bytes = log_cache_cap_bytes
        self.log_cache_bytes = 0  # resident batch bytes
        self.cached_batches = 0  # batch records, resident or not
        self.block_cache_bytes = 0
        self.in_flight_bytes = 0
        self._in_flight_changed = asyncio.Condition()
        # Called whenever the log cache's room shrinks (the owner evicts then).
        self.on_shrink: Callable[[], None] = lambda: None

    @property
    def pinned_bytes(self) -> int:
        """Memory that eviction cannot give back right now."""
        return self.cached_batches * CACHED_BATCH_OVERHEAD_BYTES + self.in_flight_bytes

    @property
    def used_bytes(self) -> int:
        return self.pinned_bytes + self.log_cache_bytes + self.block_cache_bytes

    @property
    def block_cache_limit(self) -> int:
        return self.total_bytes // 4

    @property
    def log_cache_limit(self) -> int:
        room = self.total_bytes - self.pinned_bytes - self.block_cache_bytes
        return max(0, min(self.log_cache_cap_bytes, room))

    @property
    def in_flight_limit(self) -> int:
        return self.total_bytes // 2

    @asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        """Hold `size` in-flight bytes for the block; waits while the in-flight share is
        used (a single request larger than the share still proceeds alone)."""
        async with self._in_flight_changed:
            await self._in_flight_changed.wait_for(
                lambda: (
                    self.in_flight_bytes == 0 or self.in_flight_bytes + size <= self.in_flight_limit
                )
            )
            self.in_flight_bytes += size
        self.on_shrink()
        try:
            yield
        finally:
            async with self._in_flight_changed:
                self.in_flight_bytes -= size
                self._in_flight_changed.notify_all()


class ResidentBatches:
    """Batches whose bytes are in memory, oldest first, for eviction in append order.

    Items are (owner, batch) pairs; a batch whose bytes were dropped elsewhere (a failed
    write took it back) is skipped when it reaches the front.
    """

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self._queue: deque[tuple[Any, Any]] = deque()

    def add(self, owner: Any, batch: Any) -> None:
        self._queue.append((owner, batch))
        self._budget.log_cache_bytes += batch.size

    def drop(self, batch: Any) -> None:
        """Forget a batch's bytes now (it is leaving the cache)."""
        if batch.data is not None:
            batch.data = None
            self._budget.log_cache_bytes -= batch.size

    def evict(self) -> list[Any]:
        """Drop the oldest bytes until the log cache fits its limit; returns the owners
        of evicted batches that were already uploaded (their records can go too)."""
        budget = self._budget
        owners: dict[int, Any] = {}  # by identity: owners need not be hashable
        while self._queue and budget.log_cache_bytes > budget.log_cache_limit:
            owner, batch = self._queue.popleft()
            if batch.data is None:
                continue
            self.drop(batch)
            if batch.uploaded:
                owners[id(owner)] = owner
        return list(owners.values())

    def clear(self) -> None:
        for _, batch in self._queue:
            self.drop(batch)
        self._queue.clear()
