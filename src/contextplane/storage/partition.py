"""One partition's in-memory state on its leader: offsets, log cache, object ranges.

Offsets are assigned here, synchronously, so batches are ordered by the event loop. The
high watermark moves only when a batch is durable in the WAL, and fetches never see past
it. `ranges` mirrors the metadata store's object index for this partition, so a catch-up
fetch needs no metadata query.
"""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass, field

from contextplane.metadata.store import RangeRecord
from contextplane.storage.producer_state import ProducerStateTable


@dataclass(slots=True)
class CachedBatch:
    base_offset: int
    end_offset: int  # exclusive
    max_timestamp: int
    data: bytes
    wal_position: int
    uploaded: bool = False


@dataclass
class PartitionLog:
    stream_id: int
    topic: str
    partition: int
    leader_epoch: int
    log_start_offset: int
    next_offset: int
    high_watermark: int
    object_end_offset: int
    ranges: list[RangeRecord] = field(default_factory=list)
    cache: list[CachedBatch] = field(default_factory=list)
    producers: ProducerStateTable = field(default_factory=ProducerStateTable)
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)
    deleted: bool = False

    def advance_high_watermark(self, end_offset: int) -> None:
        if end_offset > self.high_watermark:
            self.high_watermark = end_offset
            self.notify()

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def waiter(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        return future

    def cached_from(
        self, offset: int, bytes_max: int, allow_oversize: bool = True
    ) -> list[bytes] | None:
        """Durable cached batches containing `offset` onwards, or None if not cached."""
        if not self.cache or offset < self.cache[0].base_offset:
            return None
        chunks: list[bytes] = []
        total = 0
        start = bisect.bisect_right(self.cache, offset, key=lambda b: b.end_offset)
        for index in range(start, len(self.cache)):
            batch = self.cache[index]
            if batch.base_offset >= self.high_watermark:
                break
            if (chunks or not allow_oversize) and total + len(batch.data) > bytes_max:
                break
            chunks.append(batch.data)
            total += len(batch.data)
        return chunks

    def first_unuploaded_index(self) -> int:
        """Uploaded batches are always a prefix of the cache (uploads go in offset order)."""
        return bisect.bisect_left(self.cache, self.object_end_offset, key=lambda b: b.base_offset)

    def pending_upload(self) -> list[CachedBatch]:
        """Durable batches not yet in an object, in offset order."""
        pending = []
        for index in range(self.first_unuploaded_index(), len(self.cache)):
            batch = self.cache[index]
            if batch.end_offset > self.high_watermark:
                break
            pending.append(batch)
        return pending
