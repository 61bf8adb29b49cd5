"""The log cache: every batch not yet in an object (and recently uploaded ones), its bytes
within the memory budget, and the un-uploaded backlog.

A partition's `cache` (partition.py) lists the batches; this class keeps the books: the
bytes resident in memory (evicted oldest first, memory.py), the backlog of bytes waiting
for upload (what produce admission weighs), and reading a batch whose bytes left memory
back from the WAL.
"""

from __future__ import annotations

from collections.abc import Iterable

from contextplane.storage.memory import MemoryBudget, ResidentBatches
from contextplane.storage.partition import CachedBatch, PartitionLog
from contextplane.storage.wal import WriteAheadLog


class LogCache:
    def __init__(self, budget: MemoryBudget, wal: WriteAheadLog) -> None:
        self.budget = budget
        self._wal = wal
        self._resident = ResidentBatches(budget)
        self.pending_bytes = 0  # un-uploaded bytes (the WAL backlog)
        # Partitions with un-uploaded batches, by stream id.
        self.pending: dict[int, PartitionLog] = {}
        budget.on_shrink = self.evict

    def add(self, partition: PartitionLog, batch: CachedBatch) -> None:
        partition.cache.append(batch)
        self.pending[partition.stream_id] = partition
        self._resident.add(partition, batch)
        self.budget.cached_batches += 1
        self.pending_bytes += batch.size
        self.evict()

    def evict(self) -> None:
        """Drop the oldest bytes until the cache fits the budget; uploaded batches whose
        bytes left go altogether (objects serve them)."""
        for owner in self._resident.evict():
            self.forget_uploaded(owner)

    def forget_uploaded(self, partition: PartitionLog) -> None:
        self.budget.cached_batches -= partition.drop_uploaded_records()

    def mark_uploaded(self, partition: PartitionLog, batches: list[CachedBatch]) -> None:
        for batch in batches:
            batch.uploaded = True
            self.pending_bytes -= batch.size
        self.forget_uploaded(partition)
        self._settle(partition)

    def _settle(self, partition: PartitionLog) -> None:
        """The partition leaves the pending set once every batch it caches is uploaded."""
        if partition.first_unuploaded_position() is None:
            self._drop_pending(partition)

    def _drop_pending(self, partition: PartitionLog) -> None:
        stream_id = partition.stream_id
        if self.pending.get(stream_id) is partition:  # not a reopened partition's successor
            del self.pending[stream_id]

    def pending_partitions(self) -> list[PartitionLog]:
        """The partitions with un-uploaded batches."""
        return list(self.pending.values())

    def forget(self, batches: Iterable[CachedBatch]) -> None:
        """The batches leave the cache (taken back, or their partition closed)."""
        for batch in batches:
            self._resident.drop(batch)
            self.budget.cached_batches -= 1
            if not batch.uploaded:
                self.pending_bytes -= batch.size

    def forget_uploaded_below(self, partition: PartitionLog, offset: int) -> None:
        """Uploaded batches wholly below `offset` leave the cache: the cleaner rewrote
        their objects, and reads must see the rewritten log, not these copies."""
        drop = 0
        for batch in partition.cache:
            if not batch.uploaded or batch.end_offset > offset:
                break
            drop += 1
        self.forget(partition.cache[:drop])
        del partition.cache[:drop]

    def drop_partition(self, partition: PartitionLog) -> None:
        self.forget(partition.cache)
        partition.cache.clear()
        self._drop_pending(partition)

    def take_back_from(self, partitions: Iterable[PartitionLog], position: int) -> None:
        """Every batch written at or after WAL `position` failed: take it back."""
        for partition in partitions:
            self.forget(partition.truncate_from_wal_position(position))
            self._settle(partition)

    async def batch_bytes(
        self, batches: list[CachedBatch], reserved: bool = False
    ) -> list[bytes | memoryview]:
        """Each batch's bytes: from memory, or read back from the WAL (within the memory
        budget's in-flight share, unless the caller `reserved` it already: a second
        reservation nested in the first could wait for the first forever)."""
        found: list[bytes | memoryview | None] = [b.data for b in batches]
        missing = [i for i, data in enumerate(found) if data is None]
        if not missing:
            return found  # type: ignore[return-value]
        # Pin the entries now, before any await: a trim cannot take them away then.
        pinned = self._wal.open_batches(
            [(batches[i].wal_position, batches[i].size) for i in missing]
        )
        try:
            if reserved:
                read = await pinned.read()
            else:
                async with self.budget.reserve(sum(batches[i].size for i in missing)):
                    read = await pinned.read()
        finally:
            pinned.close()
        for i, data in zip(missing, read, strict=True):
            found[i] = data
        return found  # type: ignore[return-value]
