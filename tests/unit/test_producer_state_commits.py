"""Object commits write the producer state that changed, not the partition's whole table
(an unprivileged writer can grow the table to hundreds of thousands of producer ids), and
a restart still restores every producer's state exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from contextplane.metadata.records import ObjectCommit
from contextplane.protocol.control_records import marker_batch
from contextplane.protocol.records import TRANSACTIONAL_BIT, split_batches
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from tests.support.metadata import open_store
from tests.support.rawclient import record_batch

PRODUCERS = 300


def batch(producer_id: int, sequence: int, transactional: bool = False) -> list:
    data = record_batch(
        [b"v"],
        producer_id=producer_id,
        producer_epoch=0,
        base_sequence=sequence,
        attributes=TRANSACTIONAL_BIT if transactional else 0,
    )
    return split_batches(data, 1 << 20)


def marker(producer_id: int, commit: bool) -> list:
    return split_batches(marker_batch(producer_id, 0, commit, 1_700_000_000_000, 0), 1 << 20)


async def open_engine(data_dir: Path, disk: WalMedium) -> StorageEngine:
    settings = Settings(data_dir=data_dir, upload_interval_ms=3_600_000)
    metadata = await open_store(settings, {"t": 1})
    return StorageEngine(settings, metadata, wal=MemoryWal(disk))


def recording_commits(engine: StorageEngine) -> list[ObjectCommit]:
    commits: list[ObjectCommit] = []
    commit_object = engine.metadata.commit_object

    async def recorded(commit: ObjectCommit) -> Any:
        commits.append(commit)
        return await commit_object(commit)

    engine.metadata.commit_object = recorded  # type: ignore[method-assign]
    return commits


def producers_written(state: Any) -> int:
    """The producer entries a commit writes for one partition (a whole-table snapshot,
    a dict by producer id, names every producer)."""
    if isinstance(state, dict):
        return len([key for key in state if key != "transactions"])
    return len(state.upserts) + len(state.deletes)


def test_a_commit_writes_only_the_producers_touched_since_the_last(tmp_path: Path) -> None:
    disk = WalMedium()

    async def first_life() -> list[int]:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        commits = recording_commits(engine)
        partition = engine.partitions[("t", 0)]
        for producer_id in range(PRODUCERS):
            engine.append(partition, batch(producer_id, 0))
        await engine.append(partition, batch(PRODUCERS, 0)).durable
        await engine.upload_once()
        await engine.append(partition, batch(3, 1)).durable
        await engine.upload_once()
        await engine.append(partition, batch(4, 1)).durable
        await engine.append(partition, batch(3, 2)).durable
        await engine.upload_once()
        disk.crash()
        return [producers_written(c.producer_states[partition.stream_id]) for c in commits]

    async def second_life() -> dict[int, int]:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        producers = engine.partitions[("t", 0)].producers.producers
        return {pid: entry.last_sequence for pid, entry in producers.items()}

    assert asyncio.run(first_life()) == [PRODUCERS + 1, 1, 2]
    restored = asyncio.run(second_life())
    assert restored == {pid: {3: 2, 4: 1}.get(pid, 0) for pid in range(PRODUCERS + 1)}


def test_producers_forgotten_by_expiry_are_deleted_by_the_next_commit(tmp_path: Path) -> None:
    disk = WalMedium()

    async def first_life() -> list[int]:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        commits = recording_commits(engine)
        partition = engine.partitions[("t", 0)]
        for producer_id in range(10):
            await engine.append(partition, batch(producer_id, 0)).durable
        await engine.upload_once()
        # Every batch is older than the cutoff: all ten producers are forgotten.
        assert partition.producers.expire(2_000_000_000_000, partition.high_watermark, set()) == 10
        await engine.append(partition, batch(20, 0)).durable
        await engine.upload_once()
        disk.crash()
        return [producers_written(c.producer_states[partition.stream_id]) for c in commits]

    async def second_life() -> set[int]:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        return set(engine.partitions[("t", 0)].producers.producers)

    assert asyncio.run(first_life()) == [10, 11]
    assert asyncio.run(second_life()) == {20}


def test_transactions_are_restored_and_aborted_ones_appended_once(tmp_path: Path) -> None:
    """Open transactions and the aborted-transaction index survive a restart, and each
    aborted transaction is written by the commit that covers its marker only."""
    disk = WalMedium()

    async def first_life() -> list[int]:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        commits = recording_commits(engine)
        partition = engine.partitions[("t", 0)]
        await engine.append(partition, batch(1, 0, transactional=True)).durable  # offset 0
        await engine.append(partition, marker(1, commit=False)).durable  # 1: aborted
        await engine.append(partition, batch(2, 0, transactional=True)).durable  # 2
        await engine.upload_once()
        await engine.append(partition, batch(5, 0)).durable  # 3: plain
        await engine.upload_once()
        await engine.append(partition, batch(1, 1, transactional=True)).durable  # 4
        await engine.append(partition, marker(1, commit=False)).durable  # 5: aborted
        await engine.upload_once()
        disk.crash()
        return [len(c.producer_states[partition.stream_id].aborted) for c in commits]

    async def second_life() -> tuple[list[tuple[int, int, int]], dict[int, int], int]:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        transactions = partition.transactions
        open_txns = {pid: entry.first_offset for pid, entry in transactions.open.items()}
        return [tuple(a) for a in transactions.aborted], open_txns, partition.last_stable_offset

    assert asyncio.run(first_life()) == [1, 0, 1]
    aborted, open_txns, lso = asyncio.run(second_life())
    assert aborted == [(1, 0, 1), (1, 4, 5)]
    assert open_txns == {2: 2}
    assert lso == 2
