"""Write-ahead log: an append is acknowledged once it is fdatasync'd, with group commit.

Appends queue in memory; one writer at a time takes the whole queue, writes it with one
`writev` and one `fdatasync` in a worker thread, then resolves every waiter. While a sync
is in flight new appends accumulate, so N concurrent producers share one sync.

Entry layout: [u32 payload length][u32 crc32c(payload)][payload], payload =
[i64 stream_id][i64 base_offset][record batch bytes]. Segments are files named by the
global WAL position of their first byte. Recovery reads entries from the trim position
and stops at the first incomplete or corrupt entry (a torn write after a crash), then
truncates the segment there: everything before it was acknowledged, nothing after was.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import crc32c

_ENTRY_HEADER = struct.Struct(">II")
_PAYLOAD_HEADER = struct.Struct(">qq")
_SEGMENT_SUFFIX = ".wal"


@dataclass(slots=True)
class WalEntry:
    position: int  # WAL position of the entry's first byte
    end_position: int
    stream_id: int
    base_offset: int
    batch: bytes


class WriteAheadLog:
    def __init__(self, directory: Path, segment_bytes: int, fsync: bool = True) -> None:
        self._directory = directory
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)
        self._pending: list[bytes] = []
        self._pending_waiters: list[asyncio.Future[None]] = []
        self._flushing = False
        self._fd = -1
        self._segment_base = 0
        self._end_position = 0
        self.syncs = 0
        self.failed: BaseException | None = None

    # -- recovery ----------------------------------------------------------------------

    def segments(self) -> list[int]:
        return sorted(
            int(p.name.removesuffix(_SEGMENT_SUFFIX))
            for p in self._directory.glob("*" + _SEGMENT_SUFFIX)
        )

    def _segment_path(self, base: int) -> Path:
        return self._directory / f"{base:020d}{_SEGMENT_SUFFIX}"

    def recover(self) -> Iterator[WalEntry]:
        """Yield every intact entry, truncate a torn tail, and open the log for appends."""
        bases = self.segments()
        end = bases[0] if bases else 0
        for index, base in enumerate(bases):
            path = self._segment_path(base)
            data = path.read_bytes()
            valid = 0
            for entry in _parse_segment(data, base):
                valid = entry.end_position - base
                yield entry
            end = base + valid
            if valid < len(data):
                # A torn write: nothing past here was acknowledged. Later segments cannot
                # exist after a tear (the writer only rolls after a successful sync).
                with open(path, "r+b") as handle:
                    handle.truncate(valid)
                    os.fsync(handle.fileno())
                for later in bases[index + 1 :]:
                    self._segment_path(later).unlink()
                break
        self._open_segment_for_append(end, bases)

    def _open_segment_for_append(self, end: int, bases: list[int]) -> None:
        live = [b for b in bases if b <= end and self._segment_path(b).exists()]
        if live and end - live[-1] < self._segment_bytes:
            self._segment_base = live[-1]
        else:
            self._segment_base = end
        path = self._segment_path(self._segment_base)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._end_position = end
        _fsync_directory(self._directory)

    # -- appends -----------------------------------------------------------------------

    @property
    def end_position(self) -> int:
        """Position after the last appended (not necessarily durable) entry."""
        return self._end_position + sum(len(e) for e in self._pending)

    def append(
        self, stream_id: int, base_offset: int, batch: bytes
    ) -> tuple[int, asyncio.Future[None]]:
        """Queue one entry; returns its WAL position and a future resolved when durable."""
        if self.failed is not None:
            raise OSError(f"write-ahead log failed earlier: {self.failed}")
        payload_header = _PAYLOAD_HEADER.pack(stream_id, base_offset)
        checksum = crc32c.crc32c(batch, crc32c.crc32c(payload_header))
        entry = (
            _ENTRY_HEADER.pack(len(payload_header) + len(batch), checksum) + payload_header + batch
        )
        position = self.end_position
        self._pending.append(entry)
        waiter = asyncio.get_running_loop().create_future()
        self._pending_waiters.append(waiter)
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush_loop())
        return position, waiter

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                entries, waiters = self._pending, self._pending_waiters
                self._pending, self._pending_waiters = [], []
                try:
                    await loop.run_in_executor(None, self._write_and_sync, entries)
                except BaseException as exc:  # disk full, I/O error: fail loudly, ack nothing
                    self.failed = exc
                    for waiter in waiters + self._pending_waiters:
                        if not waiter.done():
                            waiter.set_exception(OSError(f"write-ahead log failed: {exc}"))
                    self._pending, self._pending_waiters = [], []
                    return
                self._end_position += sum(len(e) for e in entries)
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
                if self._end_position - self._segment_base >= self._segment_bytes:
                    self._roll()
        finally:
            self._flushing = False

    def _write_and_sync(self, entries: list[bytes]) -> None:
        data = memoryview(b"".join(entries))
        while data:
            written = os.write(self._fd, data)
            data = data[written:]
        if self._fsync:
            os.fdatasync(self._fd)
        self.syncs += 1

    def _roll(self) -> None:
        os.close(self._fd)
        self._segment_base = self._end_position
        self._fd = os.open(
            self._segment_path(self._segment_base), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        _fsync_directory(self._directory)

    # -- trimming ----------------------------------------------------------------------

    def trim(self, position: int) -> int:
        """Delete segments wholly before `position` (all their data is in objects)."""
        bases = self.segments()
        removed = 0
        for base, next_base in zip(bases, bases[1:], strict=False):
            if next_base <= position and base != self._segment_base:
                self._segment_path(base).unlink()
                removed += 1
        return removed

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _parse_segment(data: bytes, base: int) -> Iterator[WalEntry]:
    position = 0
    view = memoryview(data)
    while position + _ENTRY_HEADER.size <= len(data):
        length, checksum = _ENTRY_HEADER.unpack_from(data, position)
        start = position + _ENTRY_HEADER.size
        if length < _PAYLOAD_HEADER.size or start + length > len(data):
            return
        payload = view[start : start + length]
        if crc32c.crc32c(payload) != checksum:
            return
        stream_id, base_offset = _PAYLOAD_HEADER.unpack_from(payload, 0)
        yield WalEntry(
            base + position,
            base + start + length,
            stream_id,
            base_offset,
            bytes(payload[_PAYLOAD_HEADER.size :]),
        )
        position = start + length


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
