"""Transactions v2 (KIP-890) in the coordinator: every EndTxn v5 bumps the epoch, the
markers carry the new one, a retried EndTxn naming the epoch before gets the same
answer, and a bump past Short.MaxValue - 1 ends with a new producer id."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from pathlib import Path

import pytest

from contextplane import limits
from contextplane.clock import ManualClock
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.storage.memory_wal import WalMedium
from tests.unit.test_engine_recovery import open_engine
from tests.unit.test_partition_transactions import append, txn_batch
from tests.unit.test_transaction_coordinator import coordinator


def test_every_end_bumps_the_epoch_and_a_retry_gets_the_same_answer(tmp_path: Path) -> None:
    async def run() -> None:
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        partition = engine.partitions[("t", 0)]
        txns = await coordinator(engine, ManualClock())
        pid, epoch = await txns.init_producer("tid", 10_000)
        for commit in (True, False, True):
            await txns.add_partitions("tid", pid, epoch, [("t", 0)], version=2)
            await append(engine, partition, txn_batch(pid, epoch, 0, 1))
            assert await txns.end_transaction("tid", pid, epoch, commit, bump=True) == (
                pid,
                epoch + 1,
            )
            # The marker carried the new epoch: the partition's producer has it now.
            assert partition.producers.producers[pid].epoch == epoch + 1
            assert await txns.end_transaction("tid", pid, epoch, commit, bump=True) == (
                pid,
                epoch + 1,
            )
            epoch += 1
            assert partition.last_stable_offset == partition.high_watermark
        # The epoch before with the other outcome: a retry of something else, which
        # Kafka answers as an invalid transition.
        await _raises(
            txns.end_transaction("tid", pid, epoch - 1, commit=False, bump=True),
            ErrorCode.invalid_txn_state,
        )
        await txns.stop()

    asyncio.run(run())


def test_a_bump_past_the_last_epoch_ends_with_a_new_producer_id(tmp_path: Path) -> None:
    async def run() -> None:
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        txns = await coordinator(engine, ManualClock())
        pid, _ = await txns.init_producer("tid", 10_000)
        record = txns.record("tid")
        assert record is not None
        last = limits.PRODUCER_EPOCH_MAX
        await txns._save(dataclasses.replace(record, epoch=last))  # as after 32766 bumps
        await txns.add_partitions("tid", pid, last, [("t", 0)], version=2)
        await append(engine, engine.partitions[("t", 0)], txn_batch(pid, last, 0, 1))
        new_pid, new_epoch = await txns.end_transaction("tid", pid, last, True, bump=True)
        assert new_pid != pid and new_epoch == 0
        # The marker went out with the old id at Short.MaxValue.
        assert engine.partitions[("t", 0)].producers.producers[pid].epoch == last + 1
        retried = await txns.end_transaction("tid", pid, last, True, bump=True)
        assert retried == (new_pid, 0)
        await txns.stop()

    asyncio.run(run())


async def _raises(call: Awaitable[object], code: ErrorCode) -> None:
    with pytest.raises(KafkaError) as info:
        await call
    assert info.value.code == code, info.value


def test_an_abort_with_no_partition_added_bumps_the_epoch(tmp_path: Path) -> None:
    """A v2 client cannot know whether its Produce reached the broker, so it ends every
    transaction: an abort from Empty or Complete (nothing added) bumps the epoch as
    Kafka 4 does; a commit of nothing is still INVALID_TXN_STATE."""

    async def run() -> None:
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        txns = await coordinator(engine, ManualClock())
        pid, epoch = await txns.init_producer("tid", 10_000)
        assert await txns.end_transaction("tid", pid, epoch, False, bump=True) == (pid, 1)
        assert await txns.end_transaction("tid", pid, 0, False, bump=True) == (pid, 1)  # retry
        await txns.add_partitions("tid", pid, 1, [("t", 0)], version=2)
        await append(engine, engine.partitions[("t", 0)], txn_batch(pid, 1, 0, 1))
        assert await txns.end_transaction("tid", pid, 1, True, bump=True) == (pid, 2)
        # CompleteCommit, nothing added since: an abort bumps, a second commit does not.
        await _raises(
            txns.end_transaction("tid", pid, 2, True, bump=True), ErrorCode.invalid_txn_state
        )
        assert await txns.end_transaction("tid", pid, 2, False, bump=True) == (pid, 3)
        record = txns.record("tid")
        assert record is not None and record.state == "CompleteAbort"
        # A retry of the commit two transactions ago is fenced.
        await _raises(
            txns.end_transaction("tid", pid, 1, True, bump=True), ErrorCode.producer_fenced
        )
        await txns.stop()

    asyncio.run(run())


def test_a_retry_after_a_new_producer_id_names_the_last_epoch(tmp_path: Path) -> None:
    """Only the EndTxn that ended at Short.MaxValue - 1 is a retry under the producer id
    before; any other epoch under that id is INVALID_PRODUCER_ID_MAPPING, as Kafka."""

    async def run() -> None:
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        txns = await coordinator(engine, ManualClock())
        pid, _ = await txns.init_producer("tid", 10_000)
        record = txns.record("tid")
        assert record is not None
        last = limits.PRODUCER_EPOCH_MAX
        await txns._save(dataclasses.replace(record, epoch=last))
        await txns.add_partitions("tid", pid, last, [("t", 0)], version=2)
        new_pid, _ = await txns.end_transaction("tid", pid, last, True, bump=True)
        assert new_pid != pid
        await _raises(
            txns.end_transaction("tid", pid, last - 1, True, bump=True),
            ErrorCode.invalid_producer_id_mapping,
        )
        await txns.stop()

    asyncio.run(run())


def test_a_timed_out_v2_transaction_fences_its_producer(tmp_path: Path) -> None:
    """The coordinator's timeout abort bumps an epoch the client never saw: its EndTxn
    naming the epoch before is PRODUCER_FENCED, not mistaken for a retry."""

    async def run() -> None:
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        clock = ManualClock()
        txns = await coordinator(engine, clock)
        pid, epoch = await txns.init_producer("tid", 1_000)
        await txns.add_partitions("tid", pid, epoch, [("t", 0)], version=2)
        clock.advance(2_000)
        assert await txns.abort_timed_out() == 1
        for commit in (True, False):
            await _raises(
                txns.end_transaction("tid", pid, epoch, commit, bump=True),
                ErrorCode.producer_fenced,
            )
        await txns.stop()

    asyncio.run(run())


def test_restart_in_a_bumped_prepare_completes_and_answers_the_retry(tmp_path: Path) -> None:
    """The Prepare state is stored with the bumped epoch (and, at Short.MaxValue, the
    exhausted one): a restart before the markers writes them with that epoch, completes
    (with a new producer id past the last epoch), and the client's retried EndTxn gets
    what the lost response would have said."""
    disk, clock = WalMedium(), ManualClock()
    last = limits.PRODUCER_EPOCH_MAX

    async def first_life() -> int:
        engine = await open_engine(tmp_path, disk, partitions=2)
        await engine.open()
        txns = await coordinator(engine, clock, fail_markers=True)
        pids = []
        for tid, index in (("a", 0), ("b", 1)):
            pid, _ = await txns.init_producer(tid, 30_000)
            epoch = 4 if tid == "a" else last
            record = txns.record(tid)
            assert record is not None
            await txns._save(dataclasses.replace(record, epoch=epoch))
            await txns.add_partitions(tid, pid, epoch, [("t", index)], version=2)
            await append(engine, engine.partitions[("t", index)], txn_batch(pid, epoch, 0, 2))
            if tid == "a":
                assert await txns.end_transaction(tid, pid, epoch, True, bump=True) == (pid, 5)
            else:  # no new producer id before the markers: the client retries
                await _raises(
                    txns.end_transaction(tid, pid, epoch, True, bump=True),
                    ErrorCode.concurrent_transactions,
                )
            pids.append(pid)
        await txns.stop()
        disk.crash()
        return pids[1]

    async def second_life(old_pid: int) -> None:
        engine = await open_engine(tmp_path, disk, partitions=2)
        await engine.open()
        txns = await coordinator(engine, clock)
        a, b = txns.record("a"), txns.record("b")
        assert a is not None and b is not None
        assert (a.state, a.epoch) == ("CompleteCommit", 5)
        assert engine.partitions[("t", 0)].producers.producers[a.producer_id].epoch == 5
        assert engine.partitions[("t", 0)].last_stable_offset == 3
        assert (b.state, b.epoch, b.previous_producer_id) == ("CompleteCommit", 0, old_pid)
        assert b.producer_id != old_pid
        assert engine.partitions[("t", 1)].producers.producers[old_pid].epoch == last + 1
        assert await txns.end_transaction("a", a.producer_id, 4, True, bump=True) == (
            a.producer_id,
            5,
        )
        assert await txns.end_transaction("b", old_pid, last, True, bump=True) == (
            b.producer_id,
            0,
        )
        await txns.stop()

    old_pid = asyncio.run(first_life())
    asyncio.run(second_life(old_pid))
