"""The WAL after a failed write (disk full, I/O error): nothing of the failed appends is
acknowledged or left on disk, the owner is told at once, and the log stays usable."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from contextplane.storage.file_wal import FileOps, FileWal
from contextplane.storage.wal import WalWriteError


class FlakyDisk(FileOps):
    """Real file operations, except that writes can be made to fail like a full disk:
    part of the data lands, then ENOSPC (as a real short write followed by ENOSPC)."""

    def __init__(self) -> None:
        self.full = False
        self.fail_sync = False

    def write(self, fd: int, data: memoryview) -> int:
        if self.full:
            if len(data) > 10:
                return os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(fd, data)

    def sync(self, fd: int) -> None:
        if self.fail_sync:
            raise OSError(errno.EIO, "Input/output error")
        super().sync(fd)


def test_failed_write_fails_every_pending_append_and_the_log_recovers(tmp_path: Path) -> None:
    disk = FlakyDisk()
    failures: list[int] = []

    async def run() -> None:
        wal = FileWal(tmp_path, 1 << 20, files=disk)
        wal.on_failure = lambda position, exc: failures.append(position)
        list(wal.recover())
        for i in range(3):
            await wal.append(1, i, b"good-%d" % i)[1]
        durable_end = wal.end_position
        disk.full = True
        doomed = [wal.append(1, 3 + i, b"x" * 100)[1] for i in range(5)]
        results = await asyncio.gather(*doomed, return_exceptions=True)
        assert all(isinstance(r, WalWriteError) for r in results), results
        assert failures == [durable_end]
        assert wal.end_position == durable_end  # the failed entries' positions are reused
        segment = sorted(tmp_path.glob("*.wal"))[-1]
        assert segment.stat().st_size == durable_end  # the half-written bytes are gone
        disk.full = False  # space came back: no restart needed
        position, durable = wal.append(1, 3, b"again")
        await durable
        assert position == durable_end
        wal.close()

    asyncio.run(run())
    wal = FileWal(tmp_path, 1 << 20)
    entries = list(wal.recover())
    assert [(e.base_offset, e.batch) for e in entries] == [
        (0, b"good-0"),
        (1, b"good-1"),
        (2, b"good-2"),
        (3, b"again"),
    ]


def test_failed_sync_is_cut_back_too(tmp_path: Path) -> None:
    """An fdatasync error (EIO) may have lost the written pages: the entries are failed
    and cut, and written again by the next append rather than trusted."""
    disk = FlakyDisk()

    async def run() -> None:
        wal = FileWal(tmp_path, 1 << 20, files=disk)
        list(wal.recover())
        await wal.append(1, 0, b"kept")[1]
        disk.fail_sync = True
        with pytest.raises(WalWriteError):
            await wal.append(1, 1, b"lost")[1]
        disk.fail_sync = False
        await wal.append(1, 1, b"written")[1]
        wal.close()

    asyncio.run(run())
    entries = list(FileWal(tmp_path, 1 << 20).recover())
    assert [e.batch for e in entries] == [b"kept", b"written"]


def test_read_back_by_position_across_segments(tmp_path: Path) -> None:
    from contextplane.storage.file_wal import BATCH_OFFSET_IN_ENTRY, read_spans

    async def run() -> None:
        wal = FileWal(tmp_path, 300)
        list(wal.recover())
        positions = []
        for i in range(20):
            position, durable = wal.append(1, i, bytes([i]) * 50)
            await durable
            positions.append(position)
        assert len(list(tmp_path.glob("*.wal"))) > 3
        spans = [
            wal.open_span(p + BATCH_OFFSET_IN_ENTRY, p + BATCH_OFFSET_IN_ENTRY + 50)
            for p in positions
        ]
        assert read_spans(spans) == [bytes([i]) * 50 for i in range(20)]
        # A span crossing a segment boundary comes back whole.
        whole = read_spans([wal.open_span(positions[0], wal.end_position)])[0]
        assert len(whole) == wal.end_position - positions[0]
        wal.close()

    asyncio.run(run())


def test_recovery_reads_segments_in_bounded_chunks(tmp_path: Path) -> None:
    """Entries larger than the read chunk and entries straddling chunks are recovered."""

    async def write() -> None:
        wal = FileWal(tmp_path, 1 << 20)
        list(wal.recover())
        for i in range(30):
            await wal.append(2, i, bytes([i]) * (i * 7 % 150))[1]
        wal.close()

    asyncio.run(write())
    entries = list(FileWal(tmp_path, 1 << 20).recover(chunk_bytes=64))
    assert [e.batch for e in entries] == [bytes([i]) * (i * 7 % 150) for i in range(30)]


class RecordingDisk(FileOps):
    """Real writes, each cut short to half (as a real short write can be), recorded."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def write(self, fd: int, data: memoryview) -> int:
        self.asked.append(len(data))
        return os.write(fd, data[: max(1, len(data) // 2)])


def test_a_group_commit_is_written_in_pieces_not_joined_whole(tmp_path: Path) -> None:
    """A group commit of 6 MiB is never one 6 MiB copy: each write is handed at most a
    piece (or one entry larger than a piece), and short writes still land every byte."""
    from contextplane.storage.file_wal import WRITE_PIECE_BYTES

    disk = RecordingDisk()
    batches = [bytes([i]) * (300 * 1024) for i in range(20)] + [b"z" * (2 * WRITE_PIECE_BYTES)]

    async def run() -> None:
        wal = FileWal(tmp_path, 64 << 20, files=disk)
        list(wal.recover())
        # Appended without waiting: all but the first wait for one group commit.
        durable = [wal.append(3, i, batch)[1] for i, batch in enumerate(batches)]
        await asyncio.gather(*durable)
        wal.close()

    asyncio.run(run())
    assert sum(len(b) for b in batches) > 6 * WRITE_PIECE_BYTES
    assert max(disk.asked) <= 2 * WRITE_PIECE_BYTES  # the large batch itself, no more
    assert sorted(disk.asked)[-2] < WRITE_PIECE_BYTES + 300 * 1024 + 64
    entries = list(FileWal(tmp_path, 64 << 20).recover())
    assert [(e.base_offset, e.batch) for e in entries] == list(enumerate(batches))
