"""The loop-time governor (loop_governor.py): bulk work takes its turn only once no
request waits for the loop, or after its longest wait; a large response's slices and a
catch-up read wait for it, on a real listener and sockets."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import uvloop

from contextplane.broker.connections import ConnectionQuotas, RequestMemory
from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.listener import Listener, SharedLimits
from contextplane.loop_governor import LoopGovernor
from contextplane.settings import Settings
from contextplane.storage.read_lane import ReadLane
from tests.support.bare_pipeline import bare_pipeline
from tests.support.wait import wait_until_async

API_VERSIONS = 18
LARGE = 3 * 1024 * 1024 + 5  # three slices and a bit: a catch-up Fetch's size
BLOCKING = 1  # the correlation id whose handler waits for the test


def _run(main: Any) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_a_turn_with_nothing_waiting_goes_ahead_at_once() -> None:
    async def main() -> None:
        governor = LoopGovernor()
        await governor.turn()
        assert (governor.deferred, governor.forced) == (0, 0)

    _run(main)


def test_a_turn_waits_until_the_waiting_requests_have_started() -> None:
    async def main() -> None:
        governor = LoopGovernor(poll_s=0.001, wait_max_s=3600)  # never forced here
        governor.arrived(2)
        turn = asyncio.create_task(governor.turn())
        await wait_until_async(lambda: governor.deferred == 1, 10, "the turn deferred")
        governor.started()
        for _ in range(20):  # polls go by: one request still waits
            await asyncio.sleep(0.001)
        assert not turn.done()
        governor.started()
        await asyncio.wait_for(turn, 10)
        assert (governor.waiting, governor.deferred, governor.forced) == (0, 1, 0)

    _run(main)


def test_a_turn_goes_ahead_after_its_longest_wait_so_bulk_work_is_never_starved() -> None:
    async def main() -> None:
        governor = LoopGovernor(poll_s=0.001, wait_max_s=0.003)
        governor.arrived()  # e.g. a muted connection's request: it stays waiting
        for _ in range(3):
            await governor.turn()
        assert (governor.waiting, governor.deferred, governor.forced) == (1, 3, 3)

    _run(main)


def test_started_never_counts_below_zero() -> None:
    governor = LoopGovernor()
    governor.arrived()
    governor.started(5)  # a connection lost with more than it was told of
    assert governor.waiting == 0


def test_a_catch_up_read_starts_its_work_only_at_a_turn() -> None:
    async def main() -> None:
        governor = LoopGovernor(poll_s=0.001, wait_max_s=3600)
        lane = ReadLane(2, governor)
        governor.arrived()
        entered = asyncio.Event()

        async def read() -> None:
            async with lane:
                entered.set()

        task = asyncio.create_task(read())
        await wait_until_async(lambda: governor.deferred == 1, 10, "the read deferred")
        assert not entered.is_set() and lane.busy == 1
        governor.started()
        await asyncio.wait_for(task, 10)
        assert entered.is_set() and lane.busy == 0

    _run(main)


def test_a_cancelled_read_gives_its_slot_back() -> None:
    async def main() -> None:
        governor = LoopGovernor(poll_s=0.001, wait_max_s=3600)
        lane = ReadLane(1, governor)
        governor.arrived()

        async def read() -> None:
            async with lane:
                pass

        task = asyncio.create_task(read())
        await wait_until_async(lambda: governor.deferred == 1, 10, "the read deferred")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert lane.busy == 0
        governor.started()
        await asyncio.wait_for(read(), 10)  # the one slot is free

    _run(main)


def _request(correlation_id: int) -> bytes:
    header = struct.pack(">hhih", API_VERSIONS, 0, correlation_id, 1) + b"c"
    return struct.pack(">i", len(header)) + header


async def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    """`size` bytes; a guard against a hang, not a measure: a response that never comes."""
    loop = asyncio.get_running_loop()
    received = bytearray()
    async with asyncio.timeout(30):
        while len(received) < size:
            chunk = await loop.sock_recv(sock, size - len(received))
            assert chunk, "the broker closed the connection"
            received += chunk
    return bytes(received)


async def _listener(governor: LoopGovernor, release: asyncio.Event) -> Listener:
    """A listener whose ApiVersions answers correlation id 7 with LARGE bytes, others with
    16, and BLOCKING only once `release` is set."""

    async def handler(ctx: RequestContext, request: Any) -> Reply:
        correlation_id = ctx.header.correlation_id
        if correlation_id == BLOCKING:
            await release.wait()
        size = LARGE if correlation_id == 7 else 16
        head = struct.pack(">ii", size + 4, correlation_id)
        return Reply(body=[head, bytes([correlation_id]) * size])

    pipeline = bare_pipeline(API_VERSIONS, handler)
    shared = SharedLimits(
        ConnectionQuotas(100, 100, {}), RequestMemory(1024 * 1024), governor=governor
    )
    listener = Listener(pipeline, Settings(), shared=shared)
    await listener.start("127.0.0.1", 0)
    return listener


async def _small_answers(sock: socket.socket, *correlation_ids: int) -> None:
    """The 16-byte answers to `correlation_ids`, in that order."""
    for correlation_id in correlation_ids:
        got = await _recv_exactly(sock, 8 + 16)
        assert got == struct.pack(">ii", 20, correlation_id) + bytes([correlation_id]) * 16


async def _connected(listener: Listener, *sockets: socket.socket) -> None:
    for sock in sockets:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", listener.port))


def test_a_large_response_waits_while_another_connections_request_waits() -> None:
    """Connection B's second request waits behind its first (whose handler the test holds);
    connection A's large response is not written meanwhile, and is, whole and in order,
    once B's request has started."""

    async def main() -> None:
        release = asyncio.Event()
        governor = LoopGovernor(poll_s=0.001, wait_max_s=3600)
        listener = await _listener(governor, release)
        loop = asyncio.get_running_loop()
        a, b = socket.socket(), socket.socket()
        try:
            await _connected(listener, a, b)
            await loop.sock_sendall(b, _request(BLOCKING) + _request(2))
            await wait_until_async(lambda: governor.waiting == 1, 10, "B's second request waits")
            await loop.sock_sendall(a, _request(7))
            await wait_until_async(lambda: governor.deferred >= 1, 10, "A's slice deferred")
            try:
                a.recv(1)
                raise AssertionError("a slice was written while a request waited")
            except BlockingIOError:
                pass
            release.set()
            got = await _recv_exactly(a, 8 + LARGE)
            assert got == struct.pack(">ii", LARGE + 4, 7) + bytes([7]) * LARGE
            await _small_answers(b, BLOCKING, 2)  # B's answered in order
            assert governor.waiting == 0 and governor.forced == 0
        finally:
            a.close()
            b.close()
            listener.close()

    _run(main)


def test_a_large_response_does_not_wait_for_its_own_connections_requests() -> None:
    """A client pipelines a large request, one whose handler the test holds and a third:
    the third waits behind the second on the same connection, and the large response is
    written whole meanwhile (waiting for it would wait for itself)."""

    async def main() -> None:
        release = asyncio.Event()
        governor = LoopGovernor(poll_s=0.001, wait_max_s=3600)
        listener = await _listener(governor, release)
        loop = asyncio.get_running_loop()
        a = socket.socket()
        try:
            await _connected(listener, a)
            await loop.sock_sendall(a, _request(7) + _request(BLOCKING) + _request(2))
            got = await _recv_exactly(a, 8 + LARGE)
            assert got == struct.pack(">ii", LARGE + 4, 7) + bytes([7]) * LARGE
            assert governor.waiting == 1 and governor.forced == 0
            release.set()
            await _small_answers(a, BLOCKING, 2)
        finally:
            a.close()
            listener.close()

    _run(main)


def test_a_muted_connections_requests_do_not_hold_back_bulk_work() -> None:
    """Requests read while their connection is muted for a quota wait for the throttle,
    not for the loop: not counted until the mute ends, counted again then."""

    async def main() -> None:
        release = asyncio.Event()
        governor = LoopGovernor(poll_s=0.001, wait_max_s=3600)
        listener = await _listener(governor, release)
        loop = asyncio.get_running_loop()
        b = socket.socket()
        try:
            await _connected(listener, b)
            await loop.sock_sendall(b, _request(BLOCKING) + _request(2))
            await wait_until_async(lambda: governor.waiting == 1, 10, "B's second request waits")
            (connection,) = listener.connections
            connection._mute.start(3_600_000)
            assert governor.waiting == 0
            await governor.turn()
            assert governor.deferred == 0
            connection._mute._end()  # the throttle is over
            assert governor.waiting == 1
            release.set()
            await _small_answers(b, BLOCKING, 2)
            assert governor.waiting == 0
        finally:
            b.close()
            listener.close()

    _run(main)
