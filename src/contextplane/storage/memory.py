"""One memory budget for the broker's buffers: log cache, block cache, in-flight I/O.

* The log cache holds batch bytes for tailing consumers and the uploader. Its bytes are
  evictable at any time, uploaded or not (the WAL keeps un-uploaded batches on disk), so
  it gets whatever the other accounts leave, capped by `log.cache.bytes`.
* Each cached batch also costs a fixed record (offsets, WAL position) while it waits for
  upload, even once its bytes left memory: `pinned` counts those records and all
  in-flight bytes; produce admission pushes back as it nears the budget.
* The block cache (object ranges for catch-up reads) is held to a quarter of the budget.
* In-flight bytes (objects being built and put, object and WAL reads) are reserved with
  `reserve`, which waits while half of the budget is already in flight. Object
  compaction's reservations hold at most half of that share (`reserve(...,
  compaction=True)`), so uploads and reads always have the other half.
* Response bytes (`pin_responses`): what connections hold of responses queued or still
  in their transport's buffer. They count against the in-flight share, so object reads
  wait while slow consumers hold it, but one read at a time always proceeds.
* WAL bytes (`wal_bytes`): entries an object WAL holds until their PUT has finished
  (object_wal.py): pinned, so produce admission refuses before they outgrow the budget.
* Range records (`range_record_bytes`): every object range a loaded partition keeps in
  memory, counted by the engine.
* Aborted-transaction bytes (`aborted_txn_bytes`): the entries of every loaded
  partition's aborted-transaction index (transactions_index.py), counted by
  `ABORTED_TXN_BYTES` an entry; past `aborted_limit` (a sixteenth of the budget) each
  partition spills those already stored down to `ABORTED_TXNS_IN_MEMORY_FLOOR`.
* Request bytes (`pin_requests`): what connections have read of requests not yet
  handled (the frame, then its decoded form, until the handler is done). The listeners'
  request memory (queued.max.request.bytes) is held to `request_limit`, a quarter of the
  budget, so requests waiting for their turn cannot add a second budget of their own.
  Like responses they shrink the log cache but do not refuse produce.
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
# Memory held by one object range record of a loaded partition (the frozen slotted
# RangeRecord, its ints, its object key string, as loaded one per row, and its slots in
# the index's two lists): tracemalloc measures 404 bytes per record over 100,000.
RANGE_RECORD_BYTES = 400
# One entry of a partition's aborted-transaction index (a three-int named tuple and its
# list slot): tracemalloc measures 176 bytes per entry over 100,000.
ABORTED_TXN_BYTES = 180


class MemoryBudget:
    def __init__(self, total_bytes: int, log_cache_cap_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.log_cache_cap_bytes = log_cache_cap_bytes
        self.log_cache_bytes = 0  # resident batch bytes
        self.cached_batches = 0  # batch records, resident or not
        self.block_cache_bytes = 0
        self.in_flight_bytes = 0  # every reservation, compaction's included
        self.compaction_bytes = 0  # the part of in_flight_bytes object compaction holds
        self.response_bytes = 0  # responses held by connections (queued or unsent)
        self.response_reserved_bytes = 0  # what Fetches reading now may still return
        self.range_record_bytes = 0  # object range records of loaded partitions
        self.aborted_txn_bytes = 0  # aborted-transaction index entries in memory
        self.request_bytes = 0  # requests read and not yet handled
        self.wal_bytes = 0  # entries an object WAL holds until their PUT finished
        # Reservations waiting for room; woken (all of them) whenever room is given back,
        # from synchronous code too (a transport drained).
        self._waiters: list[asyncio.Future[None]] = []
        # Called whenever the log cache's room shrinks (the owner evicts then).
        self.on_shrink: Callable[[], None] = lambda: None

    @property
    def produce_pinned_bytes(self) -> int:
        """What produce admission weighs: un-uploaded batch records and in-flight I/O
        (a slow consumer's unsent response must not refuse producers)."""
        return (
            self.cached_batches * CACHED_BATCH_OVERHEAD_BYTES
            + self.in_flight_bytes
            + self.wal_bytes
        )

    @property
    def pinned_bytes(self) -> int:
        """Memory that eviction cannot give back right now."""
        return (
            self.produce_pinned_bytes
            + self.response_bytes
            + self.range_record_bytes
            + self.aborted_txn_bytes
            + self.request_bytes
        )

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
    def response_limit(self) -> int:
        """What responses held by connections may pin before a Fetch is cut to its first
        batch (KIP-74's minimum): half of the budget."""
        return self.total_bytes // 2

    @property
    def response_room(self) -> int:
        """The bytes a new Fetch response may still take of `response_limit`."""
        return max(0, self.response_limit - self.response_bytes - self.response_reserved_bytes)

    @property
    def request_limit(self) -> int:
        """What the listeners may hold of requests read and not yet handled."""
        return self.total_bytes // 4

    @property
    def aborted_limit(self) -> int:
        """What every partition's aborted-transaction entries together may hold before
        each keeps only a floor of them."""
        return self.total_bytes // 16

    @property
    def in_flight_limit(self) -> int:
        return self.total_bytes // 2

    @property
    def compaction_limit(self) -> int:
        """Object compaction's part of the in-flight share: at most half of it."""
        return self.in_flight_limit // 2

    def pin_responses(self, delta: int) -> None:
        """Count (`delta` > 0) or release response bytes a connection holds."""
        self.response_bytes += delta
        if delta > 0:
            if self.log_cache_bytes > self.log_cache_limit:
                self.on_shrink()
        elif self._waiters:
            self._wake()

    def pin_requests(self, delta: int) -> None:
        """Count (`delta` > 0) or release request bytes the listeners hold."""
        self.request_bytes += delta
        if delta > 0 and self.log_cache_bytes > self.log_cache_limit:
            self.on_shrink()

    def _room_for(self, size: int, compaction: bool) -> bool:
        limit = self.in_flight_limit
        others = self.in_flight_bytes - self.compaction_bytes  # uploads and reads
        if compaction:
            if self.compaction_bytes and self.compaction_bytes + size > self.compaction_limit:
                return False
            # Past half the share it never takes room from uploads and reads.
            counted = min(size, self.compaction_limit)
            return others == 0 or others + self.response_bytes + counted <= limit
        # Compaction counts for at most its half here: the other half is always left.
        compaction_counted = min(self.compaction_bytes, self.compaction_limit)
        # A single upload or read proceeds alone, whatever responses and compaction hold.
        return others == 0 or others + compaction_counted + self.response_bytes + size <= limit

    def _wake(self) -> None:
        if not self._waiters:
            return
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    @asynccontextmanager
    async def reserve(self, size: int, *, compaction: bool = False) -> AsyncIterator[None]:
        """Hold `size` in-flight bytes for the block; waits while the in-flight share is
        used (a single upload or read larger than the share still proceeds alone; object
        compaction's reservations together stay within half the share)."""
        loop = asyncio.get_running_loop()
        while not self._room_for(size, compaction):
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                # Woken and cancelled at once: pass the wake on to the others.
                self._wake()
                raise
        self.in_flight_bytes += size
        if compaction:
            self.compaction_bytes += size
        self.on_shrink()
        try:
            yield
        finally:
            self.in_flight_bytes -= size
            if compaction:
                self.compaction_bytes -= size
            self._wake()


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
