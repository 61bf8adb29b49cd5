"""The engine when a WAL write fails: the failed batches are taken back (offsets stay
dense, producer state is rolled back), an idempotent retry is appended again instead of
being "deduplicated" onto offsets that were never written, a retry waiting on a failed
original gets an error instead of no answer, and appends resume without a restart."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from contextplane import limits
from contextplane.clock import ManualClock
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import iter_batch_headers
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_wal import MemoryWal
from contextplane.storage.wal import WalWriteError
from tests.support.metadata import open_store
from tests.unit.test_engine_recovery import batch


async def engine_on(
    tmp_path: Path, wal: MemoryWal, clock: ManualClock | None = None
) -> StorageEngine:
    settings = Settings(data_dir=tmp_path, upload_interval_ms=3_600_000)
    metadata = await open_store(settings, {"t": 1})
    return StorageEngine(settings, metadata, wal=wal, clock=clock)


async def offsets_in(engine: StorageEngine) -> list[tuple[int, int]]:
    partition = engine.partitions[("t", 0)]
    chunks = await engine.read(partition, 0, 1 << 30)
    data = b"".join(bytes(c) for c in chunks)
    return [(h.base_offset, h.producer_id) for h in iter_batch_headers(data)]


def test_failed_batches_are_taken_back_and_retries_reuse_their_offsets(tmp_path: Path) -> None:
    wal = MemoryWal()

    async def run() -> list[tuple[int, int]]:
        engine = await engine_on(tmp_path, wal)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        await engine.append(partition, batch(1, 0, 10, b"A")).durable
        wal.write_error = OSError(errno.EIO, "injected")
        first = engine.append(partition, batch(1, 10, 10, b"B"))
        second = engine.append(partition, batch(2, 0, 5, b"C"))
        for result in (first, second):
            with pytest.raises(WalWriteError):
                await result.durable
        assert (partition.next_offset, partition.high_watermark) == (10, 10)
        wal.write_error = None
        retry = engine.append(partition, batch(1, 10, 10, b"B"))
        assert retry.durable is not None, "the failed batch was treated as a duplicate"
        await retry.durable
        other = engine.append(partition, batch(2, 0, 5, b"C"))
        await other.durable
        assert (retry.base_offset, other.base_offset) == (10, 20)
        # Producer 1 continues its sequence; producer 2's state is its retry alone.
        await engine.append(partition, batch(1, 20, 1, b"D")).durable
        found = await offsets_in(engine)
        await engine.close()
        return found

    assert asyncio.run(run()) == [(0, 1), (10, 1), (20, 2), (25, 1)]


def test_retry_waiting_on_a_failed_original_is_answered(tmp_path: Path) -> None:
    wal = MemoryWal()

    async def run() -> None:
        engine = await engine_on(tmp_path, wal)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        await engine.append(partition, batch(1, 0, 10, b"A")).durable
        wal.sync_error = OSError(errno.EIO, "injected")
        original = engine.append(partition, batch(1, 10, 10, b"B"))
        retry = engine.append(partition, batch(1, 10, 10, b"B"))  # in flight: a duplicate
        assert retry.durable is not None
        with pytest.raises(WalWriteError):
            await original.durable
        with pytest.raises(WalWriteError):
            await asyncio.wait_for(retry.durable, 5)
        wal.sync_error = None
        again = engine.append(partition, batch(1, 10, 10, b"B"))
        await again.durable
        assert again.base_offset == 10
        await engine.close()

    asyncio.run(run())


def test_disk_full_refuses_appends_until_space_is_back(tmp_path: Path) -> None:
    wal = MemoryWal()
    clock = ManualClock()

    async def run() -> None:
        engine = await engine_on(tmp_path, wal, clock)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        wal.medium.capacity_bytes = wal.medium.used_bytes + 10  # the disk is full
        with pytest.raises(WalWriteError):
            await engine.append(partition, batch(-1, -1, 3, b"x")).durable
        refusal = engine.admission().refusal
        assert refusal is not None and "disk full" in refusal
        with pytest.raises(KafkaError) as refused:
            engine.append(partition, batch(-1, -1, 3, b"x"))
        assert refused.value.code == ErrorCode.kafka_storage_error
        wal.medium.capacity_bytes = 1 << 30  # space came back: the gate reopens at its next check
        assert engine.admission().refusal is not None
        clock.advance(limits.DISK_RECHECK_MS)
        assert engine.admission().refusal is None
        await engine.append(partition, batch(-1, -1, 3, b"y")).durable
        assert partition.high_watermark == 3
        await engine.close()

    asyncio.run(run())
