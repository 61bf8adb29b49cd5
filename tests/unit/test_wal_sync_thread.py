"""The WAL's group commits run on its own sync thread: one hand-off per commit, none
through the loop's shared executor, and an append is acknowledged only after its sync."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contextplane.storage.file_wal import FileOps, FileWal


class RefusingExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor, counting what is submitted to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


class RecordingDisk(FileOps):
    """Real file operations; records the thread of each sync and can hold a sync."""

    def __init__(self) -> None:
        self.sync_threads: list[int] = []
        self.release = threading.Event()
        self.release.set()
        self.syncing = threading.Event()

    def sync(self, fd: int) -> None:
        self.syncing.set()
        self.release.wait(10)
        self.sync_threads.append(threading.get_ident())
        super().sync(fd)


def test_group_commits_run_on_one_sync_thread_not_the_shared_executor(tmp_path: Path) -> None:
    disk = RecordingDisk()
    executor = RefusingExecutor()

    async def run() -> None:
        asyncio.get_running_loop().set_default_executor(executor)
        wal = FileWal(tmp_path, 1 << 20, files=disk)
        list(wal.recover())
        for round_ in range(5):
            acks = [wal.append(1, round_ * 10 + i, b"batch-%d" % i)[1] for i in range(10)]
            await asyncio.gather(*acks)
        wal.close()

    asyncio.run(run())
    executor.shutdown()
    assert executor.submitted == 0
    assert len(set(disk.sync_threads)) == 1
    assert threading.get_ident() not in disk.sync_threads
    assert len(disk.sync_threads) <= 10  # appends of one loop turn share one commit


def test_an_append_is_acknowledged_only_after_its_sync(tmp_path: Path) -> None:
    disk = RecordingDisk()

    async def run() -> None:
        wal = FileWal(tmp_path, 1 << 20, files=disk)
        list(wal.recover())
        disk.release.clear()
        _, first = wal.append(1, 0, b"first")
        await asyncio.to_thread(disk.syncing.wait, 10)
        _, second = wal.append(1, 1, b"second")  # queued behind the commit in flight
        await asyncio.sleep(0)
        assert not first.done() and not second.done()
        assert wal.durable_position == 0
        disk.release.set()
        await first
        await second
        assert len(disk.sync_threads) == 2  # the second waited for a commit of its own
        assert wal.durable_position == wal.end_position
        wal.close()

    asyncio.run(run())
    segment = sorted(tmp_path.glob("*.wal"))[-1]
    assert os.path.getsize(segment) > 0
