"""The services' HTTP server (services/http_server.py, uvicorn on a real socket) against
clients that ask for a large answer and then read nothing: the connection is dropped
with the answer it held once its writing has stalled for the deadline, while a client
that reads slowly, with pauses shorter than the deadline, receives every byte."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contextplane.services.bound_socket import bind
from contextplane.services.http_server import serve

BODY = b"x" * (16 * 1024 * 1024)  # far more than the sockets' buffers hold
STALL_S = 1.0
# How long a test waits for the server to act: generous on a loaded machine; a server
# without the deadline never acts at all.
ACTS_WITHIN_S = 15.0


def run(client: Callable[[int], Awaitable[None]]) -> None:
    async def large(request: Request) -> Response:
        return Response(BODY, media_type="application/octet-stream")

    async def main() -> None:
        app = Starlette(routes=[Route("/large", large)])
        sock = bind("127.0.0.1", 0)
        port = sock.getsockname()[1]
        stop = asyncio.Event()
        server = asyncio.create_task(serve(app, sock, stop, write_stall_s=STALL_S))
        try:
            await client(port)
        finally:
            stop.set()
            await server

    asyncio.run(main())


def ask_for_large(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=ACTS_WITHIN_S)
    sock.sendall(b"GET /large HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def read(sock: socket.socket, pause_s: float = 0.0) -> tuple[int, str]:
    """Bytes read, and how the reading ended: "whole" (the head and BODY's length),
    "closed" or "reset" by the server first."""
    received = 0
    try:
        while received < len(BODY):
            chunk = sock.recv(256 * 1024)
            if not chunk:
                return received, "closed"
            received += len(chunk)
            if pause_s:
                time.sleep(pause_s)
    except ConnectionResetError:
        return received, "reset"
    return received, "whole"


def test_a_client_that_reads_nothing_is_dropped_with_its_answer() -> None:
    async def client(port: int) -> None:
        sock = ask_for_large(port)
        try:
            await asyncio.sleep(STALL_S + 2.0)  # reads nothing meanwhile
            received, ended = await asyncio.to_thread(read, sock)
        finally:
            sock.close()
        # What the sockets buffered before the stall reaches the client, the rest never.
        assert ended in ("closed", "reset")
        assert received < len(BODY) // 2, f"{received:,} of {len(BODY):,} bytes"

    run(client)


def test_a_client_that_reads_slowly_receives_everything() -> None:
    async def client(port: int) -> None:
        sock = ask_for_large(port)
        try:
            # Reads of 256 KiB at most, 0.05 s apart: seconds in all, each pause under the stall.
            received, ended = await asyncio.to_thread(read, sock, 0.05)
        finally:
            sock.close()
        assert ended == "whole", f"{ended} after {received:,} bytes"

    run(client)
