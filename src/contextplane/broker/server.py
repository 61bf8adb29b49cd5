"""The only asyncio networking code for Kafka: one Protocol instance per connection.

Requests on a connection are handled one at a time, in order, as Kafka does. A handler
may return an awaitable instead of a response: its waiting part (a WAL sync, a long-poll
fetch, a group join) then runs while the next request is handled, and responses are
still written in request order. This keeps per-connection produce ordering while many
pipelined produce requests share one group commit.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from typing import Any

from contextplane.broker.router import Router
from contextplane.errors import ProtocolError
from contextplane.protocol.codec import (
    FrameBuffer,
    UnsupportedVersion,
    decode_request,
    encode_response,
)

log = logging.getLogger(__name__)

# Bytes of queued responses after which the connection stops reading (back-pressure).
_WRITE_HIGH_WATER_BYTES = 8 * 1024 * 1024


class KafkaConnection(asyncio.Protocol):
    def __init__(self, router: Router, frame_bytes_max: int) -> None:
        self._router = router
        self._frames = FrameBuffer(frame_bytes_max)
        self._transport: asyncio.Transport | None = None
        self._peer = "?"
        self._inbox: deque[bytes] = deque()
        self._inbox_event = asyncio.Event()
        self._responses: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER_BYTES)
        self._tasks = [
            asyncio.create_task(self._handle_loop()),
            asyncio.create_task(self._write_loop()),
        ]

    def data_received(self, data: bytes) -> None:
        try:
            self._frames.receive_data(data)
            while (frame := self._frames.next_frame()) is not None:
                self._inbox.append(frame)
        except ProtocolError as exc:
            self._abort(str(exc))
            return
        self._inbox_event.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def _abort(self, reason: str) -> None:
        log.warning("closing connection from %s: %s", self._peer, reason)
        self._closed = True
        if self._transport is not None:
            self._transport.abort()

    async def _handle_loop(self) -> None:
        while not self._closed:
            if not self._inbox:
                self._inbox_event.clear()
                await self._inbox_event.wait()
                continue
            frame = self._inbox.popleft()
            try:
                request = decode_request(frame)
            except UnsupportedVersion as exc:
                response = self._router.unsupported_version(exc.header)
                if response is None:
                    self._abort(str(exc))
                    return
                await self._responses.put(response)
                continue
            except ProtocolError as exc:
                self._abort(str(exc))
                return
            header = request.header
            try:
                result = await self._router.dispatch(request, self._peer)
            except ProtocolError as exc:
                self._abort(str(exc))
                return
            except Exception:
                log.exception(
                    "api key %d v%d from %s failed", header.api_key, header.api_version, self._peer
                )
                self._abort("internal error")
                return
            if result is None:  # acks=0 produce: no response at all
                continue
            await self._responses.put((header, result))

    async def _write_loop(self) -> None:
        try:
            await self._write_responses()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("response writer for %s failed", self._peer)
            self._abort("internal error")

    async def _write_responses(self) -> None:
        while not self._closed:
            item = await self._responses.get()
            if isinstance(item, bytes):
                self._write(item)
                continue
            header, result = item
            try:
                body = await result if inspect.isawaitable(result) else result
            except Exception:
                log.exception("api key %d from %s failed", header.api_key, self._peer)
                self._abort("internal error")
                return
            if isinstance(body, list):  # pre-encoded frame parts
                for part in body:
                    self._write(part)
                continue
            self._write(
                encode_response(header.api_key, header.api_version, header.correlation_id, body)
            )

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


async def serve(router: Router, host: str, port: int, frame_bytes_max: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: KafkaConnection(router, frame_bytes_max), host, port, reuse_address=True
    )
