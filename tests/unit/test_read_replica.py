"""A read replica's mirror of a partition's uploaded ranges (storage/read_replica.py),
against a leader's storage engine on the same SQLite store and object bucket: it reads
what the leader uploaded and no more, refreshes at most once per interval however many
fetches ask, waits for an offset past its end while uploads move it and answers
OFFSET_OUT_OF_RANGE once they stop, follows the log start, and forgets an idle mirror;
the mirrors' ranges count in a memory budget while kept; it knows the stored last stable
offset and aborted transactions, as the leader has them once uploaded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from contextplane import limits
from contextplane.clock import ManualClock
from contextplane.errors import KafkaError
from contextplane.metadata.records import ReplicaRanges
from contextplane.protocol.control_records import marker_batch
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import TRANSACTIONAL_BIT, parse_header, split_batches
from contextplane.settings import Settings
from contextplane.storage.aborted_reads import aborted_between, aborted_overlapping
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory import ABORTED_TXN_BYTES, RANGE_RECORD_BYTES, MemoryBudget
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from contextplane.storage.read_replica import IDLE_MS, STALE_MS, ReadReplicas
from contextplane.storage.transactions_index import AbortedTxn
from tests.support.metadata import open_store
from tests.support.rawclient import record_batch

INTERVAL_MS = 200


async def leader(tmp_path: Path) -> StorageEngine:
    settings = Settings(data_dir=tmp_path, upload_interval_ms=3_600_000)
    metadata = await open_store(settings, {"t": 1})
    engine = StorageEngine(
        settings, metadata, wal=MemoryWal(WalMedium()), objects=MemoryObjectStore(ObjectBucket())
    )
    await engine.open()
    return engine


async def append(engine: StorageEngine, values: list[bytes], upload: bool = True) -> None:
    partition = engine.partitions[("t", 0)]
    for value in values:
        await engine.append(partition, split_batches(record_batch([value]), 1 << 20)).durable
    if upload:
        assert await engine.upload_once() > 0


def test_the_mirror_serves_uploaded_batches_and_refreshes_once_per_interval(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        engine = await leader(tmp_path)
        clock = ManualClock()
        queries: list[int] = []
        replica_ranges = engine.metadata.replica_ranges

        async def counted(
            topic: str, partition: int, since: int, aborted_since: int = -1
        ) -> ReplicaRanges | None:
            queries.append(since)
            return await replica_ranges(topic, partition, since, aborted_since)

        engine.metadata.replica_ranges = counted  # type: ignore[method-assign]
        budget = MemoryBudget(1 << 30, 1 << 20)  # the mirrors' own, to count them alone
        replicas = ReadReplicas(engine.metadata, engine.blocks, INTERVAL_MS, clock, budget)
        try:
            await append(engine, [b"a", b"b"])
            await append(engine, [b"c"], upload=False)  # acknowledged, not uploaded
            # Concurrent fetches share one query; the end is the uploaded end.
            mirrors = await asyncio.gather(*(replicas.mirror("t", 0) for _ in range(5)))
            mirror = mirrors[0]
            assert all(m is mirror for m in mirrors) and queries == [-1]
            assert (mirror.log_start_offset, mirror.end_offset) == (0, 2)
            assert budget.range_record_bytes == RANGE_RECORD_BYTES
            partition = engine.partitions[("t", 0)]
            read = await replicas.read(mirror, 0, 1 << 20, True)
            assert (
                b"".join(read)
                == b"".join(await engine.reader.read(partition, 0, 1 << 20))[: sum(map(len, read))]
            )
            assert len(read) == 2 and await replicas.read(mirror, 2, 1 << 20, True) == []
            # Past the end: waited for while the end can still move.
            assert replicas.check_offset(mirror, 2) and not replicas.check_offset(mirror, 3)
            # Within the interval no query; after it, one query from the known end.
            await replicas.mirror("t", 0)
            assert queries == [-1]
            assert replicas.next_refresh_s(mirror) == INTERVAL_MS / 1000
            assert await engine.upload_once() > 0
            clock.advance(INTERVAL_MS)
            assert replicas.next_refresh_s(mirror) == 0
            await replicas.mirror("t", 0)
            assert queries == [-1, 2] and mirror.end_offset == 3
            assert replicas.check_offset(mirror, 3)
            # An end that stopped moving: an offset past it is out of range (to the leader).
            clock.advance(STALE_MS)
            with pytest.raises(KafkaError) as stale:
                replicas.check_offset(mirror, 4)
            assert stale.value.code == ErrorCode.offset_out_of_range
            # The log start moves: the mirror follows, an offset below it is out of range.
            await engine.advance_log_start(partition, 1)
            await replicas.mirror("t", 0)
            assert mirror.log_start_offset == 1 and mirror.ranges[0].end_offset > 1
            with pytest.raises(KafkaError):
                replicas.check_offset(mirror, 0)
            # No such partition; an idle mirror is forgotten.
            with pytest.raises(KafkaError) as missing:
                await replicas.mirror("t", 7)
            assert missing.value.code == ErrorCode.unknown_topic_or_partition
            assert len(replicas) == 1
            clock.advance(IDLE_MS)
            fresh = await replicas.mirror("t", 0)
            assert fresh is not mirror and queries[-1] == -1  # loaded afresh
            assert budget.range_record_bytes == len(fresh.ranges) * RANGE_RECORD_BYTES
        finally:
            await engine.close()
            await engine.metadata.close()

    asyncio.run(run())


def txn_batch(producer_id: int, sequence: int, value: bytes) -> list:
    data = record_batch(
        [value],
        producer_id=producer_id,
        producer_epoch=0,
        base_sequence=sequence,
        attributes=TRANSACTIONAL_BIT,
    )
    return split_batches(data, 1 << 20)


def marker(producer_id: int, commit: bool) -> list:
    return split_batches(marker_batch(producer_id, 0, commit, 1_700_000_000_000, 0), 1 << 20)


def test_the_mirror_knows_the_stored_last_stable_offset_and_aborted_transactions(
    tmp_path: Path,
) -> None:
    """A read_committed read of the mirror stops at the first offset of the oldest
    transaction open as uploaded, and the mirror lists the uploaded aborted transactions:
    both as the leader has them once its state is all uploaded; an abort uploaded later
    moves the stable offset on and adds its transaction once (the refresh reads only the
    aborted transactions it does not know). An offset past its LSO waits, and is out of
    range once the LSO stops moving, as one past its end."""

    async def run() -> None:
        engine = await leader(tmp_path)
        clock = ManualClock()
        replicas = ReadReplicas(engine.metadata, engine.blocks, INTERVAL_MS, clock)
        partition = engine.partitions[("t", 0)]
        try:
            for batches in (
                txn_batch(1, 0, b"committed"),  # 0
                txn_batch(2, 0, b"aborted"),  # 1
                marker(1, commit=True),  # 2
                marker(2, commit=False),  # 3
                txn_batch(3, 0, b"open"),  # 4
                split_batches(record_batch([b"plain"]), 1 << 20),  # 5, held back too
            ):
                await engine.append(partition, batches).durable
            assert await engine.upload_once() > 0
            mirror = await replicas.mirror("t", 0)
            assert mirror.end_offset == 6 and mirror.stable_offset == 4
            assert partition.last_stable_offset == 4
            assert mirror.aborted == partition.transactions.aborted == [AbortedTxn(2, 1, 3)]
            committed = await replicas.read(mirror, 0, 1 << 20, True, committed=True)
            assert [b.base_offset for b in map(parse_header, committed)] == [0, 1, 2, 3]
            assert await replicas.read(mirror, 4, 1 << 20, True, committed=True) == []
            # Past the LSO (read at the leader) waits for uploads, as past the end does.
            assert replicas.check_offset(mirror, 5) and replicas.check_offset(mirror, 4, True)
            assert not replicas.check_offset(mirror, 5, committed=True)
            everything = await replicas.read(mirror, 0, 1 << 20, True)
            assert [b.base_offset for b in map(parse_header, everything)] == [0, 1, 2, 3, 4, 5]
            # The open transaction aborts, not uploaded yet: still held back.
            await engine.append(partition, marker(3, commit=False)).durable  # 6
            clock.advance(INTERVAL_MS)
            await replicas.mirror("t", 0)
            assert mirror.stable_offset == 4 and partition.last_stable_offset == 7
            # An LSO that stopped moving: past it is out of range (to the leader).
            clock.advance(STALE_MS)
            with pytest.raises(KafkaError) as stale:
                replicas.check_offset(mirror, 5, committed=True)
            assert stale.value.code == ErrorCode.offset_out_of_range
            # Uploaded: the mirror's state is the leader's again.
            assert await engine.upload_once() > 0
            clock.advance(INTERVAL_MS)
            await replicas.mirror("t", 0)
            assert mirror.end_offset == mirror.stable_offset == 7
            assert mirror.aborted == partition.transactions.aborted
            assert mirror.aborted == [AbortedTxn(2, 1, 3), AbortedTxn(3, 4, 6)]
            committed = await replicas.read(mirror, 4, 1 << 20, True, committed=True)
            assert [b.base_offset for b in map(parse_header, committed)] == [4, 5, 6]
        finally:
            await engine.close()
            await engine.metadata.close()

    asyncio.run(run())


async def abort_five(engine: StorageEngine, upload_each: bool) -> None:
    """Five transactions of producers 10..14 at offsets 2k (record) and 2k + 1 (abort)."""
    partition = engine.partitions[("t", 0)]
    for k in range(5):
        await engine.append(partition, txn_batch(10 + k, 0, b"aborted")).durable
        await engine.append(partition, marker(10 + k, commit=False)).durable
        if upload_each:
            assert await engine.upload_once() > 0


def test_past_the_bound_the_mirror_and_the_leader_read_old_aborted_ones_from_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most ABORTED_TXNS_IN_MEMORY_MAX aborted transactions in memory (2 here), on the
    leader and on a read replica's mirror alike: the rest are read from the store when a
    read goes below them, so both still list all five."""
    monkeypatch.setattr(limits, "ABORTED_TXNS_IN_MEMORY_MAX", 2)
    every = [AbortedTxn(10 + k, 2 * k, 2 * k + 1) for k in range(5)]

    async def run() -> None:
        engine = await leader(tmp_path)
        replicas = ReadReplicas(engine.metadata, engine.blocks, INTERVAL_MS, ManualClock())
        partition = engine.partitions[("t", 0)]
        try:
            await abort_five(engine, upload_each=True)
            transactions = partition.transactions
            assert len(transactions.aborted) <= 2 and transactions.stored_before > 0
            assert await aborted_overlapping(engine.metadata, partition, 0, 10) == every
            assert await aborted_overlapping(engine.metadata, partition, 5, 10) == every[2:]
            mirror = await replicas.mirror("t", 0)
            assert len(mirror.aborted) <= 2 and mirror.stored_before > 0
            found = await aborted_between(
                engine.metadata, mirror.stream_id, mirror.aborted, mirror.stored_before, 0, 10
            )
            assert found == every
        finally:
            await engine.close()
            await engine.metadata.close()

    asyncio.run(run())


def test_a_mirrors_aborted_transactions_count_in_the_memory_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mirror's aborted entries are counted in the budget as a leader's are: past their
    share (`aborted_limit`) it keeps the floor (2 here) and reads the rest from the store,
    and a dropped mirror is no longer counted."""
    monkeypatch.setattr(limits, "ABORTED_TXNS_IN_MEMORY_FLOOR", 2)
    every = [AbortedTxn(10 + k, 2 * k, 2 * k + 1) for k in range(5)]

    async def run() -> None:
        engine = await leader(tmp_path)
        clock = ManualClock()
        # A share of three entries: the five uploaded are past it.
        budget = MemoryBudget(3 * ABORTED_TXN_BYTES * 16, 1 << 20)
        replicas = ReadReplicas(engine.metadata, engine.blocks, INTERVAL_MS, clock, budget)
        try:
            await abort_five(engine, upload_each=False)
            assert await engine.upload_once() > 0
            mirror = await replicas.mirror("t", 0)
            assert 0 < len(mirror.aborted) <= 2 and mirror.stored_before > 0
            assert budget.aborted_txn_bytes == len(mirror.aborted) * ABORTED_TXN_BYTES
            found = await aborted_between(
                engine.metadata, mirror.stream_id, mirror.aborted, mirror.stored_before, 0, 10
            )
            assert found == every
            # Idle: the next fetch (of another partition) drops it.
            clock.advance(IDLE_MS)
            with pytest.raises(KafkaError):
                await replicas.mirror("t", 7)
            assert len(replicas) == 0 and budget.aborted_txn_bytes == 0
        finally:
            await engine.close()
            await engine.metadata.close()

    asyncio.run(run())
