"""Expiry: transactional ids idle longer than transactional.id.expiration.ms are removed
from the coordinator durably (a restart does not bring them back, and the id's next
InitProducerId starts with a new producer id); partitions forget producers idle longer
than producer.id.expiration.ms unless they have an open transaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contextplane.broker.txn_markers import marker_writer
from contextplane.clock import ManualClock
from contextplane.coordinators.producer_ids import ProducerIds
from contextplane.coordinators.transactions import TransactionConfig, TransactionCoordinator
from contextplane.protocol.records import split_batches
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_wal import WalMedium
from contextplane.storage.producer_expiry import expire_producers
from tests.support.rawclient import record_batch
from tests.unit.test_engine_recovery import open_engine
from tests.unit.test_partition_transactions import append, txn_batch

EXPIRATION_MS = 1_000
CONFIG = TransactionConfig(
    max_timeout_ms=60_000,
    abort_interval_ms=3_600_000,
    id_expiration_ms=EXPIRATION_MS,
    remove_expired_interval_ms=3_600_000,
)


async def coordinator(engine: StorageEngine, clock: ManualClock) -> TransactionCoordinator:
    txns = TransactionCoordinator(
        engine.metadata, ProducerIds(engine.metadata), clock, CONFIG, marker_writer(engine, clock)
    )
    await txns.start()
    return txns


def test_idle_transactional_ids_expire_durably(tmp_path: Path) -> None:
    async def run() -> None:
        clock = ManualClock()
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        txns = await coordinator(engine, clock)
        idle_pid, _ = await txns.init_producer("idle", 10_000)  # Empty
        done_pid, epoch = await txns.init_producer("done", 10_000)
        await txns.add_partitions("done", done_pid, epoch, [("t", 0)])
        await append(engine, engine.partitions[("t", 0)], txn_batch(done_pid, epoch, 0, 1))
        await txns.end_transaction("done", done_pid, epoch, commit=True)  # CompleteCommit
        open_pid, epoch = await txns.init_producer("open", 60_000)
        await txns.add_partitions("open", open_pid, epoch, [("t", 0)])  # Ongoing
        clock.advance(EXPIRATION_MS - 1)
        assert await txns.remove_expired() == []
        clock.advance(1)
        assert sorted(await txns.remove_expired()) == ["done", "idle"]
        assert txns.record("idle") is None and txns.record("done") is None
        assert txns.record("open") is not None  # a transaction is open: never expired
        await txns.stop()

        restarted = await coordinator(engine, clock)
        assert restarted.record("idle") is None and restarted.record("done") is None
        assert restarted.record("open") is not None
        new_pid, new_epoch = await restarted.init_producer("idle", 10_000)
        assert new_pid not in (idle_pid, done_pid, open_pid) and new_epoch == 0
        await restarted.stop()

    asyncio.run(run())


def test_idle_producers_expire_unless_their_transaction_is_open(tmp_path: Path) -> None:
    async def run() -> None:
        engine = await open_engine(tmp_path, WalMedium())
        await engine.open()
        partition = engine.partitions[("t", 0)]
        old, recent, transactional = 7, 8, 9
        start = 1_700_000_000_000
        for pid, at in ((old, start), (recent, start + 5_000)):
            batch = record_batch(
                [b"x"], producer_id=pid, producer_epoch=0, base_sequence=0, timestamp_ms=at
            )
            await append(engine, partition, split_batches(batch, 1 << 20))
        await append(engine, partition, txn_batch(transactional, 0, 0, 1))  # at `start`
        now = start + 5_000 + 1
        assert expire_producers([partition], now, 10_000) == 0
        assert expire_producers([partition], now, 3_000) == 1
        assert set(partition.producers.producers) == {recent, transactional}
        assert expire_producers([partition], now + 60_000, 3_000) == 1
        assert set(partition.producers.producers) == {transactional}
        await engine.close()

    asyncio.run(run())
