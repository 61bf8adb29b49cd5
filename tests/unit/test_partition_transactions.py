"""A partition's transactions in the storage engine: the last stable offset held by an
open transaction until its marker is durable, the aborted-transaction index, fencing of
stale markers, and both rebuilt after a crash from the object commit's snapshot plus the
WAL tail."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from contextplane.errors import KafkaError
from contextplane.protocol.control_records import marker_batch
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import TRANSACTIONAL_BIT, split_batches
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from contextplane.storage.partition import PartitionLog
from contextplane.storage.transactions_index import AbortedTxn
from tests.support.rawclient import record_batch
from tests.unit.test_engine_recovery import open_engine


def txn_batch(producer_id: int, epoch: int, sequence: int, count: int) -> list:
    data = record_batch(
        [b"x"] * count,
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=sequence,
        attributes=TRANSACTIONAL_BIT,
    )
    return split_batches(data, 1 << 20)


def plain_batch(count: int) -> list:
    return split_batches(record_batch([b"p"] * count), 1 << 20)


def marker(producer_id: int, epoch: int, commit: bool) -> list:
    return split_batches(marker_batch(producer_id, epoch, commit, 0, 0), 1 << 20)


async def append(engine: StorageEngine, partition: PartitionLog, batches: list) -> int:
    result = engine.append(partition, batches)
    if result.durable is not None:
        await result.durable
    return result.base_offset


def test_open_transaction_holds_the_lso_until_its_marker_is_durable(tmp_path: Path) -> None:
    async def run() -> None:
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        partition = engine.partitions[("t", 0)]
        await append(engine, partition, plain_batch(2))  # 0-1
        await append(engine, partition, txn_batch(5, 0, 0, 3))  # 2-4, transaction of 5
        await append(engine, partition, plain_batch(1))  # 5
        await append(engine, partition, txn_batch(6, 0, 0, 1))  # 6, transaction of 6
        assert (partition.high_watermark, partition.last_stable_offset) == (7, 2)
        assert isinstance(engine.wal, MemoryWal)
        engine.wal.stall()
        pending = engine.append(partition, marker(5, 0, commit=False))  # 7
        await asyncio.sleep(0)
        assert partition.last_stable_offset == 2, "moved before the marker was durable"
        engine.wal.resume()
        assert pending.durable is not None
        await pending.durable
        assert partition.last_stable_offset == 6  # the transaction of 6 is still open
        assert partition.transactions.aborted == [AbortedTxn(5, 2, 7)]
        await append(engine, partition, marker(6, 0, commit=True))  # 8
        assert partition.last_stable_offset == partition.high_watermark == 9
        assert partition.transactions.aborted_in(0, 9) == [AbortedTxn(5, 2, 7)]
        assert partition.transactions.aborted_in(8, 9) == []
        # A repeated marker (a coordinator finishing after a restart) changes nothing.
        await append(engine, partition, marker(5, 0, commit=False))
        assert partition.transactions.aborted == [AbortedTxn(5, 2, 7)]

    asyncio.run(run())


def test_marker_of_an_older_epoch_is_fenced(tmp_path: Path) -> None:
    async def run() -> None:
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        partition = engine.partitions[("t", 0)]
        await append(engine, partition, txn_batch(5, 2, 0, 1))
        with pytest.raises(KafkaError) as info:
            engine.append(partition, marker(5, 1, commit=True))
        assert info.value.code == ErrorCode.invalid_producer_epoch
        # A marker of a newer epoch (a fencing abort) restarts the producer's sequences.
        await append(engine, partition, marker(5, 3, commit=False))
        with pytest.raises(KafkaError) as info:
            engine.append(partition, txn_batch(5, 2, 1, 1))
        assert info.value.code == ErrorCode.invalid_producer_epoch
        await append(engine, partition, txn_batch(5, 3, 0, 1))

    asyncio.run(run())


@pytest.mark.parametrize("upload_after_marker", [False, True])
def test_transactions_survive_a_crash(tmp_path: Path, upload_after_marker: bool) -> None:
    """An upload commits the partition's transactions as of the object's end; the WAL
    tail redoes the rest (here: a marker not yet uploaded, or everything uploaded)."""
    disk = WalMedium()

    async def first_life() -> None:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        await append(engine, partition, txn_batch(5, 0, 0, 2))  # 0-1
        await append(engine, partition, txn_batch(6, 0, 0, 2))  # 2-3
        await append(engine, partition, marker(5, 0, commit=False))  # 4
        await engine.upload_once()  # the snapshot: 5 aborted, 6 open
        await append(engine, partition, marker(6, 0, commit=True))  # 5, only in the WAL
        await append(engine, partition, txn_batch(7, 0, 0, 1))  # 6, open
        if upload_after_marker:
            await engine.upload_once()
        disk.crash()

    async def second_life() -> tuple[int, list[AbortedTxn], dict[int, int]]:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        opened = {p: o.first_offset for p, o in partition.transactions.open.items()}
        return partition.last_stable_offset, partition.transactions.aborted, opened

    asyncio.run(first_life())
    lso, aborted, opened = asyncio.run(second_life())
    assert aborted == [AbortedTxn(5, 0, 4)]
    assert opened == {7: 6}
    assert lso == 6
