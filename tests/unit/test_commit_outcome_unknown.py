"""An object commit whose outcome the uploader could not learn (the metadata store's
connection broke as the commit landed, or the call ran out of time) is retried with its
own key: the store recognises it, nothing is published twice, the WAL drains, and the
object stays out of the orphan sweep's reach meanwhile. A retry under a new key would
collide with the ranges already committed, and the uploads would stall for good."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from contextplane.metadata.records import CommitOutcome, ObjectCommit
from contextplane.metadata.store import MetadataStoreUnavailable
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.memory_wal import MemoryWal
from tests.support.metadata import open_store
from tests.unit.test_engine_recovery import batch


def test_a_commit_whose_reply_was_lost_is_retried_with_its_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, upload_interval_ms=3_600_000)

    async def run() -> None:
        metadata = await open_store(settings, {"t": 1})
        objects = MemoryObjectStore()
        engine = StorageEngine(settings, metadata, wal=MemoryWal(), objects=objects)
        await engine.open()
        commit = metadata.commit_object
        sent: list[str] = []

        async def reply_lost_once(request: ObjectCommit) -> CommitOutcome:
            outcome = await commit(request)
            sent.append(request.key)
            if len(sent) == 1:
                raise MetadataStoreUnavailable("connection lost as COMMIT was answered")
            return outcome

        metadata.commit_object = reply_lost_once  # type: ignore[method-assign]
        partition = engine.partitions[("t", 0)]
        await engine.append(partition, batch(1, 0, 10, b"A")).durable
        with pytest.raises(MetadataStoreUnavailable):
            await engine.uploader.upload_once()
        (key,) = sent
        assert key in engine.in_flight and engine.pending_bytes > 0
        assert await engine.uploader.upload_once() > 0
        assert sent == [key, key]
        assert key not in engine.in_flight and engine.pending_bytes == 0
        stored = (await metadata.ranges_by_stream())[partition.stream_id]
        assert [(r.base_offset, r.end_offset, r.object_key) for r in stored] == [(0, 10, key)]
        assert [(r.base_offset, r.end_offset) for r in partition.ranges] == [(0, 10)]
        assert await engine.uploader.upload_once() == 0  # nothing left to upload
        await engine.close()
        await metadata.close()

    asyncio.run(run())
