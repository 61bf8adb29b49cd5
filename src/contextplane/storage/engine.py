"""The storage engine: produce → WAL → log cache → ack; upload → objects → trim.

This module wires the parts and owns the partitions this broker leads; each job lives in
its own module:

- append (appender.py): idempotence check, offsets, WAL queue, acknowledgement, taking
  back failed writes;
- read (reader.py, log_cache.py, object_index.py, block_cache.py): log cache, WAL
  read-back, objects through the object index and block cache; a partition's object
  index is loaded on first need and dropped when idle (partition_index.py);
- upload (uploader.py): the oldest durable batches into one object, commit, WAL trim;
- log start (log_start.py, rules in retention.py): retention, DeleteRecords;
- compacted topics (cleaner.py, rules in compaction.py): each key's latest record;
- object compaction (object_compactor.py, plan in compaction_plan.py): small uploads
  rewritten into larger merged and per-partition objects;
- object lifetimes: unreferenced objects deleted after their grace period
  (object_deleter.py), objects a crash left uncommitted swept (orphan_sweep.py);
- clean_stop.py: a stop's last upload and what it leaves of the WAL;
- recovery.py: start-up replay of the WAL tail; partition_logs.py: a claimed partition's log;
- wal_takeover.py: recovery of a dead broker's object WAL into partitions claimed here;
- memory.py, admission.py: the memory budget; produce admission and the disk-full gate.

The WAL and the object store are interfaces (wal.py, objectstore.py): the broker uses
the file WAL and obstore; tests and the simulation use `MemoryWal` and
`MemoryObjectStore`, which can be told to fail or stall. Time is the injected clock's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence

from contextplane.clock import Clock, SystemClock
from contextplane.cluster.assignment import Assignment, TargetAssignment
from contextplane.cluster.leadership import Leadership, MoveTimedOut, NotLeader
from contextplane.errors import KafkaError
from contextplane.loop_governor import LoopGovernor
from contextplane.metadata.records import PartitionRecord, RangeSummary, WalSource
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import BatchHeader
from contextplane.settings import Settings
from contextplane.storage import clean_stop
from contextplane.storage.admission import Admission, DiskFullGate, RefusalLog, admit
from contextplane.storage.appender import Appender, AppendResult
from contextplane.storage.background import background_tasks
from contextplane.storage.block_cache import BlockCache
from contextplane.storage.cleaner import Cleaner
from contextplane.storage.log_cache import LogCache
from contextplane.storage.log_start import LogStart
from contextplane.storage.memory import MemoryBudget
from contextplane.storage.object_compactor import ObjectCompactor
from contextplane.storage.object_deleter import ObjectDeleter
from contextplane.storage.object_wal import ObjectWal, open_wal, refuse_local_wal_backlog
from contextplane.storage.objectstore import (
    BoundedObjectStore,
    GetLatency,
    ObjectStore,
    open_object_store,
)
from contextplane.storage.orphan_sweep import InFlightKeys, OrphanSweep
from contextplane.storage.partition import CachedBatch, PartitionLog
from contextplane.storage.partition_logs import claimed_log, object_ends, release_memory
from contextplane.storage.read_lane import ReadLane
from contextplane.storage.readahead import Readahead
from contextplane.storage.reader import READ_UNCOMMITTED, Reader, ReadRequest
from contextplane.storage.recovery import replay
from contextplane.storage.uploader import Uploader
from contextplane.storage.wal import WriteAheadLog
from contextplane.storage.wal_dirty import DirtyMarks
from contextplane.storage.wal_takeover import WalTakeover

log = logging.getLogger(__name__)

__all__ = ["AppendResult", "StorageEngine"]


class StorageEngine:
    def __init__(
        self,
        settings: Settings,
        metadata: MetadataStore,
        wal: WriteAheadLog | None = None,
        objects: ObjectStore | None = None,
        clock: Clock | None = None,
        assignment: Assignment | None = None,
        topic_configs: Callable[[str], dict[str, str]] | None = None,
        wal_incarnation: int | None = None,  # the registry's: names object WAL objects
    ) -> None:
        self.settings = settings
        self.metadata = metadata
        self.clock = clock = clock or SystemClock()
        self._assignment = assignment or TargetAssignment(settings.node_id)
        self.leadership = Leadership(metadata, settings.node_id, self._release)
        self.objects = objects or open_object_store(
            settings.resolved_object_store_url, settings.object_store_request_timeout_ms, clock
        )
        self.budget = MemoryBudget(settings.memory_budget_bytes, settings.log_cache_bytes)
        self.wal = wal or open_wal(settings, self.budget, clock, wal_incarnation)
        self.wal.on_failure = self._take_back_failed_writes
        self.log_cache = LogCache(self.budget, self.wal)
        reserve = metadata.reserve
        self.disk_gate = DiskFullGate(
            2 * (reserve.size_bytes if reserve else 0) + settings.message_max_bytes,
            self._free_bytes_for_appends,
            clock,
        )
        self.partitions: dict[tuple[str, int], PartitionLog] = {}
        self._by_stream: dict[int, PartitionLog] = {}
        self._released: set[tuple[str, int]] = set()  # partitions fenced away from us
        # Partitions another node led when the metadata was read: (its node, epoch).
        self.led_elsewhere: dict[tuple[str, int], tuple[int, int]] = {}
        self.blocks = BlockCache(
            self.objects,
            self.budget,
            concurrency=settings.object_read_concurrency,
            coalesce_bytes=settings.object_read_coalesce_bytes,
            span_bytes=settings.object_read_span_bytes,
            part_bytes=settings.object_read_part_bytes,
        )
        self.log_start = LogStart(
            settings,
            clock,
            metadata,
            self.objects,
            self.blocks,
            self.live_partitions,
            topic_configs or (lambda topic: {}),
            self.objects_unreferenced,
        )
        self.deleter = ObjectDeleter(metadata, self.objects, self.blocks, clock)
        self.in_flight = InFlightKeys()
        self.orphan_sweep = OrphanSweep(settings, metadata, self.objects, clock, self.in_flight)
        self.cleaner = Cleaner(
            settings,
            metadata,
            self.objects,
            clock,
            self.live_partitions,
            topic_configs or (lambda topic: {}),
            self.in_flight,
            self.log_start.delete_delay_ms,
            self.objects_unreferenced,
            self.log_cache.forget_uploaded_below,
        )
        self.compactor = ObjectCompactor(
            settings,
            metadata,
            self.objects,
            clock,
            self.budget,
            self.live_partitions,
            topic_configs or (lambda topic: {}),
            self.in_flight,
            self.cleaner.locks,
            self.log_start.delete_delay_ms,
            self.objects_unreferenced,
        )
        # Only a store other brokers share can have another claimer (wal_dirty.py).
        self.dirty = DirtyMarks(metadata, self.leadership.release, metadata.shared)
        self.uploader = Uploader(
            settings,
            metadata,
            self.objects,
            clock,
            self.log_cache,
            self.leadership,
            self.log_cache.pending_partitions,
            self.log_start.delete_orphans,
            self.in_flight,
            before_upload=self.ensure_metadata_reserve,
            after_upload=self.trim_wal,
            dirty=self.dirty,
        )
        self._appender = Appender(
            self.wal,
            self.log_cache,
            self.disk_gate,
            settings.upload_bytes,
            self.uploader.wakeup.set,
            self.dirty.before_ack,
            # With an object WAL another broker may replay a dirty partition's WAL: its
            # epoch is read after each PUT, before acknowledging (RFC 0004 §5).
            self._confirm if metadata.shared and isinstance(self.wal, ObjectWal) else None,
        )
        self.mirror_append = self._appender.mirror  # a batch at its source's offsets
        self.readahead = Readahead(
            self.blocks,
            (
                self.objects.get_latency
                if isinstance(self.objects, BoundedObjectStore)
                else GetLatency()
            ),
            clock,
            lambda: len(self._by_stream),
            settings.object_read_ahead_min_bytes,
            settings.object_read_ahead_max_bytes,
            settings.object_read_ahead_enable,
        )
        # Bulk work's turns on the loop: catch-up reads here, their responses' slices in
        # the connections (the listeners count the requests waiting).
        self.loop_governor = LoopGovernor()
        self.read_lane = ReadLane(settings.object_read_fetch_concurrency, self.loop_governor)
        self.reader = Reader(self.log_cache, self.blocks, self.read_lane, self.readahead)
        self.takeover = WalTakeover(
            settings,
            metadata,
            self.wal,
            self.log_cache,
            clock,
            self._build_recovering,
            self._serve_recovered,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._opening = asyncio.Lock()
        self._refusals = RefusalLog()

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Load partitions, claim leadership, replay the WAL tail past committed objects,
        start uploads and retention."""
        records = self._assigned(await self.metadata.partitions())
        await self._open_partitions(records, await self.metadata.range_summaries())
        refuse_local_wal_backlog(
            self.settings,
            lambda stream: p.index.uploaded_end if (p := self._by_stream.get(stream)) else None,
        )
        # Only streams this node led last (another leader may have written past them).
        mine = {r.stream_id for r in records if r.leader_node == self.settings.node_id}
        replayed = await replay(self.wal.recover_pages(), self._by_stream, self.log_cache, mine)
        if replayed:
            log.info("replayed %d WAL entries past the last committed object", replayed)
        await self.dirty.settle_opened(self._by_stream.values(), records)
        if self._free_bytes_for_appends() < self.disk_gate.headroom_bytes:
            self.disk_gate.disk_full()
            log.warning("starting on a full disk: produce is refused until space returns")
        self._tasks = background_tasks(self)

    async def _open_partitions(
        self,
        records: list[PartitionRecord],
        summaries: dict[int, RangeSummary] | None,
        unclean: frozenset[int] = frozenset(),
    ) -> None:
        """Claim leadership of `records` (one metadata transaction) and load the state of
        those claimed. With `summaries` (start-up) their object indexes stay in the store
        until first needed (partition_index.py); without, they are new and have none.
        One opening at a time: a topic's creator and the reconciler may both find its
        new partitions, and the second finds them open instead of claiming again."""
        async with self._opening:
            await self._open_claimed(
                [r for r in records if (r.topic, r.partition) not in self.partitions],
                summaries,
                unclean,
            )

    async def _open_claimed(
        self,
        records: list[PartitionRecord],
        summaries: dict[int, RangeSummary] | None,
        unclean: frozenset[int],
    ) -> None:
        outcome = await self.leadership.claim(records, unclean)
        epochs = outcome.claimed
        recovering: dict[tuple[WalSource, ...], list[PartitionRecord]] = {}
        for record in records:
            if record.stream_id not in epochs:
                continue
            sources = outcome.recovering.get(record.stream_id)
            if sources is not None:
                # Served once recovered from a dead broker's object WAL (wal_takeover.py).
                recovering.setdefault(sources, []).append(
                    dataclasses.replace(record, leader_epoch=epochs[record.stream_id])
                )
                continue
            summary = summaries.get(record.stream_id) if summaries is not None else None
            self._serve(self._new_partition(record, epochs[record.stream_id], summary))
        for sources, claimed in recovering.items():
            self.takeover.start(sources, claimed)

    def _new_partition(
        self, record: PartitionRecord, epoch: int, summary: RangeSummary | None
    ) -> PartitionLog:
        args = (self.metadata, self.blocks, self.budget, self.clock)
        return claimed_log(record, epoch, summary, *args)

    def _serve(self, partition: PartitionLog) -> None:
        self.partitions[(partition.topic, partition.partition)] = partition
        self._by_stream[partition.stream_id] = partition

    async def _build_recovering(self, records: list[PartitionRecord]) -> dict[int, PartitionLog]:
        """Logs for partitions claimed to recover them (records carry the new epochs)."""
        summaries = await object_ends(self.metadata, records)
        return {
            r.stream_id: self._new_partition(r, r.leader_epoch, summaries.get(r.stream_id))
            for r in records
        }

    async def _serve_recovered(
        self, partitions: dict[int, PartitionLog], records: list[PartitionRecord]
    ) -> None:
        """Mark the recovered partitions dirty (or clean: nothing replayed) at this
        broker's epoch, then serve them."""
        await self.dirty.settle_opened(partitions.values(), records)
        for partition in partitions.values():
            if not self.leadership.leads(partition.stream_id):
                release_memory(partition)  # fenced meanwhile: never served
                continue
            self._serve(partition)
            key = (partition.topic, partition.partition)
            self._released.discard(key)
            self.led_elsewhere.pop(key, None)
            log.info("%s-%d: recovered, leading at epoch %d", *key, partition.leader_epoch)
        self.leadership.generation += 1

    async def open_new_partitions(self, topic: str) -> None:
        """Open a new topic's (or new partitions') logs; they have no data yet."""
        records = self._assigned(
            [
                r
                for r in await self.metadata.partitions(topic)
                if (topic, r.partition) not in self.partitions
            ]
        )
        await self._open_partitions(records, None)

    async def assign(
        self, records: list[PartitionRecord], unclean: frozenset[int] = frozenset()
    ) -> list[int]:
        """Open partitions the reconciler found targeted here: claim them (one metadata
        transaction, which checks they are claimable; dirty ones only if in `unclean`),
        then serve them from their objects; returns the streams claimed. A partition
        handed over, or left clean by a dead leader, has its whole log in objects, so
        nothing is copied or replayed."""
        records = [r for r in records if (r.topic, r.partition) not in self.partitions]
        if not records:
            return []
        summaries = await object_ends(self.metadata, records)
        before = set(self._by_stream)
        await self._open_partitions(records, summaries, unclean)
        opened = [stream for stream in self._by_stream if stream not in before]
        for stream_id in opened:
            partition = self._by_stream[stream_id]
            key = (partition.topic, partition.partition)
            self._released.discard(key)
            self.led_elsewhere.pop(key, None)
            log.info("%s-%d: leading at epoch %d", *key, partition.leader_epoch)
        return opened

    async def release(self, stream_id: int) -> bool:
        """Hand a partition over (RFC 0004 §6): refuse new appends, wait for its WAL writes
        in flight, upload its tail (`Uploader.flush`), then leave it without a leader in
        the metadata store (if this broker still leads it at its epoch), so its target
        claims it with nothing to copy. False when it was not led here or was fenced
        meanwhile. A failed upload serves it again and raises (MoveTimedOut past
        `partition.move.timeout.ms`); a failed release raises with appends still refused.
        The reconciler retries either but the timeout."""
        partition = self._by_stream.get(stream_id)
        if partition is None:
            return False
        partition.handing_over = True
        deadline = asyncio.timeout(self.settings.partition_move_timeout_ms / 1000)
        try:
            async with deadline:
                await self.uploader.flush(partition)
        except BaseException as exc:
            partition.handing_over = False
            if deadline.expired():
                raise MoveTimedOut(stream_id) from exc
            raise
        if partition.deleted:
            return False  # fenced or deleted during the flush
        # Once asked, the store may have released it whatever the reply: appends stay
        # refused (`resume` takes it back if its target returns here), and a release cut
        # short by a stop still completes.
        released = await asyncio.shield(
            self.metadata.release_leadership(
                stream_id, self.settings.node_id, partition.leader_epoch
            )
        )
        key = (partition.topic, partition.partition)
        self.leadership.release(stream_id)
        self.led_elsewhere[key] = (-1, partition.leader_epoch)
        log.info(
            "%s-%d: handed over at epoch %d, offset %d",
            *key,
            partition.leader_epoch,
            partition.next_offset,
        )
        return released

    def resume(self, stream_id: int) -> None:
        """A partition whose handover failed is targeted here again: serve it again."""
        partition = self._by_stream.get(stream_id)
        if partition is not None and partition.handing_over:
            partition.handing_over = False
            log.info("%s-%d: handover abandoned", partition.topic, partition.partition)

    def note_leaders(self, leaders: dict[tuple[str, int], tuple[int, int]]) -> None:
        """The leaders (node, epoch) of partitions not led here, as last read from the
        metadata store (Metadata answers and NOT_LEADER_OR_FOLLOWER name them)."""
        changed = False
        for key, leader in leaders.items():
            if key in self.partitions or self.led_elsewhere.get(key) == leader:
                continue
            self.led_elsewhere[key] = leader
            changed = True
        if changed:
            self.leadership.generation += 1

    def _assigned(self, records: list[PartitionRecord]) -> list[PartitionRecord]:
        """Those of `records` the assignment gives this broker; the others' leaders are
        remembered for Metadata and NOT_LEADER_OR_FOLLOWER."""
        assigned = []
        for record in records:
            key = (record.topic, record.partition)
            if self._assignment.leads(record):
                assigned.append(record)
                self.led_elsewhere.pop(key, None)
            else:
                self.led_elsewhere[key] = (record.leader_node, record.leader_epoch)
        return assigned

    async def close(self) -> None:
        """Stop background work, then upload what `shutdown.timeout.ms` allows; whatever
        is left stays in the WAL and is uploaded after the next start."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.takeover.close()
        await clean_stop.upload_and_settle_wal(self)
        self.dirty.close()
        self.wal.close()

    # -- partitions --------------------------------------------------------------------

    def partition(self, topic: str, index: int) -> PartitionLog:
        """The partition this broker leads; Kafka's errors for one it does not."""
        partition = self.partitions.get((topic, index))
        if partition is not None:
            return partition
        elsewhere = self.led_elsewhere.get((topic, index))
        if elsewhere is not None and elsewhere[0] != -1:
            raise NotLeader(f"{topic}-{index} is led by node {elsewhere[0]}.")
        if (topic, index) in self._released:
            raise NotLeader(f"This broker no longer leads {topic}-{index}.")
        if elsewhere is not None:
            raise NotLeader(f"{topic}-{index} has no leader at the moment.")
        raise KafkaError(
            ErrorCode.unknown_topic_or_partition,
            "This server does not host this topic-partition.",
        )

    def live_partitions(self) -> list[PartitionLog]:
        return list(self._by_stream.values())

    def drop_topic(self, topic: str) -> None:
        for key in [k for k in self.partitions if k[0] == topic]:
            partition = self.partitions[key]
            self.leadership.forget(partition.stream_id)
            self._close_partition(partition)
        self._released = {k for k in self._released if k[0] != topic}
        for key in [k for k in self.led_elsewhere if k[0] == topic]:
            del self.led_elsewhere[key]

    def _release(self, stream_id: int) -> None:
        """Leadership released the partition (fenced): stop serving and acknowledging it;
        its un-uploaded WAL data belongs to the new leader now."""
        partition = self._by_stream.get(stream_id)
        if partition is not None:
            self._released.add((partition.topic, partition.partition))
            partition.released = True
            self._close_partition(partition)

    def _close_partition(self, partition: PartitionLog) -> None:
        self.partitions.pop((partition.topic, partition.partition), None)
        self._by_stream.pop(partition.stream_id, None)
        partition.deleted = True
        release_memory(partition)
        self.log_cache.drop_partition(partition)
        partition.notify()

    # -- produce -----------------------------------------------------------------------

    def _confirm(self, partition: PartitionLog) -> asyncio.Future[None]:
        return self.leadership.confirm(partition.stream_id)

    @property
    def pending_bytes(self) -> int:
        """Un-uploaded bytes (the WAL backlog)."""
        return self.log_cache.pending_bytes

    def admission(self) -> Admission:
        """Whether a produce request may append now, and how long to throttle it."""
        refusal = self.disk_gate.refusal()
        if refusal is not None:
            return self._refusals(Admission(0, refusal))
        return self._refusals(
            admit(
                self.log_cache.pending_bytes,
                self.settings.wal_backlog_bytes,
                self.budget.produce_pinned_bytes,
                self.budget.total_bytes,
            )
        )

    def append(
        self,
        partition: PartitionLog,
        batches: Iterable[tuple[BatchHeader, memoryview]],
        log_append_time_ms: int | None = None,
    ) -> AppendResult:
        """Assign offsets to validated batches and queue them for the WAL (appender.py)."""
        return self._appender.append(partition, batches, log_append_time_ms)

    def _take_back_failed_writes(self, position: int, error: BaseException) -> None:
        # A batch that is not durable is not uploaded: its partition is pending.
        self._appender.take_back(self.log_cache.pending_partitions(), position, error)

    def _free_bytes_for_appends(self) -> int:
        """Free space the WAL may use: none until the metadata reserve is back."""
        reserve = self.metadata.reserve
        if reserve is not None and not reserve.present:
            return 0
        return self.wal.free_bytes()

    def ensure_metadata_reserve(self) -> None:
        reserve = self.metadata.reserve
        if reserve is None or reserve.present:
            return
        if self.wal.free_bytes() >= 2 * reserve.size_bytes:
            reserve.ensure()

    # -- fetch -------------------------------------------------------------------------

    async def read(
        self,
        partition: PartitionLog,
        offset: int,
        bytes_max: int,
        allow_oversize: bool = True,
        isolation_level: int = READ_UNCOMMITTED,
    ) -> list[bytes | memoryview]:
        """Whole batches from `offset` within `bytes_max` (reader.py)."""
        return await self.reader.read(partition, offset, bytes_max, allow_oversize, isolation_level)

    async def read_many(
        self,
        requests: Sequence[ReadRequest],
        max_bytes: int,
        yield_due: Callable[[], bool] | None = None,
    ) -> list[list[bytes | memoryview] | KafkaError | OSError]:
        """The partitions of one Fetch, read together (reader.py)."""
        return await self.reader.read_many(requests, max_bytes, yield_due)

    async def batch_bytes(self, batches: list[CachedBatch]) -> list[bytes | memoryview]:
        return await self.log_cache.batch_bytes(batches)

    async def batches_for_lookup(self, partition: PartitionLog) -> list[bytes | memoryview]:
        return await self.reader.batches_for_lookup(partition)

    # -- upload, retention, log start --------------------------------------------------

    async def upload_once(self) -> int:
        """Upload one object of the oldest pending batches (at most `upload.bytes`)."""
        return await self.uploader.upload_once()

    def trim_wal(self, reclaim_active: bool = False) -> None:
        """Delete WAL data that holds nothing un-uploaded (only partitions with pending
        batches hold any); with `reclaim_active`, or on a full disk, the active segment
        too when all of it is uploaded."""
        position = self.uploaded_wal_end()
        self.wal.trim(position, reclaim_active=reclaim_active or self.disk_gate.full)

    def uploaded_wal_end(self) -> int:
        """The WAL position below which every entry is in objects."""
        position = self.wal.end_position
        for partition in self.log_cache.pending.values():
            first = partition.first_unuploaded_position()
            if first is not None:
                position = min(position, first)
        return position

    async def enforce_retention(self, now_ms: int) -> None:
        await self.log_start.enforce_retention(now_ms)

    async def advance_log_start(self, partition: PartitionLog, offset: int) -> None:
        """DeleteRecords and retention: move the log start; delete unreferenced objects."""
        await self.log_start.advance(partition, offset)

    def delete_delay_ms(self, topic: str) -> int:
        """How long objects this topic stops referencing are kept for readers."""
        return self.log_start.delete_delay_ms(topic)

    def objects_unreferenced(self) -> None:
        """Objects were queued for deletion: the deleter looks at its queue again."""
        self.deleter.wakeup.set()
