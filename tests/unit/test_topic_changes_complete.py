"""A change of the topic table runs to its end even when the request that asked for it is
cancelled (its client closed the connection): otherwise a topic could exist in the store
while nobody leads its partitions until the broker restarts.

Each case pauses the change between its metadata commit and the opening of the
partitions, cancels the request there, then lets the change go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from contextplane.broker.topics import TopicManager
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.memory_wal import MemoryWal
from contextplane.storage.objectstore import BoundedObjectStore
from tests.support.metadata import open_store
from tests.support.wait import wait_until_async

CHANGES: dict[str, Callable[[TopicManager], Awaitable[object]]] = {
    "auto-creation (Metadata, Produce)": lambda topics: topics.auto_create_many(["new"]),
    "CreateTopics": lambda topics: topics.create("new", 2, {}),
    "CreatePartitions": lambda topics: topics.add_partitions("old", 3),
}
LED_AFTERWARDS = {
    "auto-creation (Metadata, Produce)": {("new", 0)},
    "CreateTopics": {("new", 0), ("new", 1)},
    "CreatePartitions": {("old", 0), ("old", 1), ("old", 2)},
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_cancelled_request_still_completes_its_topic_change(tmp_path: Path, change: str) -> None:
    settings = Settings(data_dir=tmp_path, upload_interval_ms=60_000)

    async def run() -> None:
        metadata = await open_store(settings, {"old": 1})
        objects = BoundedObjectStore(MemoryObjectStore(), 2_000)
        engine = StorageEngine(settings, metadata, wal=MemoryWal(), objects=objects)
        await engine.open()
        topics = TopicManager(metadata, engine, settings)
        await topics.load()

        paused, release = asyncio.Event(), asyncio.Event()
        open_partitions = engine.open_new_partitions

        async def open_after_release(topic: str) -> None:
            paused.set()
            await release.wait()
            await open_partitions(topic)

        engine.open_new_partitions = open_after_release  # type: ignore[method-assign]
        request = asyncio.create_task(CHANGES[change](topics))
        await asyncio.wait_for(paused.wait(), 5)  # committed; partitions not opened yet
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        release.set()

        wanted = LED_AFTERWARDS[change]
        await wait_until_async(lambda: wanted <= set(engine.partitions), 5, f"{sorted(wanted)} led")
        listed = topics.topics()
        assert {name for name, _ in wanted} <= set(listed)
        assert all(listed[name].partitions > index for name, index in wanted)
        await engine.close()
        await metadata.close()

    asyncio.run(run())
