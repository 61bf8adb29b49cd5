"""A topic deletion the metadata store refuses leaves the topic as it was: still listed,
still served, still in the store; the retried deletion then removes it everywhere."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from contextplane.broker.topics import TopicManager
from contextplane.metadata.store import MetadataStoreUnavailable
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.memory_wal import MemoryWal
from contextplane.storage.objectstore import BoundedObjectStore
from tests.support.metadata import open_store


def test_a_refused_deletion_keeps_the_topic_and_a_retry_deletes_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, upload_interval_ms=60_000)

    async def run() -> None:
        metadata = await open_store(settings, {"kept": 2})
        engine = StorageEngine(
            settings,
            metadata,
            wal=MemoryWal(),
            objects=BoundedObjectStore(MemoryObjectStore(), 2_000),
        )
        await engine.open()
        topics = TopicManager(metadata, engine, settings)
        await topics.load()
        delete_topic = metadata.delete_topic

        async def refused(name: str, due_ms: int) -> list[str]:
            raise MetadataStoreUnavailable("the metadata store is out of reach")

        metadata.delete_topic = refused  # type: ignore[method-assign]
        with pytest.raises(MetadataStoreUnavailable):
            await topics.delete("kept")
        assert "kept" in topics.topics()
        assert {("kept", 0), ("kept", 1)} <= set(engine.partitions)
        assert "kept" in {t.name for t in await metadata.topics()}

        metadata.delete_topic = delete_topic  # type: ignore[method-assign]
        await topics.delete("kept")
        assert "kept" not in topics.topics()
        assert not {key for key in engine.partitions if key[0] == "kept"}
        assert "kept" not in {t.name for t in await metadata.topics()}
        await engine.close()
        await metadata.close()

    asyncio.run(run())
