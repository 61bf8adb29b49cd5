"""One partition's in-memory state on its leader: offsets, log cache, object ranges.

Offsets are assigned here, synchronously, so batches are ordered by the event loop. The
high watermark moves only when a batch is durable in the WAL, and fetches never see past
it. `index` mirrors the metadata store's object index for this partition once loaded
(partition_index.py, object_index.py), so a catch-up fetch needs no metadata query.

`cache` lists every batch not yet in an object (and recently uploaded ones). A batch's
bytes may have been dropped from memory (`data is None`) to keep within the memory
budget: the WAL still holds them at `wal_position`, and readers and the uploader read
them back from there.
"""

from __future__ import annotations

import asyncio
import bisect
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from contextplane.metadata.records import ProducerRow, ProducerStateDelta, StoredProducerState
from contextplane.protocol.control_records import COMMIT, marker_type
from contextplane.protocol.records import BatchHeader
from contextplane.storage.object_index import ObjectRanges
from contextplane.storage.partition_index import PartitionIndex
from contextplane.storage.producer_state import ProducerStateTable
from contextplane.storage.transactions_index import PartitionTransactions


class WalState(enum.Enum):
    """Whether the metadata store marks this leader's WAL as holding acknowledged records
    of the partition (storage/wal_dirty.py)."""

    CLEAN = "clean"
    SETTING = "setting"
    DIRTY = "dirty"
    CLEARING = "clearing"
    OWED = "owed"  # acknowledged while the store was out of reach; the mark is owed


@dataclass(slots=True)
class CachedBatch:
    base_offset: int
    end_offset: int  # exclusive
    max_timestamp: int
    data: bytes | None  # None: only in the WAL (or, once uploaded, in an object)
    wal_position: int
    size: int
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
    index: PartitionIndex = field(default_factory=PartitionIndex.in_memory)
    cache: list[CachedBatch] = field(default_factory=list)
    producers: ProducerStateTable = field(default_factory=ProducerStateTable)
    transactions: PartitionTransactions = field(default_factory=PartitionTransactions)
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)
    deleted: bool = False  # no longer served here: its topic was deleted, or it was released
    released: bool = False  # fenced: another broker leads it now (cluster/leadership.py)
    handing_over: bool = False  # being handed over: appends refused (StorageEngine.release)
    # The dirty protocol (wal_dirty.py): its state, and the mark acknowledgements await.
    wal_state: WalState = WalState.CLEAN
    dirty_marked: asyncio.Future[None] | None = None
    # Bumped whenever batches past the high watermark are taken back (a failed write).
    truncations: int = 0
    # Record bytes produced here and fetched from here (the balancer's load: cluster/load.py).
    bytes_in: int = 0
    bytes_out: int = 0

    @property
    def ranges(self) -> ObjectRanges:
        """The loaded object index (`await index.load()` first where it may not be)."""
        return self.index.ranges

    @property
    def last_stable_offset(self) -> int:
        """The end of what a read_committed consumer may see (Kafka's LSO): the first
        offset of the oldest open transaction, or the high watermark when none is open
        (transactions_index.py: a transaction stays open until its marker is durable)."""
        return self.transactions.last_stable_offset(self.high_watermark)

    def advance_high_watermark(self, end_offset: int) -> None:
        if end_offset > self.high_watermark:
            self.high_watermark = end_offset
            self.producers.commit(end_offset)
            self.transactions.advance(end_offset)
            self.notify()

    def truncate_from_wal_position(self, position: int) -> list[CachedBatch]:
        """Take back every batch written at or after WAL `position` (its write failed):
        the next batch gets the first failed batch's offsets, as after a failed log
        append in Kafka. Returns the batches removed."""
        index = bisect.bisect_left(self.cache, position, key=lambda b: b.wal_position)
        removed = self.cache[index:]
        if not removed:
            return []
        del self.cache[index:]
        self.next_offset = removed[0].base_offset
        self.producers.rollback(removed[0].base_offset)
        self.transactions.rollback(removed[0].base_offset)
        self.truncations += 1
        self.notify()
        return removed

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
        self, offset: int, bytes_max: int, allow_oversize: bool = True, end: int | None = None
    ) -> list[CachedBatch] | None:
        """Durable cached batches containing `offset` onwards, or None if an object must
        be read (the offset is below the cache, or its uploaded batch left memory). Stops
        at `end` (the high watermark by default)."""
        if not self.cache or offset < self.cache[0].base_offset:
            return None
        if end is None:
            end = self.high_watermark
        found: list[CachedBatch] = []
        total = 0
        start = bisect.bisect_right(self.cache, offset, key=lambda b: b.end_offset)
        for index in range(start, len(self.cache)):
            batch = self.cache[index]
            if batch.base_offset >= end:
                break
            if batch.data is None and batch.uploaded:
                if not found:
                    return None
                break
            if (found or not allow_oversize) and total + batch.size > bytes_max:
                break
            found.append(batch)
            total += batch.size
        return found

    def first_unuploaded_index(self) -> int:
        """Uploaded batches are always a prefix of the cache (uploads go in offset order)."""
        return bisect.bisect_left(self.cache, self.object_end_offset, key=lambda b: b.base_offset)

    def pending_upload(self) -> Iterator[CachedBatch]:
        """Durable batches not yet in an object, in offset order."""
        cache = self.cache
        for index in range(self.first_unuploaded_index(), len(cache)):
            batch = cache[index]
            if batch.end_offset > self.high_watermark:
                return
            yield batch

    def first_unuploaded_position(self) -> int | None:
        """WAL position of the oldest batch not yet in an object (None: all uploaded)."""
        index = self.first_unuploaded_index()
        return self.cache[index].wal_position if index < len(self.cache) else None

    def drop_uploaded_records(self) -> int:
        """Forget uploaded batches whose bytes left memory (objects serve them now);
        returns how many records were dropped."""
        drop = 0
        for batch in self.cache:
            if not batch.uploaded or batch.data is not None:
                break
            drop += 1
        del self.cache[:drop]
        return drop


def state_delta(
    partition: PartitionLog, end_offset: int
) -> tuple[ProducerStateDelta, Callable[[], None]]:
    """What an object commit ending at `end_offset` changes in the partition's stored
    producer state (WAL replay redoes what follows): the rows of the producers touched
    since the last commit, as of that offset, and the aborted transactions closed since.
    Its cost follows the producers touched, not the table. The second result is called
    once the commit is durable: it forgets the touches written (a producer with batches
    from `end_offset` on stays touched for the next commit)."""
    producers, transactions = partition.producers, partition.transactions
    transactions.trim(partition.log_start_offset)
    committed_end = partition.object_end_offset
    producer_touches = producers.touched.pending()
    txn_touches = transactions.touched.pending()
    closed = transactions.closed_since(committed_end)
    upserts: list[ProducerRow] = []
    deletes: list[int] = []
    written_producers: dict[int, int] = {}
    written_txns: dict[int, int] = {}
    for producer_id in producer_touches.keys() | txn_touches.keys():
        row, later_batches = producers.row_as_of(producer_id, end_offset)
        txn_first, later_txn = transactions.open_as_of(producer_id, end_offset, closed)
        if row is None and txn_first is None:
            deletes.append(producer_id)
        else:
            if row is None:
                row = ProducerRow(producer_id, None, [])
            row.txn_first_offset = txn_first
            upserts.append(row)
        if later_batches or later_txn:
            continue
        if producer_id in producer_touches:
            written_producers[producer_id] = producer_touches[producer_id]
        if producer_id in txn_touches:
            written_txns[producer_id] = txn_touches[producer_id]
    delta = ProducerStateDelta(
        upserts,
        deletes,
        transactions.aborted_between(committed_end, end_offset),
        partition.log_start_offset,
    )

    def settle() -> None:
        producers.touched.settle(written_producers)
        transactions.touched.settle(written_txns)
        transactions.spill(end_offset)  # what ends before it is stored now

    return delta, settle


def load_state(partition: PartitionLog, stored: StoredProducerState) -> None:
    """Rebuild the partition's producer and transaction state from the stored rows."""
    if not stored.producers and not stored.aborted:
        return  # a new or idle partition keeps the empty tables it was made with
    partition.producers = ProducerStateTable.from_rows(stored.producers)
    partition.transactions = PartitionTransactions.from_stored(
        stored.producers, stored.aborted, stored.aborted_truncated
    )


def track_transaction(
    partition: PartitionLog, header: BatchHeader, batch: bytes | memoryview, base_offset: int
) -> None:
    """A batch appended (or replayed) at `base_offset`: open or close its producer's
    transaction."""
    if not header.is_transactional:
        return
    if header.is_control:
        kind = marker_type(batch)
        if kind is not None:
            partition.transactions.on_marker(header.producer_id, base_offset, kind == COMMIT)
    else:
        partition.transactions.on_batch(header.producer_id, base_offset)
