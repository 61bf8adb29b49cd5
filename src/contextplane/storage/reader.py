"""Reads: whole batches from an offset up to what the reader may see.

The log cache serves the tail with no I/O (bytes that left memory are read back from the
WAL); older offsets come from objects, found through the partition's object index and
read through the block cache. A read never returns a batch at or past the high watermark
(the last stable offset for a read_committed consumer).
"""

from __future__ import annotations

from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import iter_batch_headers
from contextplane.storage.block_cache import BlockCache
from contextplane.storage.log_cache import LogCache
from contextplane.storage.partition import PartitionLog

READ_UNCOMMITTED = 0
READ_COMMITTED = 1


class Reader:
    def __init__(self, log_cache: LogCache, blocks: BlockCache) -> None:
        self._log_cache = log_cache
        self._blocks = blocks

    async def read(
        self,
        partition: PartitionLog,
        offset: int,
        bytes_max: int,
        allow_oversize: bool = True,
        isolation_level: int = READ_UNCOMMITTED,
    ) -> list[bytes | memoryview]:
        """Whole batches from `offset` up to the high watermark (read_committed: the last
        stable offset), within `bytes_max`; with `allow_oversize`, the first batch is
        returned even if it alone is larger."""
        if offset < partition.log_start_offset or offset > partition.high_watermark:
            raise KafkaError(
                ErrorCode.offset_out_of_range,
                f"offset {offset} is outside [{partition.log_start_offset},"
                f" {partition.high_watermark}]",
            )
        end = (
            partition.last_stable_offset
            if isolation_level == READ_COMMITTED
            else partition.high_watermark
        )
        if offset >= end:
            return []
        cached = partition.cached_from(offset, bytes_max, allow_oversize, end)
        if cached is not None:
            return await self._log_cache.batch_bytes(cached)
        return await self._read_objects(partition, offset, end, bytes_max, allow_oversize)

    async def _read_objects(
        self,
        partition: PartitionLog,
        offset: int,
        end: int,
        bytes_max: int,
        allow_oversize: bool,
    ) -> list[bytes | memoryview]:
        chunks: list[bytes | memoryview] = []
        total = 0
        for record in partition.ranges.from_offset(offset):
            if record.base_offset >= end:
                break
            data = await self._blocks.read(record)
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

    async def batches_for_lookup(self, partition: PartitionLog) -> list[bytes | memoryview]:
        """Every retained batch below the high watermark, oldest first (timestamp
        lookups; not a hot path)."""
        result: list[bytes | memoryview] = []
        for record in partition.ranges:
            result.append(await self._blocks.read(record))
        tail = [
            b
            for b in partition.cache
            if b.base_offset >= partition.object_end_offset
            and b.end_offset <= partition.high_watermark
        ]
        result.extend(await self._log_cache.batch_bytes(tail))
        return result
