"""A broker serving Fetch for partitions it does not lead, from uploaded data only: the
in-zone read replica of RFC 0004 §7 (KIP-392's follower fetching, without followers).

For each partition it serves this way it keeps a mirror of the partition's object index
(`ObjectRanges`), refreshed from the metadata store by reading the ranges past the
mirror's end: at most one query per partition per `upload.interval.ms`, shared by every
consumer fetching it, and only while it is fetched (a mirror unused for `IDLE_MS` is
dropped; while kept, its ranges and aborted transactions count in the memory budget as
a leader's do).
Records are read through the broker's block cache, like any catch-up read. Its high
watermark is the end of the leader's uploaded objects as last read, so a consumer here
is about one upload interval (plus up to one refresh interval) behind the leader's
acknowledgements.

For read_committed consumers the mirror also keeps the stored transaction state, which
an object commit writes as of the end of its ranges (storage/transactions_index.py): the
first offset of the oldest open transaction and the aborted transactions, read in the
same refresh after the ranges (so as of their end or later). Its last stable offset is
the lower of that first offset and its end, as a Kafka follower's is the lower of its
first unstable offset and its high watermark: never past the leader's, and a
transaction whose marker is not uploaded yet is held back, never shown as committed.

A read of an object that is gone (the cleaner or compaction replaced the ranges below the
mirror's end, and the object was deleted since) drops the mirror: the next fetch loads it
again from the store, as it stands.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from contextplane import limits
from contextplane.clock import Clock
from contextplane.errors import KafkaError
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.storage.block_cache import BlockCache
from contextplane.storage.memory import ABORTED_TXN_BYTES, MemoryBudget
from contextplane.storage.object_index import ObjectRanges
from contextplane.storage.read_plan import PlanPartition, plan_ranges
from contextplane.storage.reader import Chunks, batches_in
from contextplane.storage.transactions_index import AbortedTxn, trim_aborted

log = logging.getLogger(__name__)

# A mirror not fetched for this long is dropped (its memory is its ranges).
IDLE_MS = 60_000
# An offset past the mirror's end is waited for while the uploaded end keeps moving; once
# it has not moved for this long (or three upload intervals, if longer), the offset is
# answered OFFSET_OUT_OF_RANGE (as a Kafka follower answers an offset past its log end),
# which sends the consumer to the leader.
STALE_MS = 10_000


@dataclass(slots=True)
class Mirror:
    """One partition's uploaded ranges as this broker last read them."""

    topic: str
    partition: int
    stream_id: int = -1
    log_start_offset: int = 0
    end_offset: int = 0  # the end of the last uploaded range: this replica's high watermark
    ranges: ObjectRanges = field(default_factory=ObjectRanges)
    loaded: bool = False
    refreshed_ms: int = -(10**12)  # monotonic; long ago: due at once
    moved_ms: int = 0  # when end_offset last moved (monotonic)
    stable_moved_ms: int = 0  # when stable_offset last moved (monotonic)
    used_ms: int = 0
    refreshing: asyncio.Future[None] | None = None
    open_first: int | None = None  # the oldest open transaction's first offset, stored
    aborted: list[AbortedTxn] = field(default_factory=list)  # stored, by last offset
    # Aborted transactions ending before this are read from the store when a fetch needs
    # them (0: `aborted` holds all): the mirror keeps at most ABORTED_TXNS_IN_MEMORY_MAX.
    stored_before: int = 0
    aborted_counted: int = 0  # entries of `aborted` counted in the memory budget
    # Record bytes fetched from here, counted by the Fetch handler as for a led partition;
    # the heartbeat's load reports led partitions only (cluster/load.py).
    bytes_out: int = 0

    @property
    def stable_offset(self) -> int:
        """The last stable offset: read_committed consumers read below it."""
        if self.open_first is None:
            return self.end_offset
        return min(self.open_first, self.end_offset)


class ReadReplicas:
    """The mirrors of the partitions this broker serves as a read replica."""

    def __init__(
        self,
        metadata: MetadataStore,
        blocks: BlockCache,
        interval_ms: int,
        clock: Clock,
        budget: MemoryBudget | None = None,
    ) -> None:
        self._metadata = metadata
        self._blocks = blocks
        self._budget = budget  # where the mirrors' ranges are counted, as a leader's are
        self._interval_ms = interval_ms
        self._stale_ms = max(STALE_MS, 3 * interval_ms)
        self._clock = clock
        self._mirrors: dict[tuple[str, int], Mirror] = {}
        self.refreshes = 0  # store queries made (observability, tests)

    def __len__(self) -> int:
        return len(self._mirrors)

    async def mirror(self, topic: str, partition: int) -> Mirror:
        """The partition's mirror, refreshed if a refresh is due; UNKNOWN_TOPIC_OR_PARTITION
        when the store has no such partition, KAFKA_STORAGE_ERROR when it cannot answer."""
        now = self._clock.monotonic_ms()
        self._drop_idle(now)
        key = (topic, partition)
        mirror = self._mirrors.get(key)
        if mirror is None:
            mirror = self._mirrors[key] = Mirror(
                topic, partition, moved_ms=now, stable_moved_ms=now
            )
            self._count(mirror)
        mirror.used_ms = now
        if now - mirror.refreshed_ms >= self._interval_ms:
            await self._refresh(mirror)
        return mirror

    def next_refresh_s(self, mirror: Mirror) -> float:
        """Seconds until the mirror's next refresh is due (a long poll waits this long)."""
        due = mirror.refreshed_ms + self._interval_ms - self._clock.monotonic_ms()
        return max(due, 0) / 1000

    def check_offset(self, mirror: Mirror, offset: int, committed: bool = False) -> bool:
        """Whether `offset` may be read here now (False: past the end, or `committed`
        past the last stable offset: wait for uploads); OFFSET_OUT_OF_RANGE below the
        log start, or past an end (a last stable offset) that stopped moving. A
        read_committed consumer is past the mirror's LSO only when the leader's is
        further (it read there): the uploads carrying the markers are late."""
        if offset < mirror.log_start_offset:
            raise KafkaError(ErrorCode.offset_out_of_range, "offset below the log start")
        end, moved_ms = mirror.end_offset, mirror.moved_ms
        if committed:
            end, moved_ms = mirror.stable_offset, mirror.stable_moved_ms
        if offset <= end:
            return True
        if self._clock.monotonic_ms() - moved_ms >= self._stale_ms:
            raise KafkaError(
                ErrorCode.offset_out_of_range, f"offset {offset} is past this replica's end {end}"
            )
        return False

    async def read(
        self,
        mirror: Mirror,
        offset: int,
        bytes_max: int,
        allow_oversize: bool,
        committed: bool = False,
    ) -> Chunks:
        """Whole batches from `offset` below the mirror's end (`committed`: below its
        last stable offset), within `bytes_max` (the first alone may exceed it with
        `allow_oversize`)."""
        end = mirror.stable_offset if committed else mirror.end_offset
        if offset >= end:
            return []
        plan = PlanPartition(mirror.ranges.from_offset(offset), end, bytes_max)
        plan_ranges([plan], bytes_max, allow_oversize)
        read = await self._blocks.read_ranges(plan.taken)
        try:
            return batches_in(
                list(zip(plan.taken, read, strict=True)),
                offset,
                end,
                bytes_max,
                allow_oversize,
            )
        except OSError:
            # Its object may have been replaced and deleted: read the ranges afresh next.
            self._drop(mirror)
            raise

    async def _refresh(self, mirror: Mirror) -> None:
        """One store query for every fetch waiting on this mirror."""
        if mirror.refreshing is None:
            mirror.refreshing = asyncio.ensure_future(self._query(mirror))
            mirror.refreshing.add_done_callback(lambda _: _clear(mirror))
        await asyncio.shield(mirror.refreshing)

    async def _query(self, mirror: Mirror) -> None:
        since = mirror.end_offset if mirror.loaded else -1
        # Only the aborted transactions not known yet: those ending at or past the end
        # the last refresh left and past the last one it read (which may be later).
        aborted_since = since
        if mirror.loaded and mirror.aborted:
            aborted_since = max(since, mirror.aborted[-1].last_offset + 1)
        self.refreshes += 1
        mirror.refreshed_ms = self._clock.monotonic_ms()  # a failed query is not retried at once
        try:
            found = await self._metadata.replica_ranges(
                mirror.topic, mirror.partition, since, aborted_since
            )
        except Exception as exc:  # noqa: BLE001 - the store's own errors, engine by engine
            log.warning("read replica of %s-%d: %s", mirror.topic, mirror.partition, exc)
            raise KafkaError(
                ErrorCode.kafka_storage_error, "The partition's ranges could not be read."
            ) from exc
        now = self._clock.monotonic_ms()
        if found is None:
            self._drop(mirror)
            raise KafkaError(ErrorCode.unknown_topic_or_partition, "no such partition")
        if mirror.loaded and found.stream_id != mirror.stream_id:  # deleted and created again
            mirror.ranges.uncount()
            mirror.ranges, mirror.end_offset, mirror.loaded = ObjectRanges(), 0, False
            mirror.aborted, mirror.stored_before = [], 0
            self._count(mirror)
            self._count_aborted(mirror)
            return await self._query(mirror)
        mirror.stream_id = found.stream_id
        for record in found.ranges:
            if record.base_offset >= mirror.end_offset or not mirror.loaded:
                mirror.ranges.append(record)
                mirror.end_offset = record.end_offset
                mirror.moved_ms = now
        mirror.loaded = True
        stable = mirror.stable_offset
        mirror.open_first = found.open_first
        if found.aborted_truncated:  # a gap behind the latest read: memory restarts there
            mirror.aborted = []
            mirror.stored_before = found.aborted[0][2]
        mirror.aborted.extend(AbortedTxn(*row) for row in found.aborted)
        self._count_aborted(mirror)
        bound = self._aborted_bound()
        if len(mirror.aborted) > bound:  # every entry is stored: any may go
            drop = len(mirror.aborted) - bound // 2
            mirror.stored_before = mirror.aborted[drop - 1].last_offset + 1
            del mirror.aborted[:drop]
        mirror.log_start_offset = found.log_start_offset
        mirror.ranges.drop_below(found.log_start_offset)
        trim_aborted(mirror.aborted, found.log_start_offset)
        self._count_aborted(mirror)
        if mirror.stored_before <= found.log_start_offset:
            mirror.stored_before = 0
        mirror.end_offset = max(mirror.end_offset, found.log_start_offset)
        if mirror.stable_offset != stable:
            mirror.stable_moved_ms = now

    def _drop_idle(self, now: int) -> None:
        for mirror in [m for m in self._mirrors.values() if now - m.used_ms >= IDLE_MS]:
            self._drop(mirror)

    def _count(self, mirror: Mirror) -> None:
        if self._budget is not None:
            mirror.ranges.count_in(self._budget)

    def _aborted_bound(self) -> int:
        """A mirror's aborted entries in memory: as a leader's partition keeps, the
        floor while every partition's entries together are past their budget share."""
        budget = self._budget
        if budget is not None and budget.aborted_txn_bytes > budget.aborted_limit:
            return limits.ABORTED_TXNS_IN_MEMORY_FLOOR
        return limits.ABORTED_TXNS_IN_MEMORY_MAX

    def _count_aborted(self, mirror: Mirror) -> None:
        """The budget counts a kept mirror's aborted entries as it counts a leader's; a
        dropped one's not at all (a fetch still reading it keeps its list)."""
        kept = self._mirrors.get((mirror.topic, mirror.partition)) is mirror
        counted = len(mirror.aborted) if kept else 0
        if self._budget is not None:
            added = counted - mirror.aborted_counted
            self._budget.aborted_txn_bytes += added * ABORTED_TXN_BYTES
        mirror.aborted_counted = counted

    def _drop(self, mirror: Mirror) -> None:
        if self._mirrors.get((mirror.topic, mirror.partition)) is mirror:
            del self._mirrors[(mirror.topic, mirror.partition)]
        mirror.ranges.uncount()
        self._count_aborted(mirror)


def _clear(mirror: Mirror) -> None:
    mirror.refreshing = None
