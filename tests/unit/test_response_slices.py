"""A large response is written a slice at a time: a client that does not read leaves at
most about a slice past the high-water mark in the broker's transport (the rest waits,
counted as held), and one that reads gets every byte in order. On the default loop and
on uvloop, which the broker runs."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop

from contextplane.broker import server
from contextplane.broker.connections import ConnectionQuotas, RequestMemory
from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.listener import Listener, SharedLimits
from contextplane.broker.response_slices import response_slices
from contextplane.settings import Settings
from contextplane.storage.memory import MemoryBudget
from tests.support.bare_pipeline import bare_pipeline
from tests.support.wait import wait_until_async

API_VERSIONS = 18
SLICE = server._WRITE_SLICE_BYTES
# A record chunk larger than a slice, small ones, and one that straddles slices.
PAYLOAD_PARTS = [
    bytes(range(256)) * (40 * 1024 * 4),  # 40 MiB
    b"x" * 1000,
    bytes(range(255, -1, -1)) * (3 * 1024 * 4 + 7),
    b"tail",
]
PAYLOAD_BYTES = sum(map(len, PAYLOAD_PARTS))


def _joined(slices: list[list[Any]]) -> bytes:
    return b"".join(bytes(part) for piece in slices for part in piece)


@pytest.mark.parametrize(
    "sizes, slice_bytes",
    [([10], 4), ([4, 4], 4), ([1, 2, 3, 9, 0, 5], 4), ([3, 3, 3], 5), ([], 3), ([7], 100)],
)
def test_slices_keep_the_bytes_in_order_within_the_bound(
    sizes: list[int], slice_bytes: int
) -> None:
    parts = [bytes([i]) * size for i, size in enumerate(sizes)]
    slices = list(response_slices(parts, slice_bytes))
    assert _joined(slices) == b"".join(parts)
    for piece in slices:
        assert piece and all(len(part) for part in piece)
        assert sum(map(len, piece)) <= slice_bytes
    # Every slice but the last is full: as few writes as the bound allows.
    assert all(sum(map(len, piece)) == slice_bytes for piece in slices[:-1])


def test_a_part_larger_than_a_slice_is_cut_into_views_not_copies() -> None:
    part = bytes(10)
    cut = [p for piece in response_slices([part], 4) for p in piece]
    assert [len(p) for p in cut] == [4, 4, 2]
    assert all(isinstance(p, memoryview) and p.obj is part for p in cut)


def test_a_slice_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="slice_bytes"):
        list(response_slices([b"x"], 0))


def _api_versions_request(correlation_id: int) -> bytes:
    header = struct.pack(">hhih", API_VERSIONS, 0, correlation_id, 1) + b"c"
    return struct.pack(">i", len(header)) + header


async def _large_response(ctx: RequestContext, request: Any) -> Reply:
    """Pre-encoded frame parts, as the Fetch handler answers with its record chunks."""
    head = struct.pack(">ii", PAYLOAD_BYTES + 4, ctx.header.correlation_id)
    return Reply(body=[head, *(memoryview(p) for p in PAYLOAD_PARTS)])


def _run(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    scenario: Callable[[Listener, MemoryBudget], Awaitable[None]],
) -> None:
    async def main() -> None:
        budget = MemoryBudget(total_bytes=256 * 1024 * 1024, log_cache_cap_bytes=0)
        pipeline = bare_pipeline(API_VERSIONS, _large_response)
        shared = SharedLimits(
            ConnectionQuotas(100, 100, {}), RequestMemory(1024 * 1024), response_budget=budget
        )
        listener = Listener(pipeline, Settings(), shared=shared)
        await listener.start("127.0.0.1", 0)
        try:
            await scenario(listener, budget)
        finally:
            listener.close()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


LOOPS = pytest.mark.parametrize(
    "loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)


@LOOPS
def test_a_client_that_does_not_read_leaves_a_bounded_transport_buffer(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def scenario(listener: Listener, budget: MemoryBudget) -> None:
        loop = asyncio.get_running_loop()
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.setblocking(False)
        try:
            await loop.sock_connect(client, ("127.0.0.1", listener.port))
            await loop.sock_sendall(client, _api_versions_request(7))
            await wait_until_async(lambda: listener.connections, 10, "connection accepted")
            (connection,) = listener.connections
            # The writer stops once the kernel and the transport are full, the rest of
            # the response still in its hands.
            await wait_until_async(
                lambda: budget.response_bytes and not connection._writable.is_set(),
                10,
                "the writer waits for the client",
            )
            assert connection._buffered() <= 2 * SLICE
            assert budget.response_bytes > PAYLOAD_BYTES // 2  # what waits is counted
            expected = struct.pack(">ii", PAYLOAD_BYTES + 4, 7) + b"".join(PAYLOAD_PARTS)
            received = bytearray()
            while len(received) < len(expected):
                chunk = await loop.sock_recv(client, 1024 * 1024)
                assert chunk, "the broker closed the connection"
                received += chunk
                assert connection._buffered() <= 2 * SLICE
            assert received == expected
            await wait_until_async(lambda: budget.response_bytes == 0, 10, "released on drain")
        finally:
            client.close()

    _run(loop_factory, scenario)
