"""The write-ahead log: group commit, torn-tail recovery, trimming."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contextplane.storage.file_wal import FileWal


def open_wal(path: Path, segment_bytes: int = 1 << 20) -> tuple[FileWal, list]:
    wal = FileWal(path, segment_bytes)
    entries = list(wal.recover())
    return wal, entries


def test_concurrent_appends_share_syncs(tmp_path: Path) -> None:
    async def run() -> FileWal:
        wal, _ = open_wal(tmp_path)
        futures = [wal.append(1, i, b"x" * 100)[1] for i in range(500)]
        await asyncio.gather(*futures)
        return wal

    wal = asyncio.run(run())
    assert wal.syncs < 50  # 500 appends, far fewer fdatasyncs
    wal.close()
    _, entries = open_wal(tmp_path)
    assert [e.base_offset for e in entries] == list(range(500))


def test_torn_tail_is_cut_at_the_last_whole_entry(tmp_path: Path) -> None:
    async def write() -> None:
        wal, _ = open_wal(tmp_path)
        for i in range(10):
            _, durable = wal.append(7, i, bytes([i]) * 64)
            await durable
        wal.close()

    asyncio.run(write())
    segment = sorted(tmp_path.glob("*.wal"))[-1]
    data = segment.read_bytes()
    segment.write_bytes(data[:-10])  # a crash mid-write of the last entry
    wal, entries = open_wal(tmp_path)
    assert [e.base_offset for e in entries] == list(range(9))
    assert all(e.batch == bytes([e.base_offset]) * 64 for e in entries)

    async def append_after_recovery() -> None:
        _, durable = wal.append(7, 9, b"again")
        await durable

    asyncio.run(append_after_recovery())
    wal.close()
    _, entries = open_wal(tmp_path)
    assert [e.base_offset for e in entries] == list(range(10))
    assert entries[-1].batch == b"again"


def test_corrupt_entry_stops_recovery(tmp_path: Path) -> None:
    async def write() -> None:
        wal, _ = open_wal(tmp_path)
        for i in range(5):
            await wal.append(1, i, b"payload-%d" % i)[1]
        wal.close()

    asyncio.run(write())
    segment = sorted(tmp_path.glob("*.wal"))[-1]
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF  # bit rot in the last entry: its CRC no longer matches
    segment.write_bytes(bytes(data))
    _, entries = open_wal(tmp_path)
    assert [e.base_offset for e in entries] == [0, 1, 2, 3]


def test_segments_roll_and_trim_removes_only_uploaded_ones(tmp_path: Path) -> None:
    async def write() -> FileWal:
        wal, _ = open_wal(tmp_path, segment_bytes=1000)
        for i in range(40):
            await wal.append(1, i, b"z" * 100)[1]
        return wal

    wal = asyncio.run(write())
    segments = sorted(tmp_path.glob("*.wal"))
    assert len(segments) > 3
    second_base = int(segments[2].name.removesuffix(".wal"))
    wal.trim(second_base)
    assert sorted(tmp_path.glob("*.wal")) == segments[2:]
    wal.close()
    _, entries = open_wal(tmp_path)
    assert entries[0].position == second_base
    assert [e.base_offset for e in entries] == list(range(entries[0].base_offset, 40))


def test_a_log_used_from_a_new_event_loop_acknowledges_on_that_loop(tmp_path: Path) -> None:
    """The log looks its loop up once, not per append: a later loop (a restart of the
    loop, a test's second asyncio.run) gets its futures and group commits all the same."""
    wal, _ = open_wal(tmp_path)

    async def append(first: int) -> None:
        durables = [wal.append(3, first + i, b"y" * 50)[1] for i in range(20)]
        assert all(d.get_loop() is asyncio.get_running_loop() for d in durables)
        await asyncio.wait_for(asyncio.gather(*durables), 30)

    asyncio.run(append(0))
    asyncio.run(append(20))
    wal.close()
    _, entries = open_wal(tmp_path)
    assert [e.base_offset for e in entries] == list(range(40))
