"""Start-up reads no partition's ranges: a partition's object index is loaded from the
store on its first need (one `ranges_of` query however many wait), uploads to an
unloaded index only update its summary, retention decides from the summary, and an idle
index leaves memory (storage/partition_index.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

from contextplane.errors import KafkaError
from contextplane.metadata.records import RangeRecord
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import split_batches
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from contextplane.storage.partition import PartitionLog
from contextplane.storage.partition_index import PartitionIndex
from contextplane.storage.reader import ReadRequest
from tests.support.metadata import open_store
from tests.support.rawclient import record_batch

PARTITIONS = 200
UPLOADS = 3  # objects, each with one range of every partition


class World:
    """What survives a restart: the metadata file, the WAL medium and the bucket."""

    def __init__(self, tmp_path: Path, **settings: int) -> None:
        # segment.bytes of 1: every range is its own segment, so retention can delete
        # all but the last (the active one).
        self.settings = Settings(
            data_dir=tmp_path,
            upload_interval_ms=3_600_000,
            segment_bytes=1,
            **settings,  # type: ignore[arg-type]
        )
        self.wal = WalMedium()
        self.bucket = ObjectBucket()
        self.loads: list[int] = []  # stream ids passed to ranges_of

    async def start(self, **changes: int) -> StorageEngine:
        settings = dataclasses.replace(self.settings, **changes)  # type: ignore[arg-type]
        metadata = await open_store(settings, {"t": PARTITIONS})
        count_loads(metadata, self.loads)
        engine = StorageEngine(
            settings, metadata, wal=MemoryWal(self.wal), objects=MemoryObjectStore(self.bucket)
        )
        await engine.open()
        return engine


def count_loads(metadata: MetadataStore, loads: list[int]) -> None:
    ranges_of = metadata.ranges_of

    async def counted(stream_id: int) -> list[RangeRecord]:
        loads.append(stream_id)
        return await ranges_of(stream_id)

    metadata.ranges_of = counted  # type: ignore[method-assign]


async def produce(engine: StorageEngine, partitions: list[PartitionLog], uploads: int) -> None:
    """`uploads` objects, each with one batch of every one of `partitions`."""
    for _ in range(uploads):
        for partition in partitions:
            batch = record_batch([b"v%d" % partition.partition])
            await engine.append(partition, split_batches(batch, 1 << 20)).durable
        assert await engine.upload_once() > 0


async def filled(world: World) -> None:
    engine = await world.start()
    await produce(engine, list(engine.partitions.values()), UPLOADS)
    await engine.close()
    await engine.metadata.close()


def test_a_restart_loads_only_the_index_a_read_needs(tmp_path: Path) -> None:
    world = World(tmp_path)

    async def run() -> None:
        await filled(world)
        world.loads.clear()
        engine = await world.start()
        assert world.loads == [], "start-up read ranges"
        assert engine.budget.range_record_bytes == 0
        read = engine.partitions[("t", 42)]
        assert read.high_watermark == UPLOADS  # the object end, from the summary
        assert not read.cache  # nothing replayed: the read goes to the objects
        chunks = await engine.read(read, 0, 1)
        assert len(chunks) == 1 and b"v42" in bytes(chunks[0])
        assert world.loads == [read.stream_id]
        assert len(read.ranges) == UPLOADS
        assert engine.budget.range_record_bytes > 0  # the loaded index is counted
        others = [p for p in engine.partitions.values() if p is not read]
        assert len(others) == PARTITIONS - 1
        assert not any(p.index.loaded for p in others)
        await engine.close()
        await engine.metadata.close()

    asyncio.run(run())


def test_retention_deletes_on_every_partition_without_reading_objects(tmp_path: Path) -> None:
    world = World(tmp_path)

    async def run() -> None:
        await filled(world)
        # Nothing to delete (no time limit; the records' timestamps are old): no index
        # is loaded to find that out.
        world.loads.clear()
        engine = await world.start(retention_ms=-1)
        await engine.enforce_retention(engine.clock.wall_ms())
        assert world.loads == []
        await engine.close()
        await engine.metadata.close()
        # By time: every closed segment (all but the last range) expired.
        engine = await world.start(retention_ms=1)
        objects = engine.objects
        assert isinstance(objects, MemoryObjectStore)
        await engine.enforce_retention(engine.clock.wall_ms() + 3_600_000)
        assert {p.log_start_offset for p in engine.partitions.values()} == {UPLOADS - 1}
        assert len(world.loads) == PARTITIONS
        assert objects.get_requests == []
        await engine.close()
        await engine.metadata.close()
        # By size: the log keeps at least retention.bytes, less the segment that would
        # bring it below. One more upload per partition first, its index not loaded.
        world.loads.clear()
        engine = await world.start()
        await produce(engine, list(engine.partitions.values()), 1)
        assert world.loads == []
        one = engine.partitions[("t", 0)]
        assert one.index.stats.range_count == 2 and not one.index.loaded
        range_bytes = (await engine.metadata.ranges_of(one.stream_id))[-1].size
        await engine.close()
        await engine.metadata.close()
        engine = await world.start(retention_bytes=range_bytes)
        objects = engine.objects
        assert isinstance(objects, MemoryObjectStore)
        await engine.enforce_retention(engine.clock.wall_ms())
        assert {p.log_start_offset for p in engine.partitions.values()} == {UPLOADS}
        assert objects.get_requests == []
        await engine.close()
        await engine.metadata.close()

    asyncio.run(run())


class GatedLoads:
    """`ranges_of` that reads the rows, then waits for `release` before answering: a
    change landing meanwhile is one the rows predate."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.calls = 0
        self.reading = asyncio.Event()
        self.release = asyncio.Event()
        self._ranges_of: Callable[[int], Awaitable[list[RangeRecord]]] = metadata.ranges_of
        metadata.ranges_of = self.ranges_of  # type: ignore[method-assign]

    async def ranges_of(self, stream_id: int) -> list[RangeRecord]:
        self.calls += 1
        rows = await self._ranges_of(stream_id)
        self.reading.set()
        await self.release.wait()
        return rows


def test_concurrent_needs_share_one_load_and_an_upload_meanwhile_is_kept(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)

    async def run() -> None:
        await filled(world)
        engine = await world.start()
        gate = GatedLoads(engine.metadata)
        partition = engine.partitions[("t", 3)]
        reads = [asyncio.create_task(engine.read(partition, 0, 1)) for _ in range(2)]
        await gate.reading.wait()
        # An upload commits after the load read its rows, before the load answers.
        await produce(engine, [partition], 1)
        assert not partition.index.loaded
        gate.release.set()
        for chunks in await asyncio.gather(*reads):
            assert len(chunks) == 1
        assert gate.calls == 1
        stored = await engine.metadata.ranges_of(partition.stream_id)
        assert list(partition.ranges) == stored and len(stored) == UPLOADS + 1
        await engine.close()
        await engine.metadata.close()

    asyncio.run(run())


def test_a_log_start_move_during_a_load_makes_it_read_again(tmp_path: Path) -> None:
    world = World(tmp_path)

    async def run() -> None:
        await filled(world)
        engine = await world.start()
        gate = GatedLoads(engine.metadata)
        partition = engine.partitions[("t", 5)]
        read = asyncio.create_task(engine.read(partition, 2, 1))
        await gate.reading.wait()
        await engine.advance_log_start(partition, 2)  # DeleteRecords meanwhile
        gate.release.set()
        assert len(await read) == 1
        assert gate.calls == 2
        assert [r.base_offset for r in partition.ranges] == [2]
        assert list(partition.ranges) == await engine.metadata.ranges_of(partition.stream_id)
        await engine.close()
        await engine.metadata.close()

    asyncio.run(run())


def test_an_idle_index_leaves_memory_and_is_loaded_again(tmp_path: Path) -> None:
    world = World(tmp_path, object_index_idle_ms=200)

    async def run() -> None:
        await filled(world)
        world.loads.clear()
        engine = await world.start()
        partition = engine.partitions[("t", 9)]
        assert len(await engine.read(partition, 1, 1)) == 1
        assert partition.index.loaded and engine.budget.range_record_bytes > 0
        async with asyncio.timeout(10):
            while partition.index.loaded:
                await asyncio.sleep(0.05)
        assert engine.budget.range_record_bytes == 0
        stats = partition.index.stats
        assert (stats.range_count, stats.end_offset, stats.exact) == (UPLOADS, UPLOADS, True)
        assert len(await engine.read(partition, 2, 1)) == 1
        assert world.loads == [partition.stream_id] * 2
        await engine.close()
        await engine.metadata.close()

    asyncio.run(run())


def test_a_failed_load_answers_a_storage_error_and_the_next_read_loads(tmp_path: Path) -> None:
    world = World(tmp_path)

    async def run() -> None:
        await filled(world)
        engine = await world.start()
        ranges_of = engine.metadata.ranges_of
        failures = [OSError("disk I/O error")]

        async def failing_once(stream_id: int) -> list[RangeRecord]:
            if failures:
                raise failures.pop()
            return await ranges_of(stream_id)

        engine.metadata.ranges_of = failing_once  # type: ignore[method-assign]
        partition = engine.partitions[("t", 1)]
        (failed,) = await engine.read_many([ReadRequest(partition, 0, 1)], 1 << 20)
        assert isinstance(failed, KafkaError)
        assert failed.code == ErrorCode.kafka_storage_error
        assert not partition.index.loaded
        (chunks,) = await engine.read_many([ReadRequest(partition, 0, 1)], 1 << 20)
        assert isinstance(chunks, list) and len(chunks) == 1
        await engine.close()
        await engine.metadata.close()

    asyncio.run(run())


def test_a_swap_during_a_load_makes_it_read_again_and_an_append_is_kept() -> None:
    """The index alone, its store a list of rows: a swap that lands after the load read
    the rows (the old ones), and an append, both before the load answers."""

    def record(base: int, key: str) -> RangeRecord:
        return RangeRecord(1, base, base + 10, key, 0, 100, base, 0)

    async def run() -> None:
        stored = [record(0, "a"), record(10, "b")]
        reading, release = asyncio.Event(), asyncio.Event()
        fetches = 0

        async def fetch() -> list[RangeRecord]:
            nonlocal fetches
            fetches += 1
            rows = list(stored)
            if fetches == 1:
                reading.set()
                await release.wait()
            return rows

        index = PartitionIndex(fetch=fetch)
        load = asyncio.create_task(index.load())
        await reading.wait()
        # The compactor's swap: [0, 20) becomes one range of object "ab".
        stored[:] = [RangeRecord(1, 0, 20, "ab", 0, 200, 10, 0)]
        index.replace(0, 20, list(stored))
        # An upload's commit.
        stored.append(record(20, "c"))
        index.append(stored[-1])
        release.set()
        ranges = await load
        assert fetches == 2
        assert list(ranges) == stored
        assert index.stats.range_count == 2

    asyncio.run(run())
