"""The transaction coordinator over a real metadata store and storage engine: fencing,
timeouts, pending offsets, and a restart between the Prepare state and the markers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from contextplane.broker.txn_markers import marker_writer
from contextplane.clock import ManualClock
from contextplane.coordinators.producer_ids import ProducerIds
from contextplane.coordinators.transactions import TransactionConfig, TransactionCoordinator
from contextplane.errors import KafkaError
from contextplane.metadata.records import OffsetRow
from contextplane.protocol.error_codes import ErrorCode
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_wal import WalMedium
from tests.unit.test_engine_recovery import open_engine
from tests.unit.test_partition_transactions import append, txn_batch

CONFIG = TransactionConfig(max_timeout_ms=60_000, abort_interval_ms=3_600_000)


async def coordinator(
    engine: StorageEngine, clock: ManualClock, fail_markers: bool = False
) -> TransactionCoordinator:
    write = marker_writer(engine, clock)

    async def failing(*args: object) -> None:
        raise OSError("the process dies before its markers are written")

    txns = TransactionCoordinator(
        engine.metadata,
        ProducerIds(engine.metadata),
        clock,
        CONFIG,
        failing if fail_markers else write,
    )
    await txns.start()
    return txns


def test_restart_in_prepare_commit_writes_the_markers_and_commits_the_offsets(
    tmp_path: Path,
) -> None:
    disk, clock = WalMedium(), ManualClock()

    async def first_life() -> str:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        txns = await coordinator(engine, clock, fail_markers=True)
        pid, epoch = await txns.init_producer("tid", 30_000)
        await txns.add_partitions("tid", pid, epoch, [("t", 0)])
        await txns.add_offsets("tid", pid, epoch, "group")
        await txns.txn_offset_commit("tid", "group", pid, epoch, [OffsetRow("src", 0, 42, -1, "")])
        await append(engine, engine.partitions[("t", 0)], txn_batch(pid, epoch, 0, 3))
        await txns.end_transaction("tid", pid, epoch, commit=True)
        record = txns.record("tid")
        assert record is not None
        await txns.stop()
        disk.crash()
        return record.state

    async def second_life() -> tuple[str, int, int, int]:
        engine = await open_engine(tmp_path, disk)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        assert partition.last_stable_offset == 0  # still open: no marker yet
        txns = await coordinator(engine, clock)
        record = txns.record("tid")
        assert record is not None
        offsets = await engine.metadata.fetch_offsets("group")
        await txns.stop()
        return (
            record.state,
            partition.last_stable_offset,
            partition.high_watermark,
            offsets[("src", 0)].offset,
        )

    assert asyncio.run(first_life()) == "PrepareCommit"
    state, lso, high_watermark, committed = asyncio.run(second_life())
    assert state == "CompleteCommit"
    assert lso == high_watermark == 4  # three records and the COMMIT marker
    assert committed == 42


def test_new_producer_fences_an_ongoing_transaction(tmp_path: Path) -> None:
    async def run() -> None:
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        txns = await coordinator(engine, ManualClock())
        pid, epoch = await txns.init_producer("tid", 30_000)
        await txns.add_partitions("tid", pid, epoch, [("t", 0)])
        partition = engine.partitions[("t", 0)]
        await append(engine, partition, txn_batch(pid, epoch, 0, 2))
        with pytest.raises(KafkaError) as info:
            await txns.init_producer("tid", 30_000)
        assert info.value.code == ErrorCode.concurrent_transactions
        assert partition.transactions.aborted[0].first_offset == 0
        new_pid, new_epoch = await txns.init_producer("tid", 30_000)
        assert (new_pid, new_epoch) == (pid, epoch + 2)  # one bump to fence, one to init
        for call in (
            txns.add_partitions("tid", pid, epoch, [("t", 0)]),
            txns.end_transaction("tid", pid, epoch, commit=True),
        ):
            with pytest.raises(KafkaError) as info:
                await call
            assert info.value.code == ErrorCode.producer_fenced
        with pytest.raises(KafkaError) as info:
            engine.append(partition, txn_batch(pid, epoch, 2, 1))
        assert info.value.code == ErrorCode.invalid_producer_epoch
        await txns.stop()

    asyncio.run(run())


def test_timed_out_transaction_is_aborted_and_its_offsets_dropped(tmp_path: Path) -> None:
    async def run() -> None:
        clock = ManualClock()
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        txns = await coordinator(engine, clock)
        pid, epoch = await txns.init_producer("tid", 10_000)
        await txns.add_partitions("tid", pid, epoch, [("t", 0)])
        await txns.add_offsets("tid", pid, epoch, "group")
        await txns.txn_offset_commit("tid", "group", pid, epoch, [OffsetRow("src", 0, 7, -1, "")])
        await append(engine, engine.partitions[("t", 0)], txn_batch(pid, epoch, 0, 1))
        clock.advance(9_999)
        assert await txns.abort_timed_out() == 0
        clock.advance(1)
        assert await txns.abort_timed_out() == 1
        record = txns.record("tid")
        assert record is not None and record.state == "CompleteAbort"
        assert record.epoch == epoch + 1
        assert engine.partitions[("t", 0)].last_stable_offset == 2
        assert await engine.metadata.fetch_offsets("group") == {}
        with pytest.raises(KafkaError) as info:
            await txns.end_transaction("tid", pid, epoch, commit=True)
        assert info.value.code == ErrorCode.producer_fenced
        await txns.stop()

    asyncio.run(run())


def test_transaction_timeout_above_the_maximum_is_refused(tmp_path: Path) -> None:
    async def run() -> None:
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        txns = await coordinator(engine, ManualClock())
        for timeout_ms in (0, CONFIG.max_timeout_ms + 1):
            with pytest.raises(KafkaError) as info:
                await txns.init_producer("tid", timeout_ms)
            assert info.value.code == ErrorCode.invalid_transaction_timeout
        assert await txns.init_producer("tid", CONFIG.max_timeout_ms) == (0, 0)
        await txns.stop()

    asyncio.run(run())


def test_producer_recovers_after_a_timeout_with_its_last_epoch(tmp_path: Path) -> None:
    """KIP-360: InitProducerId naming the epoch a timeout bumped gets the current epoch
    without another bump (Kafka's lastProducerEpoch); an older one is fenced."""

    async def run() -> None:
        clock = ManualClock()
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        txns = await coordinator(engine, clock)
        pid, epoch = await txns.init_producer("tid", 1_000)
        await txns.add_partitions("tid", pid, epoch, [("t", 0)])
        clock.advance(1_000)
        assert await txns.abort_timed_out() == 1
        assert await txns.init_producer("tid", 1_000, pid, epoch) == (pid, epoch + 1)
        assert await txns.init_producer("tid", 1_000, pid, epoch + 1) == (pid, epoch + 2)
        with pytest.raises(KafkaError) as info:
            await txns.init_producer("tid", 1_000, pid, epoch)
        assert info.value.code == ErrorCode.producer_fenced
        await txns.stop()

    asyncio.run(run())


def test_a_thousand_transactional_ids_leave_no_lock_behind(tmp_path: Path) -> None:
    """A client naming ever new transactional ids must not grow the coordinator's locks:
    a lock lives only while a request for its id holds or waits for it."""

    async def run() -> int:
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        txns = await coordinator(engine, ManualClock())
        await asyncio.gather(*(txns.init_producer(f"tid-{i}", 30_000) for i in range(1_000)))
        held = len(txns._locks)
        await txns.stop()
        return held

    assert asyncio.run(run()) == 0


def test_timed_out_transactions_are_aborted_together(tmp_path: Path) -> None:
    """A backlog of timed-out transactions is aborted several at a time (their markers
    share the WAL's group commits), each with one durable write before its markers:
    Kafka logs PrepareAbort with the bumped epoch and keeps PrepareEpochFence in memory."""

    async def run() -> tuple[int, int, list[str]]:
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        clock = ManualClock()
        write = marker_writer(engine, clock)
        in_flight = most = 0

        async def counting(*args: Any) -> None:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            try:
                await write(*args)
            finally:
                in_flight -= 1

        saved: list[str] = []
        save = engine.metadata.save_transaction

        async def recording(record: Any, previous: Any = None, fence: Any = None) -> None:
            saved.append(record.state)
            await save(record, previous, fence)

        engine.metadata.save_transaction = recording  # type: ignore[method-assign]
        txns = TransactionCoordinator(
            engine.metadata, ProducerIds(engine.metadata), clock, CONFIG, counting
        )
        await txns.start()
        for i in range(100):
            pid, epoch = await txns.init_producer(f"tid-{i}", 1_000)
            await txns.add_partitions(f"tid-{i}", pid, epoch, [("t", 0)])
        saved.clear()
        clock.advance(1_000)
        aborted = await txns.abort_timed_out()
        assert all(txns.record(f"tid-{i}").state == "CompleteAbort" for i in range(100))  # type: ignore[union-attr]
        await txns.stop()
        return aborted, most, saved

    aborted, most, saved = asyncio.run(run())
    assert aborted == 100
    assert most > 1, "the markers of timed-out transactions were written one at a time"
    assert "PrepareEpochFence" not in saved
    assert saved.count("PrepareAbort") == 100


def test_adding_a_partition_writes_only_that_partition(tmp_path: Path) -> None:
    """AddPartitionsToTxn one partition at a time (v3 clients) must not rewrite every
    partition the transaction already has: the rows changed per request stay constant."""

    async def run() -> int:
        engine = await open_engine(tmp_path, WalMedium(), partitions=201)
        await engine.open()
        txns = await coordinator(engine, ManualClock())
        pid, epoch = await txns.init_producer("tid", 30_000)
        for index in range(200):
            await txns.add_partitions("tid", pid, epoch, [("t", index)])
        db = engine.metadata.engine._db  # type: ignore[attr-defined]
        before = db.total_changes
        await txns.add_partitions("tid", pid, epoch, [("t", 200)])
        changed: int = db.total_changes - before
        record = txns.record("tid")
        assert record is not None and len(record.partitions) == 201
        await txns.stop()
        return changed

    assert asyncio.run(run()) <= 3  # the transaction's row and the new partition's
