"""Large responses written to the socket by worker threads instead of the event loop.

A catch-up Fetch's response is megabytes of record bytes the broker already holds. Written
by the event loop, every 1 MiB slice is a loop turn (a `writelines` and uvloop's sends)
that the live path's requests wait behind, or that waits for them (the loop governor).
Here a worker thread writes the response instead, straight to the connection's socket
with `os.writev` (the GIL released while the kernel copies), waiting for room with
`poll` (released too). The loop hands the response over and awaits the end.

Safe because a connection has one writer (`server.KafkaConnection._write_responses`,
responses in request order): a response goes to a thread only once the transport holds
no bytes of its own, and the writer awaits the thread before the next response. Reads go
on meanwhile on the loop (a socket is full-duplex). The thread writes to a duplicate of
the socket's descriptor, closed when it is done, so a connection the loop closes
meanwhile cannot hand its descriptor number to a new connection under the thread's feet;
the connection's stop flag ends the write. A client that leaves its socket full for
STALL_MS gets the rest of the response from the loop's path. Only for plaintext sockets: a TLS
connection's bytes are encrypted by the loop's transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from contextplane.broker.held_responses import Part
from contextplane.clock import SystemClock

# A large response goes to a thread once the transport has sent what it holds: looked
# at this often, for at most this many looks (then the loop writes it).
_DRAIN_POLL_S = 0.001
_DRAIN_POLLS = 50
# os.writev takes at most this many buffers (Linux's IOV_MAX).
_IOV_MAX = 1024
# How long one poll for room waits before looking at the stop flag again.
_POLL_MS = 100
# A client that leaves the socket full this long gets the rest of its response from the
# loop's path (paced by its reading, bounded by connections.max.idle.ms), so clients
# that do not read cannot hold the threads that the others' catch-up needs.
STALL_MS = 50
_CLOCK = SystemClock()  # a thread's own wait for its client: real time


def plaintext_fd(transport: asyncio.BaseTransport, security_protocol: str) -> int | None:
    """The descriptor of a plaintext connection's socket; None for TLS (the transport
    encrypts) or a transport without one."""
    if security_protocol not in ("PLAINTEXT", "SASL_PLAINTEXT"):
        return None
    sock = transport.get_extra_info("socket")
    return None if sock is None else int(sock.fileno())


async def drained(transport: asyncio.Transport | None) -> bool:
    """Whether the transport holds no bytes, once it has sent what it held (False if it
    still holds some after _DRAIN_POLLS looks, or is closing): only then may another
    writer use its socket without reordering the stream."""
    for _ in range(_DRAIN_POLLS):
        if transport is None or transport.is_closing():
            return False
        if not transport.get_write_buffer_size():
            return True
        await asyncio.sleep(_DRAIN_POLL_S)
    return False


class SendStopped(Exception):
    """The connection was closed while a thread wrote to it."""


class BulkSender:
    """A pool of threads that write responses to sockets."""

    def __init__(self, threads: int, stall_ms: int = STALL_MS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bulk-send")
        self._stall_ms = stall_ms
        self.responses = 0  # responses handed over (tests, probes)
        self.bytes = 0  # of them, the bytes the threads wrote

    async def send(self, fd: int, parts: Sequence[Part], stop: threading.Event) -> int:
        """Write `parts` to socket `fd` in order; the bytes written: all of them, or fewer
        when the socket had no room for `stall_ms` (the caller writes the rest). Raises
        OSError when the socket fails, SendStopped when `stop` is set."""
        loop = asyncio.get_running_loop()
        own = os.dup(fd)
        try:
            written = await loop.run_in_executor(
                self._pool, write_some, own, parts, stop, self._stall_ms
            )
        except asyncio.CancelledError:
            stop.set()  # the thread still holds `own`: it is closed (below) once it stops
            raise
        finally:
            if not stop.is_set():
                os.close(own)
            else:
                # The thread may still be writing: closing now could give the number to
                # another socket while it does. It ends within _POLL_MS of `stop`.
                loop.call_later(1.0, _close_quietly, own)
        self.responses += 1
        self.bytes += written
        return written

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def write_some(fd: int, parts: Sequence[Part], stop: threading.Event, stall_ms: int) -> int:
    """`parts` written to the non-blocking socket `fd` in order until done, or until the
    socket has had no room for `stall_ms`; the bytes written (see `BulkSender.send`)."""
    views = [memoryview(part).cast("B") for part in parts if len(part)]
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    written = 0
    first = 0
    last_progress = _CLOCK.monotonic_ms()
    while first < len(views):
        if stop.is_set():
            raise SendStopped("the connection was closed")
        try:
            sent = os.writev(fd, views[first : first + _IOV_MAX])
        except BlockingIOError:
            sent = 0
        if sent == 0:
            waited = _CLOCK.monotonic_ms() - last_progress
            if waited >= stall_ms:
                return written
            poller.poll(min(_POLL_MS, stall_ms - waited))
            continue
        last_progress = _CLOCK.monotonic_ms()
        written += sent
        while sent:
            view = views[first]
            if sent >= len(view):
                sent -= len(view)
                first += 1
            else:
                views[first] = view[sent:]
                sent = 0
    return written


def parts_after(parts: Sequence[Part], skipped: int) -> list[Part]:
    """What of `parts` follows their first `skipped` bytes (views, no copies)."""
    rest: list[Part] = []
    for part in parts:
        if skipped >= len(part):
            skipped -= len(part)
            continue
        rest.append(memoryview(part)[skipped:] if skipped else part)
        skipped = 0
    return rest
