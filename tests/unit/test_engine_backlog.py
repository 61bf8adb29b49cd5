"""An object store outage against the engine: memory stays within the budget (batches
waiting for upload are read back from the WAL), produce is throttled then refused, and
afterwards the backlog goes up in objects no larger than upload.bytes, losing nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contextplane.protocol.records import iter_batch_headers, split_batches
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.memory_wal import MemoryWal
from contextplane.storage.object_format import index_bytes_max
from contextplane.storage.objectstore import BoundedObjectStore
from tests.support.metadata import open_store
from tests.support.rawclient import record_batch
from tests.support.wait import wait_until_async

KIB = 1024


def test_outage_backlog_stays_within_budget_then_uploads_in_bounded_objects(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        upload_bytes=256 * KIB,
        upload_interval_ms=20,
        memory_budget_bytes=2048 * KIB,
        wal_backlog_bytes=8192 * KIB,
    )
    store = MemoryObjectStore()

    async def run() -> None:
        metadata = await open_store(settings, {"t": 2})
        objects = BoundedObjectStore(store, settings.object_store_request_timeout_ms)
        engine = StorageEngine(settings, metadata, objects=objects)
        await engine.open()
        store.failing = {"put", "get"}
        sent: list[bytes] = []
        throttled = refusal = None
        while refusal is None:
            admission = engine.admission()
            if admission.refusal is not None:
                refusal = admission.refusal
                break
            if admission.throttle_ms and throttled is None:
                throttled = engine.pending_bytes
            value = b"%08d" % len(sent) + b"v" * (16 * KIB)
            data = record_batch([value])
            partition = engine.partitions[("t", len(sent) % 2)]
            await engine.append(partition, split_batches(data, 1 << 20)).durable
            sent.append(value)
            budget = engine.budget
            assert budget.log_cache_bytes <= budget.log_cache_limit
            assert budget.used_bytes <= budget.total_bytes
        assert throttled is not None and throttled >= settings.wal_backlog_bytes // 2
        assert "wal.backlog.bytes" in refusal
        assert engine.pending_bytes >= settings.wal_backlog_bytes
        assert store.put_sizes == []

        async def everything() -> list[bytes]:
            values = []
            for index in range(2):
                partition = engine.partitions[("t", index)]
                chunks = await engine.read(partition, 0, 1 << 30)
                for chunk in chunks:
                    data = bytes(chunk)
                    position = 0
                    for header in iter_batch_headers(data):
                        record = data[position : position + header.total_bytes]
                        values.append(record[-(16 * KIB + 8) - 1 : -1])
                        position += header.total_bytes
            return sorted(values)

        assert await everything() == sorted(sent)  # served from the WAL during the outage
        store.failing = set()
        await wait_until_async(
            lambda: not engine.pending_bytes, 30, "the backlog is uploaded after the outage"
        )
        assert len(store.put_sizes) > 20
        # Bounded: over upload.bytes by the one batch that crossed it at most, and the
        # index of the two partitions.
        assert max(store.put_sizes) < settings.upload_bytes + len(data) + index_bytes_max(2)
        assert engine.admission().refusal is None
        assert await everything() == sorted(sent)  # now from objects
        await engine.close()

    asyncio.run(run())


def test_upload_of_evicted_batches_finishes_on_a_small_memory_budget(tmp_path: Path) -> None:
    """The uploader reserves in-flight memory for the object, then reads evicted batches
    back from the WAL: that read must not wait for a second reservation, which (with a
    budget under four objects' worth, the object under the quarter of the budget at which
    the uploader would take it by itself) would wait for the first forever."""

    async def scenario() -> int:
        settings = Settings(
            data_dir=tmp_path,
            upload_interval_ms=3_600_000,
            upload_bytes=256_000,
            log_cache_bytes=0,  # every batch's bytes leave memory at once
            memory_budget_bytes=200_000,
        )
        metadata = await open_store(settings, {"t": 1})
        engine = StorageEngine(
            settings,
            metadata,
            wal=MemoryWal(),
            objects=BoundedObjectStore(MemoryObjectStore(), 5_000),
        )
        await engine.open()
        partition = engine.partitions[("t", 0)]
        for _ in range(14):
            await engine.append(
                partition, split_batches(record_batch([b"x" * 3_000]), 1 << 20)
            ).durable
        size = await asyncio.wait_for(engine.upload_once(), 5)  # a liveness bound
        await engine.close()
        return size

    assert asyncio.run(scenario()) > 40_000  # reserved twice, nested: above 100,000
