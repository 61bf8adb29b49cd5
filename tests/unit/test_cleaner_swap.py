"""The cleaner's swap is crash-safe: a crash after the new object's PUT and before the
swap leaves the log as it was (the orphan sweep deletes the new object); after the swap
the log is the cleaned one, and the replaced objects wait out the grace period."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contextplane.clock import ManualClock
from contextplane.protocol.offsets_records import encode_batch
from contextplane.protocol.record_codec import read_records
from contextplane.protocol.records import split_batches
from contextplane.settings import Settings
from contextplane.storage.compaction import CleanerConfig, iter_batches
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from tests.support.metadata import open_store
from tests.unit.test_object_lifetimes import GatedStore

DELAY_MS = 60_000
COMPACTED = {"cleanup.policy": "compact", "segment.ms": "1"}  # each upload a segment


async def open_engine(
    data_dir: Path, bucket: ObjectBucket, clock: ManualClock, wal: WalMedium
) -> tuple[StorageEngine, GatedStore]:
    settings = Settings(
        data_dir=data_dir,
        upload_interval_ms=3_600_000,
        log_cache_bytes=1,
        log_segment_delete_delay_ms=DELAY_MS,
        object_store_orphan_min_age_ms=0,
        log_cleaner_enable=False,  # the test drives the cleaner
    )
    metadata = await open_store(settings, {"t": 1})
    store = GatedStore(MemoryObjectStore(bucket, clock=clock))
    engine = StorageEngine(
        settings,
        metadata,
        wal=MemoryWal(wal),
        objects=store,
        clock=clock,
        topic_configs=lambda _: COMPACTED,
    )
    await engine.open()
    return engine, store


async def fill(engine: StorageEngine, clock: ManualClock) -> None:
    """Three objects: keys a-d, then a-b again, then the active segment."""
    partition = engine.partitions[("t", 0)]
    for records in (
        [(b"a", b"1"), (b"b", b"1"), (b"c", b"1"), (b"d", b"1")],
        [(b"a", b"2"), (b"b", b"2")],
        [(b"z", b"active")],
    ):
        batch = encode_batch(records, 1_700_000_000_000)
        await engine.append(partition, split_batches(batch, 1 << 20)).durable
        await engine.upload_once()
        clock.advance(1)


async def log_of(engine: StorageEngine) -> list[tuple[int, bytes | None, bytes | None]]:
    partition = engine.partitions[("t", 0)]
    out = []
    for chunk in await engine.read(partition, 0, 1 << 20):
        for batch in iter_batches(chunk):
            out += [(r.offset, r.key, r.value) for r in read_records(batch, 1 << 20)[1]]
    return out


ORIGINAL = [
    (0, b"a", b"1"), (1, b"b", b"1"), (2, b"c", b"1"), (3, b"d", b"1"),
    (4, b"a", b"2"), (5, b"b", b"2"), (6, b"z", b"active"),
]  # fmt: skip
CLEANED = [(2, b"c", b"1"), (3, b"d", b"1"), (4, b"a", b"2"), (5, b"b", b"2"), (6, b"z", b"active")]


def test_a_crash_between_the_put_and_the_swap_leaves_the_log_as_it_was(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock, bucket, wal = ManualClock(), ObjectBucket(), WalMedium()
        engine, store = await open_engine(tmp_path, bucket, clock, wal)
        await fill(engine, clock)
        before = set(bucket.objects)
        partition = engine.partitions[("t", 0)]
        store.gate_puts, store.waiting = True, asyncio.Event()
        store.gate.clear()
        clean = asyncio.create_task(
            engine.cleaner.clean_partition(
                partition, CleanerConfig(), partition.ranges[-1].base_offset
            )
        )
        await store.waiting.wait()  # the new object landed; the swap has not run
        clean.cancel()  # the process dies here
        store.gate.set()
        store.gate_puts = False
        await engine.close()
        await engine.metadata.close()
        assert len(set(bucket.objects) - before) == 1

        engine, _ = await open_engine(tmp_path, bucket, clock, wal)
        assert await log_of(engine) == ORIGINAL
        # The sweep the engine runs at start may have taken it already (the read above
        # yields to the loop while its GETs run): either way the orphan sweep deletes it.
        await engine.orphan_sweep.sweep()
        assert set(bucket.objects) == before
        await engine.close()

    asyncio.run(scenario())


def test_after_the_swap_the_log_is_the_cleaned_one_across_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock, bucket, wal = ManualClock(), ObjectBucket(), WalMedium()
        engine, _ = await open_engine(tmp_path, bucket, clock, wal)
        await fill(engine, clock)
        old = {r.object_key for r in engine.partitions[("t", 0)].ranges[:-1]}
        assert await engine.cleaner.clean_once()
        assert await log_of(engine) == CLEANED
        await engine.close()
        await engine.metadata.close()

        engine, _ = await open_engine(tmp_path, bucket, clock, wal)
        assert await log_of(engine) == CLEANED
        assert old <= set(bucket.objects)  # readers' grace period
        assert await engine.orphan_sweep.sweep() == 0  # queued objects are not orphans
        clock.advance(DELAY_MS)
        assert await engine.deleter.delete_due() == len(old)
        assert not old & set(bucket.objects)
        assert await log_of(engine) == CLEANED
        assert not await engine.cleaner.clean_once()  # nothing dirty is left
        await engine.close()

    asyncio.run(scenario())
