"""The storage engine: produce → WAL → log cache → ack; upload → objects → trim.

`append()` validates nothing (the caller did) and assigns offsets synchronously; the
returned future completes when the batch is durable in the WAL. A background uploader
gathers every partition's durable batches into one object (bounded by `upload_bytes` and
`upload_interval_ms`), commits the object's ranges to the metadata store, then trims the
WAL. `read()` serves the log cache first and falls back to ranged object reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from contextplane import limits
from contextplane.errors import KafkaError
from contextplane.metadata.store import MetadataStore, PartitionRecord, RangeRecord
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import BatchHeader, iter_batch_headers, parse_header, stamp
from contextplane.settings import Settings
from contextplane.storage.object_format import StreamChunk, build_object, object_key
from contextplane.storage.objectstore import ObjectStore
from contextplane.storage.partition import CachedBatch, PartitionLog
from contextplane.storage.producer_state import ProducerStateTable
from contextplane.storage.retention import retention_start
from contextplane.storage.wal import WriteAheadLog

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AppendResult:
    base_offset: int
    log_append_time: int
    durable: asyncio.Future[None] | None  # None: nothing new was written (a duplicate)


class StorageEngine:
    def __init__(self, settings: Settings, metadata: MetadataStore) -> None:
        self.settings = settings
        self.metadata = metadata
        self.objects = ObjectStore(settings.resolved_object_store_url)
        self.wal = WriteAheadLog(
            settings.data_dir / "wal",
            segment_bytes=settings.wal_segment_bytes,
            fsync=settings.wal_fsync,
        )
        self.partitions: dict[tuple[str, int], PartitionLog] = {}
        self._by_stream: dict[int, PartitionLog] = {}
        self._upload_wakeup = asyncio.Event()
        self._pending_bytes = 0
        self._oldest_pending_ms: float | None = None
        self._cache_bytes = 0
        self._block_cache: OrderedDict[tuple[str, int], memoryview] = OrderedDict()
        self._block_cache_bytes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Load partitions, claim leadership, replay the WAL tail past committed objects."""
        self._open_partitions(self.metadata.partitions(), self.metadata.ranges_by_stream())
        replayed = 0
        for entry in self.wal.recover():
            partition = self._by_stream.get(entry.stream_id)
            if partition is None or entry.base_offset < partition.object_end_offset:
                continue  # deleted topic, or already in an object
            header = parse_header(entry.batch)
            end = entry.base_offset + header.last_offset_delta + 1
            partition.cache.append(
                CachedBatch(
                    entry.base_offset, end, header.max_timestamp, entry.batch, entry.position
                )
            )
            partition.producers.record(header, entry.base_offset)
            partition.next_offset = partition.high_watermark = end
            self._cache_bytes += len(entry.batch)
            self._pending_bytes += len(entry.batch)
            replayed += 1
        if replayed:
            self._oldest_pending_ms = time.monotonic() * 1000
            log.info("replayed %d WAL entries past the last committed object", replayed)
        self._tasks = [
            asyncio.create_task(self._upload_loop(), name="uploader"),
            asyncio.create_task(self._retention_loop(), name="retention"),
        ]

    def _open_partitions(
        self, records: list[PartitionRecord], ranges: dict[int, list[RangeRecord]]
    ) -> None:
        """Claim leadership of `records` (one metadata transaction) and load their state."""
        epochs = self.metadata.claim_leadership(
            {r.stream_id: r.leader_epoch for r in records}, self.settings.node_id
        )
        for record in records:
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

    def open_new_partitions(self, topic: str) -> None:
        """Open a new topic's (or new partitions') logs; they have no data yet."""
        records = [
            r
            for r in self.metadata.partitions(topic)
            if (topic, r.partition) not in self.partitions
        ]
        self._open_partitions(records, {})

    def drop_topic(self, topic: str) -> None:
        for key in [k for k in self.partitions if k[0] == topic]:
            partition = self.partitions.pop(key)
            self._by_stream.pop(partition.stream_id, None)
            partition.deleted = True
            for batch in partition.cache:
                self._cache_bytes -= len(batch.data)
                if not batch.uploaded:
                    self._pending_bytes -= len(batch.data)
            partition.cache.clear()
            partition.notify()

    async def close(self) -> None:
        """Stop background work after one last upload, so a clean restart replays nothing."""
        self._closing = True
        self._upload_wakeup.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.upload_once()
        except Exception:  # noqa: BLE001 - the WAL still holds the data
            log.exception("final upload failed; the WAL keeps the data for the next start")
        self.wal.close()

    # -- produce -----------------------------------------------------------------------

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
            partition.cache.append(CachedBatch(base, end, max_timestamp, data, position))
            partition.producers.record(header, base)
            partition.next_offset = end
            self._cache_bytes += len(data)
            self._pending_bytes += len(data)
            durable.add_done_callback(
                lambda f, p=partition, e=end: None if f.exception() else p.advance_high_watermark(e)
            )
        if self._oldest_pending_ms is None:
            self._oldest_pending_ms = time.monotonic() * 1000
        if self._pending_bytes >= self.settings.upload_bytes:
            self._upload_wakeup.set()
        return AppendResult(
            first_offset, -1 if log_append_time_ms is None else log_append_time_ms, durable
        )

    def _durable_at(self, partition: PartitionLog, end_offset: int) -> asyncio.Future[None] | None:
        if partition.high_watermark >= end_offset:
            return None
        return asyncio.ensure_future(self._wait_durable(partition, end_offset))

    async def _wait_durable(self, partition: PartitionLog, end_offset: int) -> None:
        while partition.high_watermark < end_offset and not partition.deleted:
            await partition.waiter()

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
            return cached
        return await self._read_objects(partition, offset, bytes_max, allow_oversize)

    async def _read_objects(
        self, partition: PartitionLog, offset: int, bytes_max: int, allow_oversize: bool
    ) -> list[bytes | memoryview]:
        chunks: list[bytes] = []
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
        data = await self.objects.get_range(
            record.object_key, record.position, record.position + record.size
        )
        self._block_cache[key] = data
        self._block_cache_bytes += len(data)
        while self._block_cache_bytes > limits.BLOCK_CACHE_BYTES_MAX and len(self._block_cache) > 1:
            _, evicted = self._block_cache.popitem(last=False)
            self._block_cache_bytes -= len(evicted)
        return data

    async def batches_for_lookup(self, partition: PartitionLog) -> list[bytes | memoryview]:
        """Every retained batch, oldest first (timestamp lookups; not a hot path)."""
        result: list[bytes | memoryview] = []
        for record in partition.ranges:
            result.append(await self._read_range(record))
        result.extend(
            b.data
            for b in partition.cache
            if b.base_offset >= partition.object_end_offset
            and b.end_offset <= partition.high_watermark
        )
        return result

    # -- upload ------------------------------------------------------------------------

    async def _upload_loop(self) -> None:
        interval_s = self.settings.upload_interval_ms / 1000
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._upload_wakeup.wait(), interval_s)
            self._upload_wakeup.clear()
            try:
                await self.upload_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the WAL; retry on the next tick
                log.exception("object upload failed; will retry")
                await asyncio.sleep(interval_s)

    async def upload_once(self) -> int:
        """Upload every partition's durable, not-yet-uploaded batches as one object."""
        chunks: list[tuple[PartitionLog, list[CachedBatch]]] = []
        for partition in list(self._by_stream.values()):
            pending = partition.pending_upload()
            if pending:
                chunks.append((partition, pending))
        if not chunks:
            self._oldest_pending_ms = None
            return 0
        stream_chunks = [
            StreamChunk(
                p.stream_id,
                batches[0].base_offset,
                batches[-1].end_offset,
                max(b.max_timestamp for b in batches),
                [b.data for b in batches],
            )
            for p, batches in chunks
        ]
        data, index = build_object(stream_chunks)
        # A durable counter: a key is never reused, even for an upload that failed.
        key = object_key(self.settings.node_id, self.metadata.next_counter("object_sequence"))
        await self.objects.put(key, data)
        created_ms = int(time.time() * 1000)
        self.metadata.commit_object(
            key,
            len(data),
            created_ms,
            [
                (e.stream_id, e.base_offset, e.end_offset, e.position, e.size, e.max_timestamp)
                for e in index
            ],
            {p.stream_id: p.leader_epoch for p, _ in chunks},
            # Producer state as of each range's end: a later batch may not be durable yet
            # (it would be "deduplicated" at an offset lost in a crash); replay adds those.
            {
                p.stream_id: p.producers.snapshot(e.end_offset)
                for (p, _), e in zip(chunks, index, strict=True)
            },
        )
        for (partition, batches), entry in zip(chunks, index, strict=True):
            for batch in batches:
                batch.uploaded = True
                self._pending_bytes -= len(batch.data)
            partition.object_end_offset = entry.end_offset
            partition.ranges.append(
                RangeRecord(
                    entry.stream_id,
                    entry.base_offset,
                    entry.end_offset,
                    key,
                    entry.position,
                    entry.size,
                    entry.max_timestamp,
                    created_ms,
                )
            )
        self._oldest_pending_ms = time.monotonic() * 1000 if self._pending_bytes else None
        self._trim_wal()
        self._evict_cache()
        return len(data)

    def _trim_wal(self) -> None:
        position = self.wal.end_position
        for partition in self._by_stream.values():
            index = partition.first_unuploaded_index()
            if index < len(partition.cache):
                position = min(position, partition.cache[index].wal_position)
        self.wal.trim(position)

    def _evict_cache(self) -> None:
        if self._cache_bytes <= self.settings.log_cache_bytes:
            return
        for partition in self._by_stream.values():
            drop = 0
            for batch in partition.cache:
                if not batch.uploaded or self._cache_bytes <= self.settings.log_cache_bytes // 2:
                    break
                self._cache_bytes -= len(batch.data)
                drop += 1
            del partition.cache[:drop]

    # -- retention and log start -------------------------------------------------------

    async def _retention_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.settings.retention_check_interval_ms / 1000)
            try:
                await self.enforce_retention(int(time.time() * 1000))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("retention pass failed")

    async def enforce_retention(self, now_ms: int) -> None:
        topics = {t.name: t.configs for t in self.metadata.topics()}
        for partition in list(self._by_stream.values()):
            configs = topics.get(partition.topic, {})
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
        await self.delete_orphans(self.metadata.advance_log_start(partition.stream_id, offset))

    async def delete_orphans(self, keys: list[str]) -> None:
        """Delete objects no range references any more, and their cached blocks."""
        for key in keys:
            await self.objects.delete(key)
        doomed = set(keys)
        for cached_key in [k for k in self._block_cache if k[0] in doomed]:
            self._block_cache_bytes -= len(self._block_cache.pop(cached_key))
