"""When the uploader cuts an object: at `upload.bytes` pending (or a quarter of the memory
budget, if less), or once the oldest pending byte is `upload.interval.ms` old; between
those, checks put nothing, and a clean stop uploads what waits in one object."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contextplane.protocol.records import split_batches
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.object_format import index_bytes_max
from contextplane.storage.objectstore import BoundedObjectStore
from tests.support.metadata import open_store
from tests.support.rawclient import record_batch
from tests.support.wait import wait_until_async

KIB = 1024
MIB = 1024 * KIB
NEVER_MS = 600_000  # an age bound no test lives to see


async def _engine(settings: Settings, store: MemoryObjectStore) -> StorageEngine:
    metadata = await open_store(settings, {"t": 2})
    objects = BoundedObjectStore(store, settings.object_store_request_timeout_ms)
    engine = StorageEngine(settings, metadata, objects=objects)
    await engine.open()
    return engine


async def _append(engine: StorageEngine, index: int, size: int) -> None:
    partition = engine.partitions[("t", index % 2)]
    data = record_batch([b"%08d" % index + b"v" * size])
    await engine.append(partition, split_batches(data, 1 << 20)).durable


def test_a_byte_waits_for_its_age_bound_not_the_next_tick(tmp_path: Path) -> None:
    """A byte arriving between two checks is uploaded once it is `upload.interval.ms` old:
    a fixed cadence would upload it at the next tick, however young."""
    interval_ms = 1_000
    settings = Settings(data_dir=tmp_path, upload_interval_ms=interval_ms)
    store = MemoryObjectStore()

    async def run() -> float:
        engine = await _engine(settings, store)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.6)  # mid-way between where ticks of 1 s would fall
        appended = loop.time()
        await _append(engine, 0, KIB)
        await wait_until_async(
            lambda: engine.uploader.objects_committed == 1, 30, "the record is uploaded"
        )
        uploaded = loop.time()
        await engine.close()
        return uploaded - appended

    assert asyncio.run(run()) >= interval_ms / 1000
    assert len(store.put_sizes) == 1


def test_checks_put_nothing_and_a_clean_stop_puts_one_object(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, upload_interval_ms=NEVER_MS)
    store = MemoryObjectStore()

    async def run() -> None:
        engine = await _engine(settings, store)
        for index in range(6):  # spread over several checks (250 ms apart)
            await _append(engine, index, 16 * KIB)
            await asyncio.sleep(0.1)
        assert engine.uploader.objects_committed == 0
        assert store.put_sizes == []
        await engine.close()  # the drain
        assert engine.pending_bytes == 0

    asyncio.run(run())
    assert len(store.put_sizes) == 1  # both partitions' batches in one object


def test_pending_bytes_are_uploaded_at_a_quarter_of_the_memory_budget(tmp_path: Path) -> None:
    """`upload.bytes` above what the memory budget can hold for an upload: the budget's
    share (a quarter: an upload reserves twice its size of the in-flight half) cuts the
    objects instead, whatever the age bound."""
    settings = Settings(
        data_dir=tmp_path,
        upload_interval_ms=NEVER_MS,
        upload_bytes=64 * MIB,
        memory_budget_bytes=4 * MIB,
    )
    share = settings.memory_budget_bytes // 4
    store = MemoryObjectStore()

    async def run() -> None:
        engine = await _engine(settings, store)
        index = 0
        while engine.pending_bytes < share:
            await _append(engine, index, 32 * KIB)
            index += 1
        await wait_until_async(lambda: bool(store.put_sizes), 30, "the share's object")
        # Taken once pending reached the share (less the one append a slow WAL write may
        # still hold back), far below upload.bytes, and over the share by one batch at
        # most: what the upload reserves stays within the budget's in-flight half.
        batch = len(record_batch([b"%08d" % 0 + b"v" * 32 * KIB]))
        assert share - 64 * KIB <= store.put_sizes[0] < share + batch + index_bytes_max(2)
        await engine.close()

    asyncio.run(run())


def test_an_object_is_cut_after_the_batch_that_crosses_upload_bytes(tmp_path: Path) -> None:
    """As Kafka's `segment.bytes` rolls on the next append: the batch that brings the
    object to `upload.bytes` is its last, so objects fill to the bound whatever the batch
    size, and none is over it by more than that one batch."""
    settings = Settings(data_dir=tmp_path, upload_interval_ms=NEVER_MS, upload_bytes=100 * KIB)
    one = record_batch([b"v" * 30 * KIB])
    store = MemoryObjectStore()

    async def run() -> None:
        engine = await _engine(settings, store)
        # One append of 14 batches, durable together: every object has its pick of them.
        await engine.append(engine.partitions[("t", 0)], split_batches(one * 14, 1 << 20)).durable
        # Three objects of four batches each (three are 90 KiB: short of the bound).
        await wait_until_async(lambda: len(store.put_sizes) == 3, 30, "three full objects")
        await engine.close()  # the drain takes the two left

    asyncio.run(run())
    *full, rest = store.put_sizes
    assert len(full) == 3
    index = index_bytes_max(1)  # on top of the data, which upload.bytes bounds
    for size in full:
        # Over the bound, by less than the one batch that crossed it (and the index).
        assert settings.upload_bytes <= size - index < settings.upload_bytes + len(one)
    assert rest < 3 * len(one)
