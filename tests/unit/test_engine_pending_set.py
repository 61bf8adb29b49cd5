"""Upload passes and WAL trims visit only the partitions with un-uploaded batches: their
cost does not grow with idle partitions (10,000 of them on a broker)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from contextplane.protocol.records import split_batches
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from contextplane.storage.partition import CachedBatch, PartitionLog
from tests.support.metadata import open_store
from tests.support.rawclient import record_batch

PARTITIONS = 50


def count_visits(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Count, per partition, the calls an upload pass or a trim makes on it."""
    visits: Counter[int] = Counter()
    pending_upload = PartitionLog.pending_upload
    first_unuploaded_position = PartitionLog.first_unuploaded_position

    def counted_pending_upload(self: PartitionLog) -> Iterator[CachedBatch]:
        visits[self.partition] += 1
        return pending_upload(self)

    def counted_first_unuploaded_position(self: PartitionLog) -> int | None:
        visits[self.partition] += 1
        return first_unuploaded_position(self)

    monkeypatch.setattr(PartitionLog, "pending_upload", counted_pending_upload)
    monkeypatch.setattr(
        PartitionLog, "first_unuploaded_position", counted_first_unuploaded_position
    )
    return visits


def test_an_idle_partition_is_never_visited_by_an_upload_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    visits = count_visits(monkeypatch)

    async def run() -> int:
        settings = Settings(data_dir=tmp_path, upload_interval_ms=3_600_000)
        metadata = await open_store(settings, {"t": PARTITIONS})
        engine = StorageEngine(settings, metadata, wal=MemoryWal(WalMedium()))
        await engine.open()
        busy = engine.partitions[("t", 7)]
        for _ in range(3):
            await engine.append(busy, split_batches(record_batch([b"v"]), 1 << 20)).durable
            assert await engine.upload_once() > 0
        uploaded = busy.object_end_offset
        assert await engine.upload_once() == 0  # nothing pending: a pass visits nobody
        engine.trim_wal()
        await engine.close()
        return uploaded

    assert asyncio.run(run()) == 3
    assert set(visits) == {7}, f"{len(visits)} partitions visited"
