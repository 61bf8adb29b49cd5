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


async def open_engine(data_dir: Path, disk: WalMedium, partitions: int = 1) -> StorageEngine:
    settings = Settings(data_dir=data_dir, upload_interval_ms=3_600_000)
    metadata = await open_store(settings, {"t": partitions})
    return StorageEngine(settings, metadata, wal=MemoryWal(disk))


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


def test_batch_cut_by_delete_records_before_upload_survives_a_restart(tmp_path: Path) -> None:
    """DeleteRecords may move the log start into a batch not yet uploaded; after a
    restart the offsets from the log start to that batch's end are still the log's."""
    disk = WalMedium()

    async def first_life() -> None:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        await engine.append(partition, batch(1, 0, 4, b"A")).durable  # offsets 0..3
        await engine.advance_log_start(partition, 2)
        disk.crash()

    async def second_life() -> tuple[int, int, list[bytes | memoryview]]:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        data = await engine.read(partition, 2, 1 << 20)
        return partition.log_start_offset, partition.high_watermark, data

    asyncio.run(first_life())
    log_start, high_watermark, data = asyncio.run(second_life())
    assert (log_start, high_watermark) == (2, 4)
    assert len(data) == 1 and bytes(data[0][:8]) == (0).to_bytes(8, "big")


def test_producer_state_below_the_log_start_survives_a_restart(tmp_path: Path) -> None:
    """DeleteRecords past batches not yet uploaded does not make the broker forget the
    producer's sequence: its next batch is accepted after a restart, as in Kafka."""
    disk = WalMedium()

    async def first_life() -> None:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        await engine.append(partition, batch(1, 0, 2, b"A")).durable
        await engine.append(partition, batch(1, 2, 2, b"B")).durable
        await engine.advance_log_start(partition, 4)
        disk.crash()

    async def second_life() -> int:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        result = engine.append(partition, batch(1, 4, 1, b"C"))
        await result.durable
        duplicate = engine.append(partition, batch(1, 2, 2, b"B"))
        assert duplicate.base_offset == 2, "a retry of B is not recognised"
        return result.base_offset

    asyncio.run(first_life())
    assert asyncio.run(second_life()) == 4


def test_producer_state_cut_off_before_upload_survives_two_restarts(tmp_path: Path) -> None:
    """After a restart, batches DeleteRecords cut off before their upload still carry the
    producer's state; it must reach the metadata store before an upload of another
    partition trims the WAL, or a second restart forgets it."""
    disk = WalMedium()

    async def first_life() -> None:
        engine = await open_engine(tmp_path, disk, partitions=2)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        await engine.append(partition, batch(1, 0, 2, b"A")).durable
        await engine.upload_once()
        await engine.append(partition, batch(1, 2, 2, b"B")).durable
        await engine.advance_log_start(partition, 4)
        disk.crash()

    async def second_life() -> None:
        engine = await open_engine(tmp_path, disk, partitions=2)
        await engine.open()
        await engine.append(engine.partitions[("t", 1)], batch(2, 0, 1, b"D")).durable
        while await engine.upload_once():
            pass
        disk.crash()

    async def third_life() -> int:
        engine = await open_engine(tmp_path, disk, partitions=2)
        await engine.open()
        result = engine.append(engine.partitions[("t", 0)], batch(1, 4, 1, b"C"))
        await result.durable
        return result.base_offset

    asyncio.run(first_life())
    asyncio.run(second_life())
    assert asyncio.run(third_life()) == 4
