"""Storage engine recovery: what a crash may and may not leave behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contextplane.protocol.records import split_batches
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from tests.support.metadata import open_store
from tests.support.rawclient import record_batch


def batch(producer_id: int, first_sequence: int, count: int, fill: bytes) -> list:
    data = record_batch(
        [fill] * count, producer_id=producer_id, producer_epoch=0, base_sequence=first_sequence
    )
    return split_batches(data, 1 << 20)


async def open_engine(data_dir: Path, disk: WalMedium) -> StorageEngine:
    settings = Settings(data_dir=data_dir, upload_interval_ms=3_600_000)
    return StorageEngine(settings, await open_store(settings, {"t": 1}), wal=MemoryWal(disk))


def test_retry_of_a_batch_lost_in_a_crash_is_written_again_not_deduplicated(
    tmp_path: Path,
) -> None:
    """An upload must not commit producer state for batches that are not yet durable:
    after a crash, a retry of such a batch would be 'deduplicated' to an offset that
    now holds another producer's data."""

    disk = WalMedium()

    async def first_life() -> None:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        await engine.append(partition, batch(1, 0, 10, b"A")).durable
        assert isinstance(engine.wal, MemoryWal)
        engine.wal.stall()  # the next sync never lands
        engine.append(partition, batch(1, 10, 10, b"B"))  # never acknowledged
        await engine.upload_once()
        disk.crash()  # ... and the process dies here, B written but not synced

    async def second_life() -> list[tuple[int, int]]:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        other = engine.append(partition, batch(2, 0, 10, b"C"))
        await other.durable
        retry = engine.append(partition, batch(1, 10, 10, b"B"))
        assert retry.durable is not None, "the lost batch was treated as a duplicate"
        await retry.durable
        return [(other.base_offset, retry.base_offset)]

    asyncio.run(first_life())
    assert asyncio.run(second_life()) == [(10, 20)]
