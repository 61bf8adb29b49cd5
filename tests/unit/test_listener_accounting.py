"""The listener's books balance: whatever clients do (pipeline, leave frames unfinished,
wait for request memory, disconnect), once they are gone no request byte and no
connection is still counted. A leak would slowly close the broker to everyone."""

from __future__ import annotations

import asyncio
import io
import struct
from typing import Any

import pytest
from kio.serial import entity_writer

from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.listener import Listener
from contextplane.protocol.build import build
from contextplane.protocol.codec import request_schema
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings
from tests.support.bare_pipeline import bare_pipeline
from tests.support.wait import wait_until_async

API_VERSIONS = 18


async def _api_versions(ctx: RequestContext, request: Any) -> Reply:
    return ctx.reply(error_code=ErrorCode.none, api_keys=[], throttle_time=0)


def _request(correlation_id: int) -> bytes:
    schema = request_schema(API_VERSIONS, 3)
    body = io.BytesIO()
    entity_writer(schema)(
        body, build(schema, client_software_name="t", client_software_version="1")
    )
    header = struct.pack(">hhih", API_VERSIONS, 3, correlation_id, 1) + b"c" + b"\x00"
    payload = header + body.getvalue()
    return struct.pack(">i", len(payload)) + payload


async def _scenario() -> None:
    settings = Settings(queued_max_request_bytes=1024 * 1024)
    pipeline = bare_pipeline(API_VERSIONS, _api_versions)
    listener = Listener(pipeline, settings)
    await listener.start("127.0.0.1", 0)
    try:
        opened = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(6)]
        readers = [r for r, _ in opened]
        writers = [w for _, w in opened]
        # Pipelined requests, all answered in order.
        writers[0].write(b"".join(_request(i) for i in range(200)))
        for i in range(200):
            size = struct.unpack(">i", await readers[0].readexactly(4))[0]
            frame = await readers[0].readexactly(size)
            assert struct.unpack_from(">i", frame)[0] == i
        # An unfinished frame takes the budget (and finishes past it on the overdraft);
        # the next ones wait for it once past their free allowance.
        writers[1].write(struct.pack(">i", 2 * 1024 * 1024) + b"\0" * 1_500_000)
        await wait_until_async(lambda: listener.memory.used >= 1_500_000, 10, "first read")
        for writer in writers[2:4]:
            writer.write(struct.pack(">i", 300_000) + b"\0" * 100_000)
        await wait_until_async(lambda: listener.memory.waiting == 2, 10, "two frames wait")
        # A small request still passes on a connection's free allowance.
        writers[4].write(_request(7))
        size = struct.unpack(">i", await readers[4].readexactly(4))[0]
        await readers[4].readexactly(size)
        # A frame that is waiting, and the frame that holds the budget, go away.
        writers[2].close()
        writers[1].close()
        await wait_until_async(lambda: listener.memory.waiting == 0, 10, "the last waiter admitted")
        assert listener.quotas.total == 4
        for writer in writers[3:]:
            writer.close()
        writers[0].close()
        await wait_until_async(lambda: not listener.connections, 10, "every connection closed")
        assert listener.memory.used == 0
        assert listener.quotas.total == 0
    finally:
        listener.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_request_memory_and_connections_are_released(loop: str) -> None:
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")  # what `contextplane up` runs on
        event_loop = uvloop.new_event_loop()
    else:
        event_loop = asyncio.new_event_loop()
    try:
        event_loop.run_until_complete(_scenario())
    finally:
        event_loop.close()
