"""The object WAL (`wal.url` on `file://`) at a clean stop: one that uploaded everything
leaves only the empty marker naming the end as floor, so the next start (and another
broker's takeover) reads nothing and writes on from the same end; one cut short keeps
every object; a crash while the marker is written or while the objects are deleted loses
and duplicates nothing. Real engine, SQLite metadata, file object stores."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from contextplane.protocol.records import iter_batch_headers
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import ObjectBucket
from contextplane.storage.object_wal import ObjectWal
from contextplane.storage.object_wal_names import WalObject, parse_key
from contextplane.storage.objectstore import BoundedObjectStore, ObjectInfo, open_object_store
from tests.support.metadata import open_store
from tests.unit.test_clean_stop_wal import batch
from tests.unit.test_object_wal import GatedStore, opened, recovered, turn


def settings_for(tmp_path: Path, shutdown_timeout_ms: int, wal_url: str = "") -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        upload_interval_ms=3_600_000,
        shutdown_timeout_ms=shutdown_timeout_ms,
        wal_url=wal_url or (tmp_path / "wal-objects").as_uri(),
    )


async def listed_wal_objects(settings: Settings) -> list[WalObject]:
    """Every WAL object of the node in the store, in write order."""
    store = open_object_store(settings.wal_url, 10_000)
    found = [
        parse_key(info.key)
        async for page in store.list_pages(f"{settings.node_id}/", 1000)
        for info in page
    ]
    return sorted((o for o in found if o is not None), key=lambda o: (o.incarnation, o.sequence))


def wal_objects(settings: Settings) -> list[WalObject]:
    return asyncio.run(listed_wal_objects(settings))


def is_marker(obj: WalObject) -> bool:
    return obj.start == obj.end == obj.floor


class HaltingStore:
    """The real WAL store until `halt_at` ("put" of the marker, or "delete"): there the
    marker PUT lands, or the newest half of the keys is deleted, and the call never
    returns (the process dies there)."""

    def __init__(self, store: BoundedObjectStore, halt_at: str) -> None:
        self._store = store
        self._halt_at = halt_at
        self.halted = asyncio.Event()

    async def put(self, key: str, parts: Sequence[bytes | memoryview]) -> None:
        await self._store.put(key, parts)
        if self._halt_at == "put" and not parts:  # the marker: empty
            await self._halt()

    async def get_range(self, key: str, start: int, end: int) -> memoryview:
        return await self._store.get_range(key, start, end)

    async def delete(self, key: str) -> None:
        await self._store.delete(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        if self._halt_at == "delete":
            await self._store.delete_many(keys[len(keys) // 2 :])
            await self._halt()
        await self._store.delete_many(keys)

    def list_pages(self, prefix: str, page_keys: int) -> AsyncIterator[list[ObjectInfo]]:
        return self._store.list_pages(prefix, page_keys)

    async def _halt(self) -> None:
        self.halted.set()
        await asyncio.Event().wait()


async def open_engine(settings: Settings, wal: ObjectWal | None = None) -> StorageEngine:
    engine = StorageEngine(settings, await open_store(settings, {"t": 1}), wal=wal)
    await engine.open()
    return engine


async def write_five_batches(engine: StorageEngine) -> None:
    partition = engine.partitions[("t", 0)]
    for index in range(5):
        await engine.append(partition, batch(index * 10, 10, b"%d" % index)).durable


async def write_and_stop(settings: Settings) -> None:
    engine = await open_engine(settings)
    await write_five_batches(engine)
    await engine.close()
    await engine.metadata.close()


async def read_after_restart(settings: Settings) -> tuple[list[int], int]:
    """The base offset of every batch read back, and where a retry of the last batch
    lands; then a clean stop."""
    engine = await open_engine(settings)
    partition = engine.partitions[("t", 0)]
    chunks = await engine.read(partition, 0, 1 << 20)
    offsets = [h.base_offset for h in iter_batch_headers(b"".join(bytes(c) for c in chunks))]
    retry = engine.append(partition, batch(40, 10, b"4")).base_offset
    await engine.close()
    await engine.metadata.close()
    return offsets, retry


def replays(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "WAL entries" in r.getMessage()]


def test_a_clean_stop_that_uploaded_everything_leaves_only_the_marker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="contextplane.storage")
    settings = settings_for(tmp_path, shutdown_timeout_ms=10_000)
    asyncio.run(write_and_stop(settings))
    [marker] = wal_objects(settings)
    assert is_marker(marker) and marker.end > 50_000, marker

    async def takeover_reads() -> int:
        store = open_object_store(settings.wal_url, 10_000)
        wal = ObjectWal(store, settings.node_id)
        read = [entry async for page in wal.recover_pages(1 << 20) for entry in page]
        wal.close()
        return len(read)

    assert asyncio.run(takeover_reads()) == 0
    offsets, retry = asyncio.run(read_after_restart(settings))
    assert offsets == [0, 10, 20, 30, 40]
    assert retry == 40, "the producer's last batch is not recognised as a retry"
    assert replays(caplog) == [], "the restart replayed WAL entries"
    assert wal_objects(settings) == [marker], "a retry answered as a duplicate writes nothing"

    async def write_on() -> list[WalObject]:
        engine = await open_engine(settings)
        await engine.append(engine.partitions[("t", 0)], batch(50, 10, b"5")).durable
        written = await listed_wal_objects(settings)
        await engine.close()
        await engine.metadata.close()
        return written

    # The next incarnation writes on from the marker's end; its stop leaves a marker.
    old, new = asyncio.run(write_on())
    assert old == marker and new.start == marker.end and new.incarnation > marker.incarnation
    [again] = wal_objects(settings)
    assert is_marker(again) and again.end == new.end and again.incarnation == new.incarnation


def test_a_stop_cut_short_keeps_the_objects_and_the_next_start_loses_nothing(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path, shutdown_timeout_ms=0)
    asyncio.run(write_and_stop(settings))
    left = wal_objects(settings)
    assert left and not any(is_marker(o) for o in left)
    assert sum(o.end - o.start for o in left) > 50_000
    offsets, retry = asyncio.run(read_after_restart(settings_for(tmp_path, 10_000)))
    assert offsets == [0, 10, 20, 30, 40] and retry == 40


@pytest.mark.parametrize("halt_at", ["put", "delete"])
def test_a_crash_while_the_stop_empties_the_wal_loses_and_duplicates_nothing(
    tmp_path: Path, halt_at: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="contextplane.storage")
    check_a_crash_while_emptying(settings_for(tmp_path, 10_000), halt_at, caplog)


def check_a_crash_while_emptying(
    settings: Settings, halt_at: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def die_while_stopping() -> None:
        store = HaltingStore(open_object_store(settings.wal_url, 10_000), halt_at)
        engine = await open_engine(settings, ObjectWal(store, settings.node_id))  # type: ignore[arg-type]
        await write_five_batches(engine)
        stopping = asyncio.create_task(engine.close())
        halted = asyncio.create_task(store.halted.wait())
        await asyncio.wait([stopping, halted], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert store.halted.is_set() and not stopping.done()
        stopping.cancel()  # the process dies here: nothing after runs
        await asyncio.gather(stopping, return_exceptions=True)
        await engine.metadata.close()

    asyncio.run(die_while_stopping())
    left = wal_objects(settings)
    assert any(is_marker(o) for o in left)
    if halt_at == "delete":
        assert 1 < len(left) < 6, "the deletion was not partial"
    offsets, retry = asyncio.run(read_after_restart(settings))
    assert offsets == [0, 10, 20, 30, 40] and retry == 40
    assert replays(caplog) == [], "the restart replayed WAL entries"
    [marker] = wal_objects(settings)  # the leftovers went at the restart or its stop
    assert is_marker(marker)


def test_an_append_while_the_marker_is_put_is_kept_after_it() -> None:
    """A late append (a connection still open at the stop) is PUT after the marker, so
    it supersedes the marker instead of being superseded by it."""

    async def run() -> None:
        bucket = ObjectBucket()
        store = GatedStore(bucket)
        wal = await opened(store)
        _, durable = wal.append(1, 0, b"a")
        await turn()
        store.finish(0)
        await durable
        emptying = asyncio.create_task(wal.empty(wal.end_position))
        await turn()
        assert len(store.started) == 2, "the marker's PUT did not start"
        _, late = wal.append(1, 1, b"late")
        await turn()
        store.finish(2)  # the late PUT returns first
        store.finish(1)
        assert await emptying == 1 and (await late) is None
        assert [e.batch for e in await recovered(bucket)] == [b"late"]

    asyncio.run(run())
