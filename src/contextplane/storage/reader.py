"""Reads: whole batches from an offset up to what the reader may see.

The log cache serves the tail with no I/O (bytes that left memory are read back from the
WAL); older offsets come from objects, found through the partition's object index. The
partitions of one Fetch that need objects are planned together (read_plan.py) and their
ranges read at once through the block cache (coalesced, parallel GETs), in a slot of
the read lane (read_lane.py), with read-ahead started for the streams read (readahead.py).
A read never returns a batch at or past the high watermark (the last stable offset for a
read_committed consumer).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contextplane.errors import KafkaError
from contextplane.metadata.records import RangeRecord
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import iter_batch_headers
from contextplane.storage.block_cache import BlockCache
from contextplane.storage.log_cache import LogCache
from contextplane.storage.object_index import ObjectRanges
from contextplane.storage.partition import PartitionLog
from contextplane.storage.read_lane import ReadLane
from contextplane.storage.read_plan import PlanPartition, plan_ranges
from contextplane.storage.readahead import Readahead

READ_UNCOMMITTED = 0
READ_COMMITTED = 1

log = logging.getLogger(__name__)

Chunks = list[bytes | memoryview]


@dataclass(slots=True)  # not frozen: built for every partition of every Fetch
class ReadRequest:
    """One partition of a Fetch: its offset and its byte limit (partition_max_bytes)."""

    partition: PartitionLog
    offset: int
    bytes_max: int
    isolation_level: int = READ_UNCOMMITTED


class Reader:
    def __init__(
        self,
        log_cache: LogCache,
        blocks: BlockCache,
        lane: ReadLane | None = None,
        readahead: Readahead | None = None,
    ) -> None:
        self._log_cache = log_cache
        self._blocks = blocks
        self._lane = lane or ReadLane()
        self._readahead = readahead
        # Partition reads since start, for /metrics: answered by the log cache alone, or
        # planned over objects (the block cache counts how those ranges were found).
        self.log_cache_reads = 0
        self.object_reads = 0

    async def read(
        self,
        partition: PartitionLog,
        offset: int,
        bytes_max: int,
        allow_oversize: bool = True,
        isolation_level: int = READ_UNCOMMITTED,
    ) -> Chunks:
        """Whole batches from `offset` up to the high watermark (read_committed: the last
        stable offset), within `bytes_max`; with `allow_oversize`, the first batch is
        returned even if it alone is larger."""
        end = _end(partition, offset, isolation_level)
        if offset >= end:
            return []
        cached = partition.cached_from(offset, bytes_max, allow_oversize, end)
        if cached is not None:
            self.log_cache_reads += 1
            return await self._log_cache.batch_bytes(cached)
        self.object_reads += 1
        return await self._read_objects(partition, offset, end, bytes_max, allow_oversize)

    async def read_many(
        self,
        requests: Sequence[ReadRequest],
        max_bytes: int,
        yield_due: Callable[[], bool] | None = None,
    ) -> list[Chunks | KafkaError | OSError]:
        """Each partition's batches, or its error, as `read` of each in turn with a
        response bound of `max_bytes` would answer (KIP-74: only the first batch of the
        first non-empty partition may exceed a bound), except that a partition read from
        objects may get fewer batches: the ones its planned ranges hold.

        A read that needs objects waits for a slot of the read lane; while it assembles,
        it gives the loop back between partitions whenever `yield_due()` says so."""
        results: list[Chunks | KafkaError | OSError | None] = [None] * len(requests)
        total = 0
        # A tail fetch: partitions the log cache answers are read in turn, as `read` does;
        # from the first that needs objects on, the rest are planned together.
        for index, request in enumerate(requests):
            partition, offset = request.partition, request.offset
            try:
                end = _end(partition, offset, request.isolation_level)
            except KafkaError as exc:
                results[index] = exc
                continue
            if offset >= end:
                results[index] = []
                continue
            limit = max(min(request.bytes_max, max_bytes - total), 0)
            cached = partition.cached_from(offset, limit, total == 0, end)
            if cached is None:
                self.object_reads += len(requests) - index
                async with self._lane:
                    await self._read_planned(
                        requests, index, results, total, max_bytes, yield_due or _never
                    )
                break
            try:
                chunks = await self._log_cache.batch_bytes(cached)
            except OSError as exc:
                results[index] = exc
                continue
            results[index] = chunks
            self.log_cache_reads += 1
            total += sum(map(len, chunks))
        return [r for r in results if r is not None]

    async def _read_planned(
        self,
        requests: Sequence[ReadRequest],
        first: int,
        results: list[Chunks | KafkaError | OSError | None],
        total: int,
        max_bytes: int,
        yield_due: Callable[[], bool],
    ) -> None:
        """`read_many` from `requests[first]` on, with `total` bytes already read: the
        partitions that need objects are planned and read at once, then every partition
        is answered in order."""
        ends = [0] * len(requests)
        plans: dict[int, PlanPartition] = {}
        for index in range(first, len(requests)):
            request = requests[index]
            partition = request.partition
            try:
                ends[index] = end = _end(partition, request.offset, request.isolation_level)
            except KafkaError as exc:
                results[index] = exc
                continue
            if request.offset >= end:
                results[index] = []
            elif not _cache_holds(partition, request.offset, end):
                try:
                    ranges = (await _object_index(partition)).from_offset(request.offset)
                except KafkaError as exc:
                    results[index] = exc
                    continue
                plans[index] = PlanPartition(ranges, end, request.bytes_max)
        # The object reads get what the cached partitions leave of the response, and the
        # first batch whatever the bounds only if no partition ahead of them has data.
        budget = max_bytes - total
        min_one = total == 0
        first_planned = min(plans, default=len(requests))
        for index in range(first, len(requests)):
            request = requests[index]
            if results[index] is None and index not in plans:
                limit = min(request.bytes_max, max_bytes)
                cached = request.partition.cached_from(request.offset, limit, True, ends[index])
                budget -= sum(batch.size for batch in cached or ())
                if cached and index < first_planned:
                    min_one = False
        blocks = self._blocks
        plan_ranges(list(plans.values()), max(budget, 0), min_one, blocks.part_bytes)
        taken = [record for plan in plans.values() for record in plan.taken]
        along = [record for plan in plans.values() for record in plan.after]
        readahead = self._readahead
        if readahead is not None:
            for index, plan in plans.items():
                readahead.read(requests[index].partition, requests[index].offset, plan.taken)
            readahead.schedule()  # runs once read_ranges has started this fetch's GETs
        read = await blocks.read_ranges(taken, along)
        data = {id(record): got for record, got in zip(taken, read, strict=True)}
        for index in range(first, len(requests)):
            if results[index] is not None:
                continue
            if yield_due():
                await asyncio.sleep(0)
            request = requests[index]
            partition, offset, end = request.partition, request.offset, ends[index]
            limit = max(min(request.bytes_max, max_bytes - total), 0)
            plan = plans.get(index)
            try:
                if plan is not None:
                    chunks = batches_in(
                        [(r, data[id(r)]) for r in plan.taken], offset, end, limit, total == 0
                    )
                else:
                    cached = partition.cached_from(offset, limit, total == 0, end)
                    if cached is not None:
                        chunks = await self._log_cache.batch_bytes(cached)
                    else:  # its batch left the log cache since: read it alone
                        chunks = await self._read_objects(partition, offset, end, limit, total == 0)
            except (KafkaError, OSError) as exc:
                results[index] = exc
                continue
            results[index] = chunks
            self.log_cache_reads += 1
            total += sum(map(len, chunks))

    async def _read_objects(
        self,
        partition: PartitionLog,
        offset: int,
        end: int,
        bytes_max: int,
        allow_oversize: bool,
    ) -> Chunks:
        ranges = await _object_index(partition)
        plan = PlanPartition(ranges.from_offset(offset), end, bytes_max)
        plan_ranges([plan], bytes_max, allow_oversize)
        read = await self._blocks.read_ranges(plan.taken)
        return batches_in(
            list(zip(plan.taken, read, strict=True)), offset, end, bytes_max, allow_oversize
        )

    async def batches_for_lookup(self, partition: PartitionLog) -> Chunks:
        """Every retained batch below the high watermark, oldest first (timestamp
        lookups; not a hot path)."""
        result: Chunks = []
        for record in list(await _object_index(partition)):
            result.append(await self._blocks.read(record))
        tail = [
            b
            for b in partition.cache
            if b.base_offset >= partition.object_end_offset
            and b.end_offset <= partition.high_watermark
        ]
        result.extend(await self._log_cache.batch_bytes(tail))
        return result


async def _object_index(partition: PartitionLog) -> ObjectRanges:
    """The partition's object index, loaded from the metadata store if need be; a store
    failure answers the partition KAFKA_STORAGE_ERROR (retriable: the client fetches
    again, and the next fetch loads it again)."""
    try:
        return await partition.index.load()
    except Exception as exc:  # noqa: BLE001 - the store's own errors, engine by engine
        log.warning(
            "object index of %s-%d not loaded: %s", partition.topic, partition.partition, exc
        )
        raise KafkaError(
            ErrorCode.kafka_storage_error, "The partition's object index could not be read."
        ) from exc


def _never() -> bool:
    return False


def _cache_holds(partition: PartitionLog, offset: int, end: int) -> bool:
    """Whether `PartitionLog.cached_from` answers a read at `offset` (its first batch
    there is in the log cache, or there is none below `end`), in one bisection."""
    cache = partition.cache
    if not cache or offset < cache[0].base_offset:
        return False
    index = bisect.bisect_right(cache, offset, key=lambda b: b.end_offset)
    if index == len(cache) or cache[index].base_offset >= end:
        return True
    batch = cache[index]
    return batch.data is not None or not batch.uploaded


def _end(partition: PartitionLog, offset: int, isolation_level: int) -> int:
    """Where a read from `offset` stops; OFFSET_OUT_OF_RANGE outside the log."""
    if offset < partition.log_start_offset or offset > partition.high_watermark:
        raise KafkaError(
            ErrorCode.offset_out_of_range,
            f"offset {offset} is outside [{partition.log_start_offset},"
            f" {partition.high_watermark}]",
        )
    if isolation_level == READ_COMMITTED:
        return partition.last_stable_offset
    return partition.high_watermark


def batches_in(
    ranges: Sequence[tuple[RangeRecord, memoryview | BaseException]],
    offset: int,
    end: int,
    bytes_max: int,
    allow_oversize: bool,
) -> Chunks:
    """The batches of `ranges` (in offset order) from `offset`, below `end`, within
    `bytes_max` (the first one alone may exceed it with `allow_oversize`)."""
    chunks: Chunks = []
    total = 0
    for _, data in ranges:
        if isinstance(data, BaseException):
            raise data
        position = 0
        for header in iter_batch_headers(data):
            size = header.total_bytes
            batch_end = header.base_offset + header.last_offset_delta + 1
            if header.base_offset >= end:
                return chunks
            if batch_end > offset:
                if (chunks or not allow_oversize) and total + size > bytes_max:
                    return chunks
                chunks.append(data[position : position + size])
                total += size
            position += size
        if total >= bytes_max:
            break
    return chunks
