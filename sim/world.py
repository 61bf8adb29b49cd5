"""What outlives a simulated broker process, and one process (an incarnation) on it.

The WAL medium, the object bucket and the metadata store survive a crash; the engine,
its tasks and its in-memory state do not. A crash keeps only what each medium made
durable (plus, at random, part of what it had written but not yet synced) and fences the
dead process: its WAL and object store stop touching their media, and its metadata
handle refuses every call, so a task of the old process that is still unwinding cannot
change what the next one sees.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, cast

from contextplane.clock import Clock
from contextplane.metadata.store import MetadataStore
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from contextplane.storage.objectstore import BoundedObjectStore


class ProcessCrashed(ConnectionError):
    """A call from a process that has crashed."""


class FencedMetadata:
    """The metadata store as one process sees it: every call fails once it crashed.

    Calls run inline (no thread), each in one transaction, so a crash never lands in the
    middle of one."""

    def __init__(self, store: MetadataStore) -> None:
        self._store = store
        self.alive = True

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if not self.alive:
                raise ProcessCrashed(f"metadata.{name}: this process crashed")
            return await attribute(*args, **kwargs)

        return guarded


WalFactory = Callable[[WalMedium], MemoryWal]


class World:
    """The durable media, and the process currently running on them."""

    def __init__(
        self,
        settings: Settings,
        metadata: MetadataStore,
        clock: Clock,
        wal_capacity_bytes: int,
        object_latency_ms: float,
        wal_sync_ms: float,
        wal_factory: WalFactory,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.store = metadata
        self.medium = WalMedium(wal_capacity_bytes)
        self.bucket = ObjectBucket()
        self._object_latency_ms = object_latency_ms
        self._wal_sync_ms = wal_sync_ms
        self._wal_factory = wal_factory
        self.wal: MemoryWal
        self.objects: MemoryObjectStore
        self.metadata: FencedMetadata
        self.engine: StorageEngine
        self.crashes = 0
        self.driver = asyncio.current_task()  # the simulation itself survives crashes

    async def start(self) -> StorageEngine:
        """Start a process on the media: open the engine (WAL replay, leadership)."""
        self.wal = self._wal_factory(self.medium)
        self.wal.sync_delay_ms = self._wal_sync_ms
        self.objects = MemoryObjectStore(self.bucket, self._object_latency_ms)
        self.metadata = FencedMetadata(self.store)
        bounded = BoundedObjectStore(
            self.objects, self.settings.object_store_request_timeout_ms, self.clock
        )
        self.engine = StorageEngine(
            self.settings,
            cast(MetadataStore, self.metadata),
            wal=self.wal,
            objects=bounded,
            clock=self.clock,
        )
        await self.engine.open()
        return self.engine

    async def crash(self, keep_unsynced_wal: int, keep_object: Callable[[str], bool]) -> None:
        """Kill the process: the media keep what was durable, every task of the process
        (the caller's aside) is cancelled without a chance to write anything."""
        self.crashes += 1
        self.metadata.alive = False
        self.medium.crash(keep_unsynced_wal)
        self.bucket.crash(keep_object)
        await cancel_all_tasks(self.driver)


async def cancel_all_tasks(spare: asyncio.Task[Any] | None = None) -> None:
    """Cancel every task but the caller's (and `spare`, the simulation's driver) and wait
    until they are gone."""
    keep = {asyncio.current_task(), spare}
    tasks = [t for t in asyncio.all_tasks() if t not in keep]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
