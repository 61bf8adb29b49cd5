"""The registry's HTTP server on a real socket (uvicorn, in-memory store) under a hostile
client: trickled headers and bodies, idle connections, bodies without a length. Each
must cost the server a bounded time and leave it serving everyone else."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

import pytest

from contextplane.services.bound_socket import bind
from contextplane.services.http_server import serve
from contextplane.services.schema_registry import http_io
from contextplane.services.schema_registry.app import build_app
from contextplane.services.schema_registry.registry import SchemaRegistry
from contextplane.services.schema_registry.store import MemoryStore

DEADLINE_S = 0.5
# How long a test waits for the server to act on a deadline: generous, as a loaded
# machine may be slow; a server without the deadline never acts at all.
WAIT_S = 20.0

Connect = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


def run(test: Callable[[Connect, MemoryStore], Awaitable[None]]) -> None:
    async def main() -> None:
        store = MemoryStore()
        registry = SchemaRegistry(store)
        await registry.start()
        sock = bind("127.0.0.1", 0)
        port = sock.getsockname()[1]
        stop = asyncio.Event()
        serving = asyncio.create_task(
            serve(build_app(registry), sock, stop, request_head_s=DEADLINE_S)
        )

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection("127.0.0.1", port)

        try:
            await test(connect, store)
        finally:
            stop.set()
            await serving
            sock.close()

    asyncio.run(main())


async def request(connect: Connect, raw: bytes) -> tuple[int, bytes]:
    """One request on a connection of its own: (status, body). The answer is read while
    the request is still being written: the server may refuse a body before its end."""
    reader, writer = await connect()
    received = bytearray()

    async def read() -> None:
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                received.extend(chunk)

    reading = asyncio.create_task(read())
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        writer.write(raw)
        await writer.drain()
    await asyncio.wait_for(reading, WAIT_S)  # the server closes after its answer
    writer.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def post(path: str, body: bytes, *, chunked: bool = False) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    head += "Content-Type: application/vnd.schemaregistry.v1+json\r\n"
    if chunked:
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536])
            for i in range(0, len(body), 65536)
        )
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


REGISTER = json.dumps({"schema": '"int"'}).encode()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (whatever it answered before)."""
    try:
        await asyncio.wait_for(reader.read(), WAIT_S)
    except TimeoutError:
        return False
    return reader.at_eof()


def test_a_trickled_request_head_is_cut_off_and_others_are_served() -> None:
    async def test(connect: Connect, store: MemoryStore) -> None:
        idle_reader, idle_writer = await connect()  # sends nothing at all
        reader, writer = await connect()

        async def trickle() -> None:
            for byte in b"GET /subjects HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000:
                writer.write(bytes([byte]))
                await asyncio.sleep(DEADLINE_S / 10)

        trickling = asyncio.create_task(trickle())
        try:
            assert await closed_by_server(reader)
            assert await closed_by_server(idle_reader)
        finally:
            trickling.cancel()
            writer.close()
            idle_writer.close()
        assert await request(connect, b"GET /subjects HTTP/1.1\r\nHost: x\r\n\r\n") == (200, b"[]")

    run(test)


def test_a_keep_alive_connection_has_the_deadline_again_after_each_answer() -> None:
    async def test(connect: Connect, store: MemoryStore) -> None:
        reader, writer = await connect()
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
        assert head.startswith(b"HTTP/1.1 200")
        writer.write(b"GET / HTTP/1.1\r\n")  # the next head, never finished
        assert await closed_by_server(reader)
        writer.close()

    run(test)


def test_a_stalled_body_is_answered_408_and_nothing_is_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_io, "BODY_READ_S", DEADLINE_S)

    async def test(connect: Connect, store: MemoryStore) -> None:
        reader, writer = await connect()
        raw = post("/subjects/s/versions", REGISTER)
        # The head and half the body, then nothing: the client holds the rest back.
        # (Trickling it instead would have the server's close reset the connection
        # over bytes still unread, and the answer lost on the way.)
        writer.write(raw[: raw.index(b"\r\n\r\n") + 4 + len(REGISTER) // 2])
        try:
            answer = await asyncio.wait_for(reader.read(), WAIT_S)
        finally:
            writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408")
        assert json.loads(body)["error_code"] == 408
        assert store.log == []

    run(test)


def test_hostile_bodies_are_refused_and_nothing_is_stored() -> None:
    async def test(connect: Connect, store: MemoryStore) -> None:
        big = json.dumps({"schema": '"int"', "pad": "x" * http_io.BODY_BYTES_MAX}).encode()
        cases = [
            (post("/subjects/s/versions", big, chunked=True), 413),  # no Content-Length
            (post("/subjects/s/versions", big), 413),
            (post("/subjects/s/versions", b"[" * 200_000), 400),  # nested past the parser
            (post("/subjects/s/versions", b'{"schema": "\xff\xfe"}'), 400),  # not UTF-8
            (post("/subjects/s/versions", b'{"schema": 1e999}'), 422),
            (post("/subjects/s%00/versions", REGISTER), 422),  # a NUL, percent-encoded
            (post("/subjects/s%0A/versions", REGISTER), 422),
        ]
        for raw, status in cases:
            assert (await request(connect, raw))[0] == status, raw[:60]
        assert store.log == []
        # A duplicate key: the last one wins, as in Jackson (Confluent's parser).
        twice = b'{"schema": "{not json", "schema": "\\"int\\""}'
        assert await request(connect, post("/subjects/s/versions", twice)) == (200, b'{"id":1}')
        assert await request(connect, post("/subjects/s/versions", REGISTER, chunked=True)) == (
            200,
            b'{"id":1}',
        )

    run(test)


def test_an_encoded_slash_is_part_of_the_subject_as_in_confluent() -> None:
    """Clients URL-encode the subject; `a%2Fb` is the subject `a/b`, not a path of two
    segments (a 404), and `..` segments name subjects, not parent paths."""

    async def test(connect: Connect, store: MemoryStore) -> None:
        for path in ("/subjects/a%2Fb/versions", "/subjects/..%2F..%2Fconfig/versions"):
            assert await request(connect, post(path, REGISTER)) == (200, b'{"id":1}')
        get = b"GET /subjects/a%2Fb/versions/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        status, body = await request(connect, get)
        assert (status, json.loads(body)["subject"]) == (200, "a/b")
        listing = b"GET /subjects HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        status, body = await request(connect, listing)
        assert json.loads(body) == ["../../config", "a/b"]

    run(test)
