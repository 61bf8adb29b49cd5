"""The engine when a WAL write fails: the failed batches are taken back (offsets stay
dense, producer state is rolled back), an idempotent retry is appended again instead of
being "deduplicated" onto offsets that were never written, a retry waiting on a failed
original gets an error instead of no answer, and appends resume without a restart."""

from __future__ import annotations

import asyncio
import errno
import time
from pathlib import Path

import pytest

from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import iter_batch_headers
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.wal import WalWriteError
from tests.support.metadata import open_store
from tests.unit.test_engine_recovery import batch
from tests.unit.test_wal_failures import FlakyDisk


class FailingDisk(FlakyDisk):
    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def write(self, fd: int, data: memoryview) -> int:
        if self.full:
            raise OSError(self.code, "injected")
        return super().write(fd, data)


async def engine_on(tmp_path: Path, disk: FlakyDisk) -> StorageEngine:
    settings = Settings(data_dir=tmp_path, upload_interval_ms=3_600_000)
    metadata = await open_store(settings, {"t": 1})
    return StorageEngine(settings, metadata, wal_files=disk)


async def offsets_in(engine: StorageEngine) -> list[tuple[int, int]]:
    partition = engine.partitions[("t", 0)]
    chunks = await engine.read(partition, 0, 1 << 30)
    data = b"".join(bytes(c) for c in chunks)
    return [(h.base_offset, h.producer_id) for h in iter_batch_headers(data)]


def test_failed_batches_are_taken_back_and_retries_reuse_their_offsets(tmp_path: Path) -> None:
    disk = FailingDisk(errno.EIO)

    async def run() -> list[tuple[int, int]]:
        engine = await engine_on(tmp_path, disk)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        await engine.append(partition, batch(1, 0, 10, b"A")).durable
        disk.full = True
        first = engine.append(partition, batch(1, 10, 10, b"B"))
        second = engine.append(partition, batch(2, 0, 5, b"C"))
        for result in (first, second):
            with pytest.raises(WalWriteError):
                await result.durable
        assert (partition.next_offset, partition.high_watermark) == (10, 10)
        disk.full = False
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
    disk = FailingDisk(errno.EIO)

    async def run() -> None:
        engine = await engine_on(tmp_path, disk)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        await engine.append(partition, batch(1, 0, 10, b"A")).durable
        disk.full = True
        original = engine.append(partition, batch(1, 10, 10, b"B"))
        retry = engine.append(partition, batch(1, 10, 10, b"B"))  # in flight: a duplicate
        assert retry.durable is not None
        with pytest.raises(WalWriteError):
            await original.durable
        with pytest.raises(WalWriteError):
            await asyncio.wait_for(retry.durable, 5)
        disk.full = False
        again = engine.append(partition, batch(1, 10, 10, b"B"))
        await again.durable
        assert again.base_offset == 10
        await engine.close()

    asyncio.run(run())


def test_disk_full_refuses_appends_until_space_is_back(tmp_path: Path) -> None:
    disk = FailingDisk(errno.ENOSPC)

    async def run() -> None:
        engine = await engine_on(tmp_path, disk)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        disk.full = True
        with pytest.raises(WalWriteError):
            await engine.append(partition, batch(-1, -1, 3, b"x")).durable
        refusal = engine.admission().refusal
        assert refusal is not None and "disk full" in refusal
        with pytest.raises(KafkaError) as refused:
            engine.append(partition, batch(-1, -1, 3, b"x"))
        assert refused.value.code == ErrorCode.kafka_storage_error
        disk.full = False  # this file system has room: the gate reopens at its next check
        deadline = time.monotonic() + 5
        while engine.admission().refusal is not None:
            assert time.monotonic() < deadline, "appends never resumed"
            await asyncio.sleep(0.05)
        await engine.append(partition, batch(-1, -1, 3, b"y")).durable
        assert partition.high_watermark == 3
        await engine.close()

    asyncio.run(run())
