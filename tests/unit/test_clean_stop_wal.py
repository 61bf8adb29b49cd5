"""A clean stop that uploaded everything leaves an empty WAL (the next start replays
nothing); one that could not upload everything keeps the un-uploaded tail for the next
start. Real file WAL, SQLite metadata and file object store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contextplane.protocol.records import split_batches
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from tests.support.metadata import open_store
from tests.support.rawclient import record_batch


def batch(first_sequence: int, count: int, fill: bytes) -> list:
    data = record_batch(
        [fill * 1000] * count, producer_id=1, producer_epoch=0, base_sequence=first_sequence
    )
    return split_batches(data, 1 << 20)


async def open_engine(data_dir: Path, shutdown_timeout_ms: int) -> StorageEngine:
    settings = Settings(
        data_dir=data_dir,
        upload_interval_ms=3_600_000,
        shutdown_timeout_ms=shutdown_timeout_ms,
    )
    engine = StorageEngine(settings, await open_store(settings, {"t": 1}))
    await engine.open()
    return engine


def wal_bytes(data_dir: Path) -> int:
    return sum(path.stat().st_size for path in (data_dir / "wal").iterdir())


async def write_and_stop(data_dir: Path, shutdown_timeout_ms: int) -> None:
    engine = await open_engine(data_dir, shutdown_timeout_ms)
    partition = engine.partitions[("t", 0)]
    for index in range(5):
        await engine.append(partition, batch(index * 10, 10, b"%d" % index)).durable
    await engine.close()
    await engine.metadata.close()


async def read_after_restart(data_dir: Path) -> tuple[int, bytes, int]:
    """High watermark, the batch at offset 0, and where a retry of the last batch lands."""
    engine = await open_engine(data_dir, 10_000)
    partition = engine.partitions[("t", 0)]
    data = await engine.read(partition, 0, 1 << 20)
    retry = engine.append(partition, batch(40, 10, b"4"))
    result = partition.high_watermark, bytes(data[0]), retry.base_offset
    await engine.close()
    await engine.metadata.close()
    return result


def test_a_clean_stop_that_uploaded_everything_leaves_nothing_to_replay(tmp_path: Path) -> None:
    asyncio.run(write_and_stop(tmp_path, shutdown_timeout_ms=10_000))
    assert wal_bytes(tmp_path) == 0
    high_watermark, first, retry_offset = asyncio.run(read_after_restart(tmp_path))
    assert high_watermark == 50
    assert first[:8] == (0).to_bytes(8, "big") and b"0" * 1000 in first
    assert retry_offset == 40, "the producer's last batch is not recognised as a retry"


def test_a_stop_cut_short_keeps_the_un_uploaded_tail(tmp_path: Path) -> None:
    asyncio.run(write_and_stop(tmp_path, shutdown_timeout_ms=0))
    assert wal_bytes(tmp_path) > 50_000
    high_watermark, first, retry_offset = asyncio.run(read_after_restart(tmp_path))
    assert high_watermark == 50
    assert first[:8] == (0).to_bytes(8, "big") and b"0" * 1000 in first
    assert retry_offset == 40
