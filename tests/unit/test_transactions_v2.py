"""Transactions v2 (KIP-890) in the coordinator: every EndTxn v5 bumps the epoch, the
markers carry the new one, a retried EndTxn naming the epoch before gets the same
answer, and a bump past Short.MaxValue - 1 ends with a new producer id."""

from __future__ import annotations

import asyncio
import dataclasses
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
        with pytest.raises(KafkaError) as info:  # the other outcome is no retry: fenced
            await txns.end_transaction("tid", pid, epoch - 1, commit=False, bump=True)
        assert info.value.code == ErrorCode.producer_fenced
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
