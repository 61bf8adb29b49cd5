"""A cancellation that arrives in the same loop iteration as the wake-up a task waits for
must still cancel it.

On Python 3.11 `asyncio.wait_for` drops such a cancellation: it returns the inner result
as if never cancelled. The uploader's loop then ran on after `StorageEngine.close()` (or a
crash) cancelled it, and close waited for it forever; the group coordinator's timer task
did the same to `stop()`; a request through `BoundedObjectStore` carried its caller on
past its cancellation. Each case here sets the wake-up, lets the loop run a few
callbacks (the race's window is one of them), then cancels a task that has not finished,
and expects it to end cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from contextplane.coordinators.group import GroupCoordinator
from contextplane.coordinators.group_state import CoordinatorConfig
from contextplane.metadata.records import CommitOutcome, ObjectCommit
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.memory_wal import MemoryWal
from contextplane.storage.objectstore import BoundedObjectStore
from tests.support.metadata import open_store
from tests.support.wait import wait_until_async
from tests.unit.test_engine_recovery import batch

# Loop iterations between the wake-up and the cancellation: the lost cancellation needs
# the awaited wake-up done and its waiter released, but the waiting task not yet resumed.
WINDOW = range(4)


async def _yield(times: int) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


async def _ends_cancelled(task: asyncio.Task[object]) -> None:
    done, _ = await asyncio.wait({task}, timeout=5)  # a liveness bound
    assert task in done, f"{task.get_name()} ran on after it was cancelled"
    assert task.cancelled(), f"{task.get_name()} ended without being cancelled"


def _race(
    start: Callable[[], Awaitable[asyncio.Task[object]]],
    wake: Callable[[], None],
) -> None:
    for yields in WINDOW:

        async def run(yields: int = yields) -> None:
            task = await start()
            wake()
            await _yield(yields)
            if task.done():
                return  # it finished first: no race at this point
            task.cancel()
            await _ends_cancelled(task)

        asyncio.run(run())


def test_the_uploader_stops_when_cancelled_as_it_is_woken(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, upload_interval_ms=60_000)
    engines: list[StorageEngine] = []

    async def start() -> asyncio.Task[object]:
        metadata = await open_store(settings, {"t": 1})
        objects = BoundedObjectStore(MemoryObjectStore(), 2_000)
        engine = StorageEngine(settings, metadata, wal=MemoryWal(), objects=objects)
        engines[:] = [engine]
        task: asyncio.Task[object] = asyncio.create_task(engine.uploader.run(), name="uploader")
        await _yield(2)  # it waits for a wake-up now
        return task

    _race(start, lambda: engines[0].uploader.wakeup.set())


def test_the_group_timer_task_stops_when_cancelled_as_it_is_woken(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    coordinators: list[GroupCoordinator] = []

    async def start() -> asyncio.Task[object]:
        store = await open_store(settings)
        coordinator = GroupCoordinator(store, CoordinatorConfig())
        coordinators[:] = [coordinator]
        await coordinator.start()
        await wait_until_async(
            lambda: coordinator._sleeping_until is not None, 5, "the timer task sleeps"
        )
        assert coordinator._task is not None and coordinator._wake is not None
        return coordinator._task  # type: ignore[return-value]

    def wake() -> None:
        assert coordinators[0]._wake is not None
        coordinators[0]._wake.set()

    _race(start, wake)


def test_a_bounded_request_is_cancelled_even_as_it_completes() -> None:
    stores: list[MemoryObjectStore] = []

    async def start() -> asyncio.Task[object]:
        store = MemoryObjectStore()
        stores[:] = [store]
        store.stall()
        bounded = BoundedObjectStore(store, 60_000)
        task: asyncio.Task[object] = asyncio.create_task(bounded.delete("key"), name="delete")
        await _yield(2)  # the request hangs in the store
        return task

    _race(start, lambda: stores[0].resume())


def test_close_during_an_upload_commit_does_not_upload_the_batches_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The engine's close cancels the uploader's loop. The store's worker thread finishes
    a commit it has started whatever happens to its caller, so a loop cancelled after
    the commit but before marking the batches uploaded left them pending: the final
    drain uploaded them again and the commit collided with the committed ranges (UNIQUE
    constraint) until shutdown.timeout.ms ran out."""
    # One batch is an object's worth (upload.bytes=1): the append wakes the uploader,
    # which uploads at once; the age bound (a minute) never triggers one of its own.
    settings = Settings(
        data_dir=tmp_path, upload_interval_ms=60_000, upload_bytes=1, shutdown_timeout_ms=3_000
    )

    async def run() -> None:
        metadata = await open_store(settings, {"t": 1})
        engine = StorageEngine(settings, metadata, wal=MemoryWal(), objects=MemoryObjectStore())
        await engine.open()
        committed, resume = asyncio.Event(), asyncio.Event()
        commit = metadata.commit_object

        async def commit_then_pause(request: ObjectCommit) -> CommitOutcome:
            outcome = await commit(request)
            committed.set()
            await resume.wait()  # the caller has not resumed yet: the close comes now
            return outcome

        metadata.commit_object = commit_then_pause  # type: ignore[method-assign]
        partition = engine.partitions[("t", 0)]
        await engine.append(partition, batch(1, 0, 10, b"A")).durable
        await wait_until_async(committed.is_set, 5, "the upload's commit")
        closing = asyncio.create_task(engine.close())
        await _yield(3)  # close has cancelled the loop
        resume.set()
        await closing
        assert engine.pending_bytes == 0
        await metadata.close()

    with caplog.at_level(logging.WARNING, "contextplane.storage"):
        asyncio.run(run())
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
