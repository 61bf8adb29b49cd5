"""The storage engine: produce → WAL → log cache → ack; upload → objects → trim.

`append()` validates nothing (the caller did) and assigns offsets synchronously; the
returned future completes when the batch is durable in the WAL. If the WAL write fails,
the batch and every later one are taken back (offsets stay dense, producer state is
rolled back) and their producers get KAFKA_STORAGE_ERROR. The uploader (uploader.py)
puts the oldest durable batches into objects of at most `upload.bytes`, commits them to
the metadata store, then trims the WAL. `read()` serves the log cache (or the WAL, for
batches whose bytes left memory) and falls back to ranged object reads. Memory is held
to one budget (memory.py); produce is throttled and refused as the WAL backlog or the
budget nears its bound, or while the disk is full (admission.py).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from contextplane.clock import Clock, SystemClock
from contextplane.cluster.assignment import Assignment, EveryPartition
from contextplane.cluster.leadership import Leadership, NotLeader
from contextplane.errors import KafkaError
from contextplane.metadata.records import PartitionRecord, RangeRecord
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import BatchHeader, iter_batch_headers, parse_header, stamp
from contextplane.settings import Settings
from contextplane.storage.admission import Admission, DiskFullGate, admit, free_bytes
from contextplane.storage.memory import MemoryBudget, ResidentBatches
from contextplane.storage.objectstore import ObjectStore
from contextplane.storage.partition import CachedBatch, PartitionLog
from contextplane.storage.producer_state import ProducerStateTable
from contextplane.storage.retention import retention_start
from contextplane.storage.uploader import Uploader
from contextplane.storage.wal import (
    BATCH_OFFSET_IN_ENTRY,
    FileOps,
    WalWriteError,
    WriteAheadLog,
    close_pieces,
    read_spans,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AppendResult:
    base_offset: int
    log_append_time: int
    durable: asyncio.Future[None] | None  # None: nothing new was written (a duplicate)


class StorageEngine:
    def __init__(
        self,
        settings: Settings,
        metadata: MetadataStore,
        wal_files: FileOps | None = None,
        objects: ObjectStore | None = None,
        clock: Clock | None = None,
        assignment: Assignment | None = None,
        topic_configs: Callable[[str], dict[str, str]] | None = None,
    ) -> None:
        self.settings = settings
        self.metadata = metadata
        self.clock = clock or SystemClock()
        self._assignment = assignment or EveryPartition()
        # A topic's configs (retention reads them); the broker's topic manager provides them.
        self._topic_configs = topic_configs or (lambda topic: {})
        self.leadership = Leadership(metadata, settings.node_id, self._release)
        self.objects = objects or ObjectStore(
            settings.resolved_object_store_url, settings.object_store_request_timeout_ms
        )
        self.wal = WriteAheadLog(
            settings.data_dir / "wal",
            segment_bytes=settings.wal_segment_bytes,
            fsync=settings.wal_fsync,
            files=wal_files,
            on_failure=self._take_back_failed_writes,
        )
        self.budget = MemoryBudget(settings.memory_budget_bytes, settings.log_cache_bytes)
        self._resident = ResidentBatches(self.budget)
        self.budget.on_shrink = self._evict
        reserve = metadata.reserve
        self.disk_gate = DiskFullGate(
            2 * (reserve.size_bytes if reserve else 0) + settings.message_max_bytes,
            self._free_bytes_for_appends,
        )
        self.partitions: dict[tuple[str, int], PartitionLog] = {}
        self._by_stream: dict[int, PartitionLog] = {}
        self.upload_wakeup = asyncio.Event()
        self.pending_bytes = 0  # un-uploaded bytes (the WAL backlog)
        self._block_cache: OrderedDict[tuple[str, int], memoryview] = OrderedDict()
        self.uploader = Uploader(self)
        self._released: set[tuple[str, int]] = set()  # partitions fenced away from us
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._refusing = False  # for logging each refusal episode once

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Load partitions, claim leadership, replay the WAL tail past committed objects.

        Replay keeps only what the memory budget allows in memory; older batches are
        read back from the WAL when uploaded or fetched.
        """
        records = [r for r in await self.metadata.partitions() if self._assignment.leads(r)]
        await self._open_partitions(records, await self.metadata.ranges_by_stream())
        replayed = 0
        for entry in self.wal.recover():
            partition = self._by_stream.get(entry.stream_id)
            if partition is None or entry.base_offset < partition.object_end_offset:
                continue  # deleted topic, or already in an object
            header = parse_header(entry.batch)
            end = entry.base_offset + header.last_offset_delta + 1
            self._cache(
                partition,
                CachedBatch(
                    entry.base_offset,
                    end,
                    header.max_timestamp,
                    entry.batch,
                    entry.position,
                    len(entry.batch),
                ),
            )
            partition.producers.record(header, entry.base_offset)
            partition.next_offset = end
            partition.advance_high_watermark(end)
            replayed += 1
        if replayed:
            log.info("replayed %d WAL entries past the last committed object", replayed)
        if self._free_bytes_for_appends() < self.disk_gate.headroom_bytes:
            self.disk_gate.disk_full()
            log.warning("starting on a full disk: produce is refused until space returns")
        self._tasks = [
            asyncio.create_task(self.uploader.run(), name="uploader"),
            asyncio.create_task(self._retention_loop(), name="retention"),
        ]

    async def _open_partitions(
        self, records: list[PartitionRecord], ranges: dict[int, list[RangeRecord]]
    ) -> None:
        """Claim leadership of `records` (one metadata transaction) and load the state of
        those claimed."""
        epochs = await self.leadership.claim(records)
        for record in records:
            if record.stream_id not in epochs:
                continue
            stream_ranges = ranges.get(record.stream_id, [])
            object_end = max([r.end_offset for r in stream_ranges] + [record.log_start_offset])
            partition = PartitionLog(
                stream_id=record.stream_id,
                topic=record.topic,
                partition=record.partition,
                leader_epoch=epochs[record.stream_id],
                log_start_offset=record.log_start_offset,
                next_offset=object_end,
                high_watermark=object_end,
                object_end_offset=object_end,
                ranges=stream_ranges,
                producers=ProducerStateTable.from_snapshot(record.producer_state),
            )
            self.partitions[(record.topic, record.partition)] = partition
            self._by_stream[record.stream_id] = partition

    async def open_new_partitions(self, topic: str) -> None:
        """Open a new topic's (or new partitions') logs; they have no data yet."""
        records = [
            r
            for r in await self.metadata.partitions(topic)
            if (topic, r.partition) not in self.partitions and self._assignment.leads(r)
        ]
        await self._open_partitions(records, {})

    def partition(self, topic: str, index: int) -> PartitionLog:
        """The partition this broker leads; Kafka's errors for one it does not."""
        partition = self.partitions.get((topic, index))
        if partition is not None:
            return partition
        if (topic, index) in self._released:
            raise NotLeader(f"This broker no longer leads {topic}-{index}.")
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
        self._forget(partition.cache)
        partition.cache.clear()
        partition.notify()

    async def close(self) -> None:
        """Stop background work, then upload what `shutdown.timeout.ms` allows; whatever
        is left stays in the WAL and is uploaded after the next start."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        deadline_s = self.settings.shutdown_timeout_ms / 1000
        try:
            await asyncio.wait_for(self.uploader.drain(), deadline_s)
        except TimeoutError:
            log.warning(
                "shutdown: %d un-uploaded bytes stay in the WAL for the next start"
                " (shutdown.timeout.ms=%d)",
                self.pending_bytes,
                self.settings.shutdown_timeout_ms,
            )
        self.wal.close()

    # -- produce -----------------------------------------------------------------------

    def admission(self) -> Admission:
        """Whether a produce request may append now, and how long to throttle it."""
        refusal = self.disk_gate.refusal()
        if refusal is not None:
            admission = Admission(0, refusal)
        else:
            admission = admit(
                self.pending_bytes,
                self.settings.wal_backlog_bytes,
                self.budget.pinned_bytes,
                self.budget.total_bytes,
            )
        refusing = admission.refusal is not None
        if refusing != self._refusing:
            self._refusing = refusing
            if refusing:
                log.warning("refusing produce: %s", admission.refusal)
            else:
                log.info("produce accepted again")
        return admission

    def append(
        self,
        partition: PartitionLog,
        batches: Iterable[tuple[BatchHeader, memoryview]],
        log_append_time_ms: int | None = None,
    ) -> AppendResult:
        """Assign offsets to validated batches and queue them for the WAL."""
        headers = list(batches)
        for header, _ in headers:
            duplicate = partition.producers.check_sequence(header)
            if duplicate is not None:
                if len(headers) != 1:  # the produce handler admits one batch per partition
                    raise KafkaError(ErrorCode.invalid_record, "duplicate inside a multi-batch")
                return AppendResult(
                    duplicate.base_offset,
                    -1,
                    self._durable_at(partition, duplicate.last_offset + 1),
                )
            if header.is_transactional or header.is_control:
                raise KafkaError(
                    ErrorCode.invalid_txn_state, "transactional produce is not supported yet"
                )
        refusal = self.disk_gate.refusal()
        if refusal is not None:
            raise KafkaError(ErrorCode.kafka_storage_error, refusal)
        first_offset = partition.next_offset
        durable: asyncio.Future[None] | None = None
        for header, batch in headers:
            base = partition.next_offset
            data = stamp(batch, base, partition.leader_epoch, log_append_time_ms)
            end = base + header.last_offset_delta + 1
            position, durable = self.wal.append(partition.stream_id, base, data)
            max_timestamp = (
                header.max_timestamp if log_append_time_ms is None else log_append_time_ms
            )
            self._cache(partition, CachedBatch(base, end, max_timestamp, data, position, len(data)))
            partition.producers.record(header, base)
            partition.next_offset = end
            durable.add_done_callback(_advance_when_durable(partition, end))
        if self.pending_bytes >= self.settings.upload_bytes:
            self.upload_wakeup.set()
        assert durable is not None
        return AppendResult(
            first_offset,
            -1 if log_append_time_ms is None else log_append_time_ms,
            _acknowledgement(partition, durable),
        )

    def _cache(self, partition: PartitionLog, batch: CachedBatch) -> None:
        partition.cache.append(batch)
        self._resident.add(partition, batch)
        self.budget.cached_batches += 1
        self.pending_bytes += batch.size
        self._evict()

    def _evict(self) -> None:
        for owner in self._resident.evict():
            self.forget_uploaded(owner)

    def forget_uploaded(self, partition: PartitionLog) -> None:
        self.budget.cached_batches -= partition.drop_uploaded_records()

    def _forget(self, batches: Iterable[CachedBatch]) -> None:
        for batch in batches:
            self._resident.drop(batch)
            self.budget.cached_batches -= 1
            if not batch.uploaded:
                self.pending_bytes -= batch.size

    def _take_back_failed_writes(self, position: int, error: BaseException) -> None:
        """The WAL could not make anything from `position` on durable: take those batches
        back, so offsets stay dense and idempotent retries are appended again."""
        for partition in self._by_stream.values():
            self._forget(partition.truncate_from_wal_position(position))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            self.disk_gate.disk_full()

    def _free_bytes_for_appends(self) -> int:
        """Free space the WAL may use: none until the metadata reserve is back."""
        reserve = self.metadata.reserve
        if reserve is not None and not reserve.present:
            return 0
        return free_bytes(self.wal.directory)

    def ensure_metadata_reserve(self) -> None:
        reserve = self.metadata.reserve
        if reserve is None or reserve.present:
            return
        if free_bytes(self.wal.directory) >= 2 * reserve.size_bytes:
            reserve.ensure()

    def _durable_at(self, partition: PartitionLog, end_offset: int) -> asyncio.Future[None] | None:
        if partition.high_watermark >= end_offset:
            return None
        return asyncio.ensure_future(self._wait_durable(partition, end_offset))

    async def _wait_durable(self, partition: PartitionLog, end_offset: int) -> None:
        """A retried batch waits for its original; if batches were taken back meanwhile
        (the original's write may have failed) the retry fails too, retriably."""
        truncations = partition.truncations
        while partition.high_watermark < end_offset and not partition.deleted:
            if partition.truncations != truncations:
                raise WalWriteError("the first attempt of this batch was not written; retry")
            await partition.waiter()
        if partition.released:
            raise NotLeader(f"{partition.topic}-{partition.partition} was fenced: retry")

    # -- fetch -------------------------------------------------------------------------

    async def read(
        self, partition: PartitionLog, offset: int, bytes_max: int, allow_oversize: bool = True
    ) -> list[bytes | memoryview]:
        """Whole batches from `offset` up to the high watermark, within `bytes_max`; with
        `allow_oversize`, the first batch is returned even if it alone is larger."""
        if offset < partition.log_start_offset or offset > partition.high_watermark:
            raise KafkaError(
                ErrorCode.offset_out_of_range,
                f"offset {offset} is outside [{partition.log_start_offset},"
                f" {partition.high_watermark}]",
            )
        if offset == partition.high_watermark:
            return []
        cached = partition.cached_from(offset, bytes_max, allow_oversize)
        if cached is not None:
            return await self.batch_bytes(cached)
        return await self._read_objects(partition, offset, bytes_max, allow_oversize)

    async def batch_bytes(self, batches: list[CachedBatch]) -> list[bytes | memoryview]:
        """Each batch's bytes: from memory, or read back from the WAL."""
        found: list[bytes | memoryview | None] = [b.data for b in batches]
        missing = [i for i, data in enumerate(found) if data is None]
        if not missing:
            return found  # type: ignore[return-value]
        # Open the segments now, before any await: a trim cannot take them away then.
        spans: list[list[tuple[int, int, int]]] = []
        handed_over = False  # read_spans closes the files once it has them
        try:
            for i in missing:
                start = batches[i].wal_position + BATCH_OFFSET_IN_ENTRY
                spans.append(self.wal.open_span(start, start + batches[i].size))
            async with self.budget.reserve(sum(batches[i].size for i in missing)):
                reading = asyncio.get_running_loop().run_in_executor(None, read_spans, spans)
                handed_over = True
                read = await reading
        finally:
            if not handed_over:
                for span in spans:
                    close_pieces(span)
        for i, data in zip(missing, read, strict=True):
            found[i] = data
        return found  # type: ignore[return-value]

    async def _read_objects(
        self, partition: PartitionLog, offset: int, bytes_max: int, allow_oversize: bool
    ) -> list[bytes | memoryview]:
        chunks: list[bytes | memoryview] = []
        total = 0
        for record in partition.ranges:
            if record.end_offset <= offset:
                continue
            data = await self._read_range(record)
            position = 0
            view = memoryview(data)
            for header in iter_batch_headers(data):
                size = header.total_bytes
                end = header.base_offset + header.last_offset_delta + 1
                if end > offset:
                    if (chunks or not allow_oversize) and total + size > bytes_max:
                        return chunks
                    chunks.append(view[position : position + size])
                    total += size
                position += size
            if total >= bytes_max:
                break
        return chunks

    async def _read_range(self, record: RangeRecord) -> memoryview:
        key = (record.object_key, record.position)
        data = self._block_cache.get(key)
        if data is not None:
            self._block_cache.move_to_end(key)
            return data
        async with self.budget.reserve(record.size):
            data = await self.objects.get_range(
                record.object_key, record.position, record.position + record.size
            )
        self._block_cache[key] = data
        self.budget.block_cache_bytes += len(data)
        while (
            self.budget.block_cache_bytes > self.budget.block_cache_limit
            and len(self._block_cache) > 1
        ):
            _, evicted = self._block_cache.popitem(last=False)
            self.budget.block_cache_bytes -= len(evicted)
        self._evict()
        return data

    async def batches_for_lookup(self, partition: PartitionLog) -> list[bytes | memoryview]:
        """Every retained batch, oldest first (timestamp lookups; not a hot path)."""
        result: list[bytes | memoryview] = []
        for record in partition.ranges:
            result.append(await self._read_range(record))
        tail = [
            b
            for b in partition.cache
            if b.base_offset >= partition.object_end_offset
            and b.end_offset <= partition.high_watermark
        ]
        result.extend(await self.batch_bytes(tail))
        return result

    # -- upload ------------------------------------------------------------------------

    async def upload_once(self) -> int:
        """Upload one object of the oldest pending batches (at most `upload.bytes`)."""
        return await self.uploader.upload_once()

    def trim_wal(self) -> None:
        """Delete WAL segments that hold nothing un-uploaded."""
        position = self.wal.end_position
        for partition in self._by_stream.values():
            first = partition.first_unuploaded_position()
            if first is not None:
                position = min(position, first)
        self.wal.trim(position, reclaim_active=self.disk_gate.full)

    # -- retention and log start -------------------------------------------------------

    async def _retention_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.settings.retention_check_interval_ms / 1000)
            try:
                await self.enforce_retention(self.clock.wall_ms())
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("retention pass failed")

    async def enforce_retention(self, now_ms: int) -> None:
        for partition in list(self._by_stream.values()):
            configs = self._topic_configs(partition.topic)
            new_start = retention_start(
                partition.ranges,
                now_ms,
                retention_ms=int(configs.get("retention.ms", self.settings.retention_ms)),
                retention_bytes=int(configs.get("retention.bytes", self.settings.retention_bytes)),
                segment_bytes=int(configs.get("segment.bytes", self.settings.segment_bytes)),
                segment_ms=int(configs.get("segment.ms", self.settings.segment_ms)),
            )
            if new_start is not None and new_start > partition.log_start_offset:
                await self.advance_log_start(partition, new_start)

    async def advance_log_start(self, partition: PartitionLog, offset: int) -> None:
        """DeleteRecords and retention: move the log start; delete unreferenced objects."""
        partition.log_start_offset = max(partition.log_start_offset, offset)
        partition.ranges = [r for r in partition.ranges if r.end_offset > offset]
        orphans = await self.metadata.advance_log_start(partition.stream_id, offset)
        await self.delete_orphans(orphans)

    async def delete_orphans(self, keys: list[str]) -> None:
        """Delete objects no range references any more, and their cached blocks."""
        for key in keys:
            await self.objects.delete(key)
        doomed = set(keys)
        for cached_key in [k for k in self._block_cache if k[0] in doomed]:
            self.budget.block_cache_bytes -= len(self._block_cache.pop(cached_key))


def _acknowledgement(
    partition: PartitionLog, durable: asyncio.Future[None]
) -> asyncio.Future[None]:
    """Resolved when the batch may be acknowledged: durable in the WAL, and the partition
    still led here (a fenced partition stops acknowledging at once)."""
    acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def settle(written: asyncio.Future[None]) -> None:
        if acked.done():
            return
        error = written.exception()
        if error is not None:
            acked.set_exception(error)
        elif partition.released:
            acked.set_exception(
                NotLeader(f"{partition.topic}-{partition.partition} was fenced: retry")
            )
        else:
            acked.set_result(None)

    durable.add_done_callback(settle)
    return acked


def _advance_when_durable(
    partition: PartitionLog, end: int
) -> Callable[[asyncio.Future[None]], None]:
    """The high watermark moves to `end` once the batch's WAL write is durable (not on a
    failed write)."""

    def advance(durable: asyncio.Future[None]) -> None:
        if not durable.exception():
            partition.advance_high_watermark(end)

    return advance
