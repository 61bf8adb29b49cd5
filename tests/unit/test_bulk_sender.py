"""The bulk sender: large responses written to a socket by a worker thread."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest

from contextplane.broker.bulk_sender import BulkSender, SendStopped, parts_after, write_some


def _pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair with small buffers, the sending end non-blocking (as uvloop's)."""
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    ours.setblocking(False)
    return ours, theirs


def _read_all(sock: socket.socket, size: int, out: bytearray, pause_s: float = 0.0) -> None:
    while len(out) < size:
        chunk = sock.recv(65536)
        if not chunk:
            return
        out += chunk
        if pause_s:
            time.sleep(pause_s)


def test_parts_arrive_whole_and_in_order_past_the_socket_buffer_and_iov_max() -> None:
    ours, theirs = _pair()
    # 3,000 parts (more than one writev takes), of mixed sizes and types, ~3 MiB in all.
    parts: list[bytes | memoryview] = []
    for number in range(3000):
        data = bytes([number % 251]) * (1 + (number * 7919) % 2000)
        parts.append(memoryview(data) if number % 3 else data)
    parts.append(b"")  # an empty part is skipped, not an error
    expected = b"".join(bytes(p) for p in parts)
    received = bytearray()
    reader = threading.Thread(target=_read_all, args=(theirs, len(expected), received, 0.0005))
    reader.start()
    written = write_some(ours.fileno(), parts, threading.Event(), 5000)
    reader.join(10)
    assert written == len(expected)
    assert bytes(received) == expected
    ours.close()
    theirs.close()


def test_a_client_that_leaves_the_socket_full_gets_the_rest_from_the_caller() -> None:
    ours, theirs = _pair()
    payload = b"x" * (4 * 1024 * 1024)
    started = time.monotonic()
    written = write_some(ours.fileno(), [payload], threading.Event(), 300)
    assert 0.29 <= time.monotonic() - started < 3  # the clock counts whole milliseconds
    assert 0 < written < len(payload)  # what the socket buffers took, then the stall
    ours.close()
    theirs.close()


def test_parts_after_skips_whole_parts_and_cuts_the_first_kept() -> None:
    parts = [b"abc", b"", memoryview(b"defg"), b"hi"]
    assert [bytes(p) for p in parts_after(parts, 0)] == [b"abc", b"defg", b"hi"]
    assert [bytes(p) for p in parts_after(parts, 3)] == [b"defg", b"hi"]
    assert [bytes(p) for p in parts_after(parts, 5)] == [b"fg", b"hi"]
    assert parts_after(parts, 9) == []


def test_the_stop_flag_ends_a_write_the_client_does_not_read() -> None:
    ours, theirs = _pair()
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(SendStopped, match="closed"):
        write_some(ours.fileno(), [b"x" * (4 * 1024 * 1024)], stop, 60_000)
    assert time.monotonic() - started < 2
    ours.close()
    theirs.close()


def test_a_client_gone_is_an_os_error() -> None:
    ours, theirs = _pair()
    theirs.close()
    with pytest.raises(OSError):
        write_some(ours.fileno(), [b"x" * (1024 * 1024)], threading.Event(), 5000)
    ours.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_send_writes_through_a_duplicate_it_closes_and_leaves_the_socket_open() -> None:
    ours, theirs = _pair()
    payload = os.urandom(2 * 1024 * 1024)
    received = bytearray()
    reader = threading.Thread(target=_read_all, args=(theirs, len(payload), received))
    reader.start()
    sender = BulkSender(2)
    before = _open_fds()

    async def main() -> int:
        return await sender.send(ours.fileno(), [payload], threading.Event())

    assert asyncio.run(main()) == len(payload)
    reader.join(10)
    assert bytes(received) == payload
    assert _open_fds() == before  # the duplicate is closed
    ours.sendall(b"still open")  # the connection's own descriptor is untouched
    assert theirs.recv(64) == b"still open"
    sender.close()
    ours.close()
    theirs.close()


def test_a_cancelled_send_stops_its_thread_and_closes_the_duplicate_later() -> None:
    ours, theirs = _pair()
    sender = BulkSender(1, stall_ms=60_000)
    stop = threading.Event()
    before = _open_fds()

    async def main() -> None:
        task = asyncio.create_task(sender.send(ours.fileno(), [b"x" * (8 << 20)], stop))
        await asyncio.sleep(0.2)  # the thread is waiting for room
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert stop.is_set()
        await asyncio.sleep(1.3)  # the deferred close of the duplicate

    asyncio.run(main())
    assert _open_fds() == before
    sender.close()
    ours.close()
    theirs.close()
