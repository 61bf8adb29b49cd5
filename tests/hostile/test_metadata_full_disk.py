"""The SQLite metadata store on a disk with no space left at all (a small tmpfs), and no
reserve to release: it opens and reads, its writes fail retriably until space returns,
and an open that cannot go on waits for space, saying so once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

import pytest

from contextplane.metadata.reserve import SpaceReserve
from contextplane.metadata.runner import ThreadRunner
from contextplane.metadata.sqlite import MetadataStoreFull, SqliteMetadataStore
from contextplane.protocol.error_codes import ErrorCode
from tests.hostile.support import MIB, fill_disk, tmpfs
from tests.support.wait import wait_until_async

_P = ParamSpec("_P")
_T = TypeVar("_T")


class CountingRunner(ThreadRunner):
    """The store's worker thread, counting the calls it is given (each open attempt is
    one)."""

    def __init__(self) -> None:
        super().__init__("metadata")
        self.calls = 0

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        self.calls += 1
        return await super().run(fn, *args, **kwargs)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", 1 * MIB) as path:
        yield path


def test_a_store_on_a_full_disk_opens_reads_and_writes_once_space_returns(
    tiny_disk: Path,
) -> None:
    path = str(tiny_disk / "metadata.db")

    async def run() -> None:
        store = SqliteMetadataStore(path)
        await store.open()
        await store.create_topic("kept", 1, {})
        await store.close()

        filler = fill_disk(tiny_disk)  # nothing left, not even for SQLite's -shm file
        store = SqliteMetadataStore(path)
        await asyncio.wait_for(store.open(), 10)
        assert [topic.name for topic in await store.topics()] == ["kept"]
        # A Kafka error the handlers answer with (the connection stays open), not an
        # internal error.
        with pytest.raises(MetadataStoreFull, match="its disk is full") as refused:
            await store.create_topic("refused", 1, {})
        assert refused.value.code == ErrorCode.kafka_storage_error
        filler.unlink()
        await store.create_topic("after", 1, {})
        assert sorted(topic.name for topic in await store.topics()) == ["after", "kept"]
        await store.close()

    asyncio.run(run())


def test_an_open_with_no_room_at_all_waits_for_space_and_says_so_once(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    filler = fill_disk(tiny_disk)  # a first start: the database itself cannot be made

    async def run() -> None:
        runner = CountingRunner()
        store = SqliteMetadataStore(str(tiny_disk / "metadata.db"), runner=runner)
        opening = asyncio.ensure_future(store.open())
        await wait_until_async(
            lambda: "cannot open: the disk is full" in caplog.text, 10, "the full disk is logged"
        )
        assert not opening.done()
        # Several attempts (one every SPACE_RETRY_S), and still one line.
        await wait_until_async(lambda: runner.calls >= 3, 20, "the open is retried twice")
        assert not opening.done()
        filler.unlink()
        await asyncio.wait_for(opening, 10)
        await store.create_topic("t", 1, {})
        await store.close()

    with caplog.at_level(logging.INFO, logger="contextplane.metadata"):
        asyncio.run(run())
    assert caplog.text.count("cannot open: the disk is full") == 1, caplog.text


def test_a_stop_keeps_the_free_space_as_the_reserve(tiny_disk: Path) -> None:
    # The disk filled while running: the reserve was released for a metadata write, and
    # what the broker freed since (trimmed WAL segments) it may not use for produce
    # before the reserve is back. A stop keeps that space rather than leave it to
    # whatever else fills the disk before the next start.
    path = str(tiny_disk / "metadata.db")
    reserve = SpaceReserve(tiny_disk / "metadata.reserve", 256 * 1024)

    async def run() -> None:
        store = SqliteMetadataStore(path, reserve)
        assert reserve.ensure()
        await store.open()
        await store.create_topic("kept", 1, {})
        fillers = [fill_disk(tiny_disk)]
        reserve.release()
        await store.close()
        assert reserve.path.exists(), "the space free at the stop was not kept"
        fillers.append(fill_disk(tiny_disk))  # what else is left is taken after the stop

        store = SqliteMetadataStore(path, reserve)
        reserve.release()  # as the start does on a nearly full disk (broker/app.py)
        await asyncio.wait_for(store.open(), 10)
        await store.create_topic("claimed", 1, {})  # room for the start's first write
        assert sorted(topic.name for topic in await store.topics()) == ["claimed", "kept"]
        await store.close()
        for filler in fillers:
            filler.unlink()

    asyncio.run(run())
