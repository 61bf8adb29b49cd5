"""Object compaction through the storage engine: uploads of three partitions merged into
one object read back record for record, across a restart; a crash between the output's
PUT and its swap leaves the log as it was and the output to the orphan sweep; a
partition whose ranges moved between read and swap is left out while the others are
swapped; an output no partition of which was kept is deleted; the cleaner and the
compactor never rewrite one partition at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contextplane.clock import ManualClock
from contextplane.metadata.sqlite import SqliteEngine
from contextplane.protocol.records import split_batches
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from contextplane.storage.rewrite_locks import StreamRewriteLocks
from tests.support.metadata import open_store
from tests.support.rawclient import record_batch
from tests.unit.test_object_lifetimes import GatedStore

DELAY_MS = 60_000
PARTITIONS = 3
UPLOADS = 4


async def open_engine(
    data_dir: Path, bucket: ObjectBucket, clock: ManualClock, wal: WalMedium
) -> tuple[StorageEngine, GatedStore]:
    settings = Settings(
        data_dir=data_dir,
        upload_interval_ms=3_600_000,
        log_cache_bytes=1,  # reads come from objects
        log_segment_delete_delay_ms=DELAY_MS,
        object_store_orphan_min_age_ms=0,
        object_compaction_enable=False,  # the test drives it
        object_compaction_min_age_ms=0,
        log_cleaner_enable=False,
    )
    metadata = await open_store(settings, {"t": PARTITIONS})
    store = GatedStore(MemoryObjectStore(bucket, clock=clock))
    engine = StorageEngine(settings, metadata, wal=MemoryWal(wal), objects=store, clock=clock)
    await engine.open()
    return engine, store


async def fill(engine: StorageEngine, clock: ManualClock) -> None:
    """UPLOADS objects, each with a range of every partition."""
    for number in range(UPLOADS):
        for index in range(PARTITIONS):
            partition = engine.partitions[("t", index)]
            data = bytes([65 + number]) * (index + 1)
            await engine.append(partition, split_batches(record_batch([data] * 3), 1 << 20)).durable
        await engine.upload_once()
        clock.advance(1)


async def logs(engine: StorageEngine) -> dict[int, bytes]:
    result = {}
    for index in range(PARTITIONS):
        partition = engine.partitions[("t", index)]
        result[index] = b"".join(
            bytes(b) for b in await engine.read(partition, partition.log_start_offset, 1 << 20)
        )
    return result


def levels(engine: StorageEngine) -> dict[str, int]:
    db: SqliteEngine = engine.metadata.engine  # type: ignore[attr-defined]
    return {r[0]: r[1] for r in db._db.execute("SELECT key, level FROM objects")}


def test_uploads_are_merged_and_read_back_the_same(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock, bucket, wal = ManualClock(), ObjectBucket(), WalMedium()
        engine, _ = await open_engine(tmp_path, bucket, clock, wal)
        await fill(engine, clock)
        before = await logs(engine)
        uploads = set(bucket.objects)
        assert len(uploads) == UPLOADS
        assert await engine.compactor.compact_once() == 1
        (merged,) = set(bucket.objects) - uploads
        for index in range(PARTITIONS):
            ranges = engine.partitions[("t", index)].ranges
            assert [(r.base_offset, r.end_offset, r.object_key) for r in ranges] == [
                (0, 3 * UPLOADS, merged)
            ]
        assert levels(engine) == {merged: 1}
        assert await logs(engine) == before
        assert await engine.compactor.compact_once() == 0  # nothing left to compact
        await engine.close()
        await engine.metadata.close()

        engine, _ = await open_engine(tmp_path, bucket, clock, wal)
        assert await logs(engine) == before
        assert uploads <= set(bucket.objects)  # readers' grace period
        assert await engine.orphan_sweep.sweep() == 0
        clock.advance(DELAY_MS)
        assert await engine.deleter.delete_due() == UPLOADS
        assert set(bucket.objects) == {merged}
        assert await logs(engine) == before
        await engine.close()

    asyncio.run(scenario())


def test_a_crash_between_the_put_and_the_swap_leaves_the_log_as_it_was(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock, bucket, wal = ManualClock(), ObjectBucket(), WalMedium()
        engine, store = await open_engine(tmp_path, bucket, clock, wal)
        await fill(engine, clock)
        before, uploads = await logs(engine), set(bucket.objects)
        store.gate_puts, store.waiting = True, asyncio.Event()
        store.gate.clear()
        compaction = asyncio.create_task(engine.compactor.compact_once())
        await store.waiting.wait()  # the output landed; the swap has not run
        compaction.cancel()  # the process dies here
        store.gate.set()
        store.gate_puts = False
        await engine.close()
        await engine.metadata.close()
        assert len(set(bucket.objects) - uploads) == 1

        engine, _ = await open_engine(tmp_path, bucket, clock, wal)
        assert await logs(engine) == before
        # The sweep the engine runs at start may have taken it already (the read above
        # yields to the loop while its GETs run): either way the orphan sweep deletes it.
        await engine.orphan_sweep.sweep()
        assert set(bucket.objects) == uploads
        assert await engine.compactor.compact_once() == 1  # the next pass starts over
        assert await logs(engine) == before
        await engine.close()

    asyncio.run(scenario())


def test_a_partition_whose_ranges_moved_is_left_out(tmp_path: Path) -> None:
    """DeleteRecords moves partition 0's log start while the output is being PUT: its
    swap is refused for partition 0 only, whose old objects stay referenced."""

    async def scenario() -> None:
        clock, bucket, wal = ManualClock(), ObjectBucket(), WalMedium()
        engine, store = await open_engine(tmp_path, bucket, clock, wal)
        await fill(engine, clock)
        before, uploads = await logs(engine), set(bucket.objects)
        first = engine.partitions[("t", 0)]
        first_keys = [r.object_key for r in first.ranges]
        store.gate_puts, store.waiting = True, asyncio.Event()
        store.gate.clear()
        compaction = asyncio.create_task(engine.compactor.compact_once())
        await store.waiting.wait()
        await engine.advance_log_start(first, 3)  # drops its range in the first upload
        store.gate.set()
        assert await compaction == 1
        (merged,) = set(bucket.objects) - uploads
        assert [r.object_key for r in first.ranges] == first_keys[1:]
        for index in (1, 2):
            ranges = engine.partitions[("t", index)].ranges
            assert [r.object_key for r in ranges] == [merged]
        after = await logs(engine)
        assert {i: after[i] for i in (1, 2)} == {i: before[i] for i in (1, 2)}
        assert before[0].endswith(after[0]) and len(after[0]) < len(before[0])
        await engine.close()

    asyncio.run(scenario())


def test_rewrite_locks_serialise_one_stream_and_leave_nothing_behind() -> None:
    async def scenario() -> None:
        locks = StreamRewriteLocks()
        order: list[str] = []
        async with locks.hold_all([2, 1]):
            cleaner = asyncio.create_task(_hold(locks, 1, order))
            await asyncio.sleep(0)
            order.append("compactor done")
        await cleaner
        assert order == ["compactor done", "cleaner"]
        assert len(locks) == 0

    asyncio.run(scenario())


async def _hold(locks: StreamRewriteLocks, stream: int, order: list[str]) -> None:
    async with locks.hold(stream):
        order.append("cleaner")


def test_an_output_no_partition_of_which_was_kept_is_deleted(tmp_path: Path) -> None:
    """Another leader took every partition while the output was being PUT: the swap
    keeps none, nothing references the output, and the compactor deletes it at once."""

    async def scenario() -> None:
        clock, bucket, wal = ManualClock(), ObjectBucket(), WalMedium()
        engine, store = await open_engine(tmp_path, bucket, clock, wal)
        await fill(engine, clock)
        uploads = set(bucket.objects)
        store.gate_puts, store.waiting = True, asyncio.Event()
        store.gate.clear()
        compaction = asyncio.create_task(engine.compactor.compact_once())
        await store.waiting.wait()
        assert len(set(bucket.objects) - uploads) == 1  # the output landed
        epochs = {p.stream_id: p.leader_epoch for p in await engine.metadata.partitions()}
        await engine.metadata.claim_leadership(epochs, 1)
        store.gate.set()
        assert await compaction == 0
        assert set(bucket.objects) == uploads
        assert engine.compactor.stats.refused == 1
        for index in range(PARTITIONS):
            ranges = engine.partitions[("t", index)].ranges
            assert {r.object_key for r in ranges} == uploads
        await engine.close()

    asyncio.run(scenario())
