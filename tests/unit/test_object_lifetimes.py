"""Object lifetimes: unreferenced objects wait out their grace period (durably) before
they are deleted, and the orphan sweep deletes only objects no metadata knows, never an
upload in flight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from contextplane.clock import ManualClock
from contextplane.metadata.records import ObjectCommit, RangeCommit
from contextplane.protocol.records import split_batches
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from contextplane.storage.objectstore import ObjectInfo, ObjectStoreError
from contextplane.storage.orphan_sweep import InFlightKeys, OrphanSweep
from tests.support.metadata import open_store
from tests.support.rawclient import record_batch

DELAY_MS = 60_000


class GatedStore:
    """A `MemoryObjectStore` whose reads (or PUT replies) wait for a gate to open: a
    fetch that has found its range but not yet read it, or an upload between its PUT and
    its commit."""

    def __init__(self, inner: MemoryObjectStore) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.gate.set()
        self.gate_puts = False
        self.waiting = asyncio.Event()

    async def put(self, key: str, parts: Sequence[bytes | memoryview]) -> None:
        await self.inner.put(key, parts)
        if self.gate_puts:
            self.waiting.set()
            await self.gate.wait()

    async def get_range(self, key: str, start: int, end: int) -> memoryview:
        if not self.gate_puts:
            self.waiting.set()
            await self.gate.wait()
        return await self.inner.get_range(key, start, end)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    def list_pages(self, prefix: str, page_keys: int) -> AsyncIterator[list[ObjectInfo]]:
        return self.inner.list_pages(prefix, page_keys)


def batch(fill: bytes, count: int = 5) -> list:
    return split_batches(record_batch([fill] * count), 1 << 20)


async def open_engine(
    data_dir: Path, bucket: ObjectBucket, clock: ManualClock, **settings: object
) -> tuple[StorageEngine, GatedStore]:
    config = Settings(
        data_dir=data_dir,
        upload_interval_ms=3_600_000,
        log_cache_bytes=1,  # reads come from objects
        **{"log_segment_delete_delay_ms": DELAY_MS, **settings},  # type: ignore[arg-type]
    )
    metadata = await open_store(config, {"t": 1})
    store = GatedStore(MemoryObjectStore(bucket, clock=clock))
    engine = StorageEngine(config, metadata, wal=MemoryWal(WalMedium()), objects=store, clock=clock)
    return engine, store


async def two_objects(engine: StorageEngine) -> list[str]:
    partition = engine.partitions[("t", 0)]
    for fill in (b"a", b"b"):
        await engine.append(partition, batch(fill)).durable
        await engine.upload_once()
    return [r.object_key for r in partition.ranges]


def test_a_fetch_holding_a_reference_reads_across_a_retention_pass(
    tmp_path: Path, metadata_url: str
) -> None:
    """Retention drops the first object's range while a fetch has found it but not yet
    read it: the fetch still gets its records, and the object goes only after
    log.segment.delete.delay.ms."""

    async def scenario() -> None:
        clock = ManualClock()
        bucket = ObjectBucket()
        engine, store = await open_engine(tmp_path, bucket, clock, metadata_url=metadata_url)
        await engine.open()
        first, second = await two_objects(engine)
        partition = engine.partitions[("t", 0)]
        store.gate.clear()
        store.waiting.clear()
        fetch = asyncio.create_task(engine.read(partition, 0, 1 << 20))
        await store.waiting.wait()  # the fetch holds the first range, not yet its bytes
        await engine.advance_log_start(partition, 5)  # the retention pass
        await asyncio.sleep(0)
        store.gate.set()
        batches = await fetch
        assert batches and bytes(batches[0][:8]) == bytes(8), "the fetch lost offset 0"
        assert b"\x02a" in bytes(batches[0])
        assert first in bucket.objects and second in bucket.objects
        assert await engine.deleter.delete_due() == 0  # not due yet
        clock.advance(DELAY_MS)
        assert await engine.deleter.delete_due() == 1
        assert first not in bucket.objects and second in bucket.objects
        await engine.close()

    asyncio.run(scenario())


def test_objects_pending_deletion_survive_a_restart_until_due(
    tmp_path: Path, metadata_url: str
) -> None:
    """The queue of objects to delete is durable: a broker stopped within the grace
    period deletes the object after it restarts, once due, and not before."""

    async def scenario() -> None:
        clock = ManualClock()
        bucket = ObjectBucket()
        engine, _ = await open_engine(tmp_path, bucket, clock, metadata_url=metadata_url)
        await engine.open()
        first, _second = await two_objects(engine)
        await engine.advance_log_start(engine.partitions[("t", 0)], 5)
        await engine.close()
        await engine.metadata.close()
        assert first in bucket.objects

        engine, _ = await open_engine(tmp_path, bucket, clock, metadata_url=metadata_url)
        await engine.open()
        assert await engine.deleter.delete_due() == 0
        assert first in bucket.objects
        clock.advance(DELAY_MS)
        assert await engine.deleter.delete_due() == 1
        assert first not in bucket.objects
        assert await engine.metadata.next_deletion_due() is None
        await engine.close()

    asyncio.run(scenario())


def test_a_failed_delete_stays_queued(tmp_path: Path, metadata_url: str) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        bucket = ObjectBucket()
        engine, store = await open_engine(
            tmp_path, bucket, clock, metadata_url=metadata_url, log_segment_delete_delay_ms=0
        )
        await engine.open()
        first, _ = await two_objects(engine)
        store.inner.failing.add("delete")
        await engine.advance_log_start(engine.partitions[("t", 0)], 5)
        with contextlib.suppress(ObjectStoreError):
            await engine.deleter.delete_due()
        assert first in bucket.objects
        store.inner.failing.clear()
        assert await engine.deleter.delete_due() == 1
        assert first not in bucket.objects
        await engine.close()

    asyncio.run(scenario())


def test_the_sweep_deletes_only_old_objects_no_metadata_knows(
    tmp_path: Path, metadata_url: str
) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        bucket = ObjectBucket()
        engine, _ = await open_engine(tmp_path, bucket, clock, metadata_url=metadata_url)
        await engine.open()
        referenced, queued = await two_objects(engine)
        await engine.advance_log_start(engine.partitions[("t", 0)], 5)  # first is queued
        referenced, queued = queued, referenced
        bucket.objects["objects/00/old-orphan.obj"] = b"x"
        bucket.modified_ms["objects/00/old-orphan.obj"] = clock.wall_ms() - 3_600_000
        bucket.objects["objects/00/young-orphan.obj"] = b"x"
        bucket.modified_ms["objects/00/young-orphan.obj"] = clock.wall_ms() - 3_599_000
        bucket.objects["elsewhere/not-ours.obj"] = b"x"
        # A zone writes' proxy object a crash left behind, and one in its round now.
        bucket.objects["zone-router/2/7/1"] = b"x"
        bucket.modified_ms["zone-router/2/7/1"] = clock.wall_ms() - 3_600_000
        bucket.objects["zone-router/2/7/2"] = b"x"
        bucket.modified_ms["zone-router/2/7/2"] = clock.wall_ms() - 1_000
        for key in (referenced, queued):
            bucket.modified_ms[key] = 0  # as old as can be: still known, so kept
        sweep = OrphanSweep(
            engine.settings, engine.metadata, engine.objects, clock, InFlightKeys(), page_keys=2
        )
        assert await sweep.sweep() == 2
        assert set(bucket.objects) == {
            referenced,
            queued,
            "objects/00/young-orphan.obj",
            "elsewhere/not-ours.obj",
            "zone-router/2/7/2",
        }
        await engine.close()

    asyncio.run(scenario())


def test_an_upload_between_its_put_and_its_commit_is_never_swept(
    tmp_path: Path, metadata_url: str
) -> None:
    """With no minimum age at all, a sweep that runs while an upload waits between its
    PUT and its commit leaves the object, which the commit then references."""

    async def scenario() -> None:
        clock = ManualClock()
        bucket = ObjectBucket()
        engine, store = await open_engine(
            tmp_path, bucket, clock, metadata_url=metadata_url, object_store_orphan_min_age_ms=0
        )
        await engine.open()
        partition = engine.partitions[("t", 0)]
        await engine.append(partition, batch(b"a")).durable
        store.gate_puts = True
        store.gate.clear()
        upload = asyncio.create_task(engine.upload_once())
        await store.waiting.wait()  # PUT landed, commit not made
        assert await engine.orphan_sweep.sweep() == 0
        store.gate.set()
        await upload
        (record,) = partition.ranges
        assert record.object_key in bucket.objects
        assert await engine.orphan_sweep.sweep() == 0
        # A commit that never comes (a crash after the PUT): the object is swept.
        store.gate_puts = False
        bucket.objects["objects/ff/1-9.obj"] = b"lost"
        bucket.modified_ms["objects/ff/1-9.obj"] = clock.wall_ms()
        assert await engine.orphan_sweep.sweep() == 1
        assert "objects/ff/1-9.obj" not in bucket.objects
        await engine.close()

    asyncio.run(scenario())


def test_a_commit_that_lands_during_the_sweep_keeps_its_object(
    tmp_path: Path, metadata_url: str
) -> None:
    """The sweep checks in-flight keys before it asks the metadata store: an upload that
    commits and leaves the in-flight set between the two is seen as committed."""

    async def scenario() -> None:
        clock = ManualClock()
        bucket = ObjectBucket()
        engine, _ = await open_engine(
            tmp_path, bucket, clock, metadata_url=metadata_url, object_store_orphan_min_age_ms=0
        )
        await engine.open()
        in_flight = InFlightKeys()
        key = "objects/aa/1-77.obj"
        in_flight.add(key)
        bucket.objects[key] = b"data"
        bucket.modified_ms[key] = clock.wall_ms()
        metadata = engine.metadata
        original = metadata.known_objects

        async def answer_then_commit(keys: list[str]) -> set[str]:
            # The upload's commit lands just after the sweep's query was answered.
            answer = await original(keys)
            partition = engine.partitions[("t", 0)]
            ranges = [RangeCommit(partition.stream_id, 0, 1, 0, 4, 0)]
            epochs = {partition.stream_id: partition.leader_epoch}
            await metadata.commit_object(ObjectCommit(key, 4, 0, ranges, epochs, {}))
            in_flight.discard(key)
            return answer

        metadata.known_objects = answer_then_commit  # type: ignore[method-assign]
        sweep = OrphanSweep(engine.settings, metadata, engine.objects, clock, in_flight)
        # In flight when the sweep looked: skipped (a sweep that asked the store first
        # and looked at the in-flight keys after would delete a committed object).
        assert await sweep.sweep() == 0 and key in bucket.objects
        assert await sweep.sweep() == 0 and key in bucket.objects  # now known
        await engine.close()

    asyncio.run(scenario())
