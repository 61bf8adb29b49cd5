"""The write-ahead log on local disk: an append is acknowledged once it is fdatasync'd,
with group commit.

Appends queue in memory; one writer at a time takes the whole queue, writes it with one
`write` and one `fdatasync` on the log's own sync thread (sync_thread.py: one wake-up per
group commit, never queued behind other work in the loop's shared executor), then
resolves every waiter. While a sync is in flight new appends accumulate, so N concurrent
producers share one sync.

Entry layout: [u32 payload length][u32 crc32c(payload)][payload], payload =
[i64 stream_id][i64 base_offset][record batch bytes]. Segments are files named by the
global WAL position of their first byte. Recovery reads entries from the trim position
and stops at the first incomplete or corrupt entry (a torn write after a crash), then
truncates the segment there: everything before it was acknowledged, nothing after was.

A failed write or sync (ENOSPC, EIO) fails every entry not yet durable, cuts the segment
back to the last durable byte and leaves the log usable: the next append simply tries
again (disk space may have come back). `on_failure` is told synchronously, before any
other append can run, so the owner can take back the offsets it handed out.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import struct
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

from contextplane.latency_histogram import LatencyHistogram
from contextplane.protocol.crc import crc32c
from contextplane.storage.admission import free_bytes
from contextplane.storage.sync_thread import SyncThread
from contextplane.storage.wal import WalEntry, WalWriteError, pages_of

log = logging.getLogger(__name__)

_ENTRY_HEADER = struct.Struct(">II")
_PAYLOAD_HEADER = struct.Struct(">qq")
_SEGMENT_SUFFIX = ".wal"
# Bytes before a record batch inside an entry (its position + this = the batch's first byte).
BATCH_OFFSET_IN_ENTRY = _ENTRY_HEADER.size + _PAYLOAD_HEADER.size
# Recovery reads segments in chunks of this size, so replay never holds a whole segment.
RECOVERY_CHUNK_BYTES = 4 * 1024 * 1024
# A group commit is written in pieces of about this size: joining all of it at once
# copied every pending byte a second time (outside the memory budget) for as long as
# the write and fdatasync took.
WRITE_PIECE_BYTES = 1024 * 1024


class FileOps:
    """The file system calls the WAL makes to write; tests inject failures here."""

    def write(self, fd: int, data: memoryview) -> int:
        return os.write(fd, data)

    def sync(self, fd: int) -> None:
        os.fdatasync(fd)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)
        os.fdatasync(fd)


class FileWal:
    """`WriteAheadLog` (wal.py) in segment files under `directory`."""

    def __init__(
        self,
        directory: Path,
        segment_bytes: int,
        fsync: bool = True,
        files: FileOps | None = None,
        on_failure: Callable[[int, BaseException], None] | None = None,
    ) -> None:
        self._directory = directory
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._files = files or FileOps()
        self.on_failure = on_failure
        directory.mkdir(parents=True, exist_ok=True)
        self._pending: list[bytes] = []  # entries' parts: head, batch, head, batch, ...
        self._pending_waiters: list[asyncio.Future[None]] = []
        self._pending_bytes = 0
        self._writing = False  # a group commit is with the sync thread
        self._in_flight: list[asyncio.Future[None]] = []
        self._in_flight_bytes = 0
        self._sync_thread = SyncThread(self._write_and_sync)
        # The loop the appends run on, looked up once: on Python 3.11 every
        # `asyncio.get_running_loop()` is a getpid() system call, twice an append.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._segment_base = 0
        self._end_position = 0  # durable end
        self._tail_dirty = False  # a failed write may have left bytes past the durable end
        self._bases: list[int] = []  # segment bases, ascending
        self.syncs = 0
        self.failures = 0
        self.last_error: BaseException | None = None

    @property
    def sync_latency(self) -> LatencyHistogram:
        """Each group commit's write and fdatasync, for /metrics."""
        return self._sync_thread.latency

    @property
    def directory(self) -> Path:
        return self._directory

    def free_bytes(self) -> int:
        return free_bytes(self._directory)

    # -- recovery ----------------------------------------------------------------------

    def segments(self) -> list[int]:
        return sorted(
            int(p.name.removesuffix(_SEGMENT_SUFFIX))
            for p in self._directory.glob("*" + _SEGMENT_SUFFIX)
        )

    def _segment_path(self, base: int) -> Path:
        return self._directory / f"{base:020d}{_SEGMENT_SUFFIX}"

    def recover(self, chunk_bytes: int = RECOVERY_CHUNK_BYTES) -> Iterator[WalEntry]:
        """Yield every intact entry, truncate a torn tail, and open the log for appends.

        Segments are read in bounded chunks: replaying a large backlog never holds more
        than one chunk (plus the entry being yielded) in memory.
        """
        bases = self.segments()
        end = bases[0] if bases else 0
        for index, base in enumerate(bases):
            path = self._segment_path(base)
            size = path.stat().st_size
            valid = 0
            for entry in _read_segment(path, base, chunk_bytes):
                valid = entry.end_position - base
                yield entry
            end = base + valid
            if valid < size:
                # A torn write: nothing past here was acknowledged. Later segments cannot
                # exist after a tear (the writer only rolls after a successful sync).
                with open(path, "r+b") as handle:
                    handle.truncate(valid)
                    os.fsync(handle.fileno())
                for later in bases[index + 1 :]:
                    self._segment_path(later).unlink()
                break
        self._open_segment_for_append(end, bases)

    def recover_pages(self) -> AsyncIterator[list[WalEntry]]:
        """`recover` in pages, as the storage engine reads every WAL."""
        return pages_of(self.recover())

    def _open_segment_for_append(self, end: int, bases: list[int]) -> None:
        live = [b for b in bases if b <= end and self._segment_path(b).exists()]
        if live and end - live[-1] < self._segment_bytes:
            self._segment_base = live[-1]
        else:
            self._segment_base = end
        path = self._segment_path(self._segment_base)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._end_position = end
        self._bases = sorted({*live, self._segment_base})
        _fsync_directory(self._directory)

    # -- appends -----------------------------------------------------------------------

    @property
    def end_position(self) -> int:
        """Position after the last appended (not necessarily durable) entry."""
        return self._end_position + self._pending_bytes

    @property
    def durable_position(self) -> int:
        return self._end_position

    @property
    def start_position(self) -> int:
        """Position of the oldest byte still on disk."""
        return self._bases[0] if self._bases else self._end_position

    def append(
        self, stream_id: int, base_offset: int, batch: bytes
    ) -> tuple[int, asyncio.Future[None]]:
        """Queue one entry; returns its WAL position and a future resolved when durable."""
        # Head and batch stay two parts: the batch is the log cache's own bytes, not copied.
        head = entry_head(stream_id, base_offset, batch)
        position = self.end_position
        self._pending += (head, batch)
        self._pending_bytes += len(head) + len(batch)
        loop = self._loop
        if loop is None or not loop.is_running():  # the first append, or a new loop
            loop = self._loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._pending_waiters.append(waiter)
        if not self._writing:
            self._start_write(loop)
        return position, waiter

    def _start_write(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand everything queued to the sync thread as one group commit; `done` comes
        back on `loop`."""
        entries, waiters = self._pending, self._pending_waiters
        self._pending, self._pending_waiters = [], []
        self._in_flight = waiters
        self._in_flight_bytes = self._pending_bytes  # nothing is in flight: all queued
        self._writing = True
        self._sync_thread.submit(entries, loop, self._written)

    def _written(self, error: Exception | None) -> None:
        """On the loop, once the sync thread has written (or failed) a group commit."""
        waiters, self._in_flight = self._in_flight, []
        self._writing = False
        if error is not None:  # disk full, I/O error: ack nothing, stay usable
            self._fail_pending(waiters, error)
            return
        self._pending_bytes -= self._in_flight_bytes
        self._end_position += self._in_flight_bytes
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._end_position - self._segment_base >= self._segment_bytes:
            self.roll()
        if self._pending:
            assert self._loop is not None  # `_written` runs on it: submit was given it
            self._start_write(self._loop)

    def _fail_pending(self, waiters: list[asyncio.Future[None]], exc: BaseException) -> None:
        """Fail every entry past the durable end: those being written and those queued
        behind them (their positions and offsets assumed the failed ones)."""
        self.failures += 1
        self.last_error = exc
        waiters = waiters + self._pending_waiters
        self._pending, self._pending_waiters, self._pending_bytes = [], [], 0
        log.warning("write-ahead log write failed (%s); %d appends failed", exc, len(waiters))
        if self.on_failure is not None:
            self.on_failure(self._end_position, exc)
        error = WalWriteError(f"write-ahead log write failed: {exc}")
        error.errno = exc.errno if isinstance(exc, OSError) else None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()  # retrieved: a caller that gave up must not log it

    def _write_and_sync(self, parts: list[bytes]) -> None:
        if self._tail_dirty:
            self._cut_tail()
        self._tail_dirty = True
        try:
            for piece in _pieces(parts, WRITE_PIECE_BYTES):
                data = memoryview(piece)
                while data:
                    written = self._files.write(self._fd, data)
                    data = data[written:]
            if self._fsync:
                self._files.sync(self._fd)
        except OSError:
            self._cut_tail_quietly()
            raise
        self._tail_dirty = False
        self.syncs += 1

    def _cut_tail(self) -> None:
        """Drop whatever a failed write left past the durable end of the active segment."""
        self._files.truncate(self._fd, self._end_position - self._segment_base)
        self._tail_dirty = False

    def _cut_tail_quietly(self) -> None:
        try:
            self._cut_tail()
        except OSError as exc:  # retried before the next write
            log.warning("write-ahead log: cannot cut a failed write yet: %s", exc)

    def roll(self) -> None:
        """Start a new segment at the durable end (never while a write is in flight; queued
        entries simply go to the new segment).

        Failing to create the file (no inode, EIO) keeps the current segment; the next
        roll tries again.
        """
        if self._writing or self._tail_dirty:
            return
        if self._end_position == self._segment_base:
            return  # the active segment is empty
        path = self._segment_path(self._end_position)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            _fsync_directory(self._directory)
        except OSError as exc:
            log.warning("write-ahead log: cannot roll to a new segment yet: %s", exc)
            return
        os.close(self._fd)
        self._fd = fd
        self._segment_base = self._end_position
        self._bases.append(self._segment_base)

    # -- reads -------------------------------------------------------------------------

    def open_span(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """Open the segments holding WAL bytes [start, end) (durable ones only).

        Returns (fd, file offset, length) pieces to pass to `read_spans`, which may run
        in a worker thread: the files are opened now, on the caller's thread, so a trim
        that deletes a segment meanwhile cannot take the bytes away.
        """
        if start < self.start_position or end > self._end_position:
            raise WalWriteError(f"WAL span [{start}, {end}) is not on disk")
        pieces = []
        index = bisect.bisect_right(self._bases, start) - 1
        position = start
        try:
            while position < end:
                base = self._bases[index]
                limit = self._bases[index + 1] if index + 1 < len(self._bases) else end
                length = min(end, limit) - position
                fd = os.open(self._segment_path(base), os.O_RDONLY)
                pieces.append((fd, position - base, length))
                position += length
                index += 1
        except BaseException:
            close_pieces(pieces)
            raise
        return pieces

    def open_batches(self, batches: Sequence[tuple[int, int]]) -> _FileRead:
        """Open the segments holding each (entry position, batch size) batch; the bytes
        are read by `_FileRead.read` in a worker thread."""
        spans: list[list[tuple[int, int, int]]] = []
        try:
            for position, size in batches:
                start = position + BATCH_OFFSET_IN_ENTRY
                spans.append(self.open_span(start, start + size))
        except BaseException:
            for span in spans:
                close_pieces(span)
            raise
        return _FileRead(spans)

    # -- trimming ----------------------------------------------------------------------

    def trim(self, position: int, reclaim_active: bool = False) -> int:
        """Delete segments wholly before `position` (all their data is in objects).

        With `reclaim_active` (disk full) and everything durable uploaded, the active
        segment is rolled first so that its space can be given back too.
        """
        if reclaim_active and position >= self._end_position:
            self.roll()
        removed = 0
        bases = self.segments()
        for base, next_base in zip(bases, bases[1:], strict=False):
            if next_base <= position and base != self._segment_base:
                self._segment_path(base).unlink()
                removed += 1
        self._bases = [b for b in self._bases if self._segment_path(b).exists()]
        return removed

    def close(self) -> None:
        self._sync_thread.stop()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _FileRead:
    """Segments opened by `FileWal.open_batches`, read (and closed) in a worker thread."""

    def __init__(self, spans: list[list[tuple[int, int, int]]]) -> None:
        self._spans = spans

    async def read(self) -> list[bytes]:
        spans, self._spans = self._spans, []
        return await asyncio.get_running_loop().run_in_executor(None, read_spans, spans)

    def close(self) -> None:
        spans, self._spans = self._spans, []
        for span in spans:
            close_pieces(span)


def read_spans(spans: list[list[tuple[int, int, int]]]) -> list[bytes]:
    """Read what `open_span` opened, one bytes object per span, and close every file
    (blocking: run it in a worker thread)."""
    try:
        result = []
        for pieces in spans:
            parts = []
            for fd, offset, length in pieces:
                data = os.pread(fd, length, offset)
                if len(data) != length:
                    raise WalWriteError(f"short WAL read: {len(data)} of {length} bytes")
                parts.append(data)
            result.append(parts[0] if len(parts) == 1 else b"".join(parts))
        return result
    finally:
        for pieces in spans:
            close_pieces(pieces)


def close_pieces(pieces: list[tuple[int, int, int]]) -> None:
    for fd, _, _ in pieces:
        with contextlib.suppress(OSError):
            os.close(fd)


def entry_head(stream_id: int, base_offset: int, batch: bytes) -> bytes:
    """The bytes framing one entry before its record batch: [u32 payload length][u32
    crc32c(payload)][i64 stream_id][i64 base_offset]."""
    payload_header = _PAYLOAD_HEADER.pack(stream_id, base_offset)
    checksum = crc32c(batch, crc32c(payload_header))
    return _ENTRY_HEADER.pack(len(payload_header) + len(batch), checksum) + payload_header


def scan_entries(buffer: bytes, origin: int) -> tuple[list[WalEntry], int, bool]:
    """The complete, intact entries at the start of `buffer`, whose first byte is at WAL
    position `origin`: (entries, bytes they take, whether a corrupt entry stopped the
    scan). Bytes past the last entry are an incomplete one (read more) or a torn tail."""
    entries: list[WalEntry] = []
    position = 0
    view = memoryview(buffer)
    try:
        while position + _ENTRY_HEADER.size <= len(buffer):
            length, checksum = _ENTRY_HEADER.unpack_from(buffer, position)
            start = position + _ENTRY_HEADER.size
            if length < _PAYLOAD_HEADER.size:
                return entries, position, True
            if start + length > len(buffer):
                break  # incomplete here
            payload = view[start : start + length]
            if crc32c(payload) != checksum:
                return entries, position, True
            stream_id, base_offset = _PAYLOAD_HEADER.unpack_from(payload, 0)
            entries.append(
                WalEntry(
                    origin + position,
                    origin + start + length,
                    stream_id,
                    base_offset,
                    bytes(payload[_PAYLOAD_HEADER.size :]),
                )
            )
            position = start + length
    finally:
        view.release()
    return entries, position, False


def _read_segment(path: Path, base: int, chunk_bytes: int) -> Iterator[WalEntry]:
    """Intact entries of one segment, read in bounded chunks; stops at the first torn
    or corrupt entry."""
    with open(path, "rb", buffering=0) as handle:
        buffer = b""
        consumed = 0  # file offset of buffer[0]
        while True:
            chunk = handle.read(chunk_bytes)
            if chunk:
                buffer = buffer + chunk if buffer else chunk
            entries, position, corrupt = scan_entries(buffer, base + consumed)
            yield from entries
            if corrupt:
                return
            buffer = buffer[position:]
            consumed += position
            if not chunk:
                return


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pieces(parts: list[bytes], piece_bytes: int) -> Iterator[bytes]:
    """`parts` joined into consecutive pieces of about `piece_bytes` (a larger part is a
    piece of its own, written as it is)."""
    group: list[bytes] = []
    size = 0
    for part in parts:
        if len(part) >= piece_bytes:
            if group:
                yield b"".join(group)
                group, size = [], 0
            yield part
            continue
        group.append(part)
        size += len(part)
        if size >= piece_bytes:
            yield b"".join(group)
            group, size = [], 0
    if group:
        yield b"".join(group)
