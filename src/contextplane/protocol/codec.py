"""Kafka frames to requests and responses to frames: sans-I/O, never imports asyncio.

`FrameBuffer.receive_data()` stores bytes and `next_frame()` returns one complete frame
or None. `decode_request()` turns a frame into a `Request`; `encode_response()` turns a
response entity into the bytes of a frame.
"""

from __future__ import annotations

import functools
import io
import struct
from dataclasses import dataclass
from typing import Any

from kio.index import UnknownAPIKey, UnknownEntity, load_request_schema, load_response_schema
from kio.serial import entity_writer

from contextplane.errors import ProtocolError
from contextplane.protocol.lenient import read_entity_lenient

API_VERSIONS_KEY = 18
_HEADER_FIXED = struct.Struct(">hhi")
_INT32 = struct.Struct(">i")


class FrameBuffer:
    """Accumulates bytes and yields size-prefixed frames (without the size prefix).

    Consumed bytes are dropped lazily (once they are most of the buffer), so a burst of
    pipelined frames costs one compaction, not one memmove per frame.
    """

    def __init__(self, frame_bytes_max: int) -> None:
        self._buffer = bytearray()
        self._start = 0
        self._frame_bytes_max = frame_bytes_max

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    def next_frame(self) -> bytes | None:
        available = len(self._buffer) - self._start
        if available < 4:
            self._compact()
            return None
        (size,) = _INT32.unpack_from(self._buffer, self._start)
        if size < 0 or size > self._frame_bytes_max:
            raise ProtocolError(
                f"frame of {size} bytes exceeds socket.request.max.bytes={self._frame_bytes_max}"
            )
        if available < 4 + size:
            self._compact()
            return None
        begin = self._start + 4
        frame = bytes(memoryview(self._buffer)[begin : begin + size])
        self._start = begin + size
        return frame

    def _compact(self) -> None:
        if self._start:
            del self._buffer[: self._start]
            self._start = 0


@dataclass(slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


@dataclass(slots=True)
class Request:
    header: RequestHeader
    body: Any  # a kio request entity


class UnsupportedVersion(Exception):
    """The frame names an API key or version the codec has no schema for."""

    def __init__(self, header: RequestHeader) -> None:
        super().__init__(f"api key {header.api_key} version {header.api_version} is unknown")
        self.header = header


@functools.cache
def request_schema(api_key: int, api_version: int) -> Any:
    return load_request_schema(api_key, api_version)


@functools.cache
def response_schema(api_key: int, api_version: int) -> Any:
    return load_response_schema(api_key, api_version)


@functools.cache
def _writer(schema: Any) -> Any:
    return entity_writer(schema)


def read_unsigned_varint(data: bytes, position: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if position >= len(data):
            raise ProtocolError("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 28:
            raise ProtocolError("varint is too long")


def skip_tagged_fields(data: bytes, position: int) -> int:
    count, position = read_unsigned_varint(data, position)
    for _ in range(count):
        _tag, position = read_unsigned_varint(data, position)
        size, position = read_unsigned_varint(data, position)
        position += size
        if position > len(data):
            raise ProtocolError("truncated tagged field")
    return position


def decode_header(frame: bytes) -> tuple[RequestHeader, int]:
    """Header fields up to client_id, and the position after them."""
    if len(frame) < 10:
        raise ProtocolError("truncated request header")
    api_key, api_version, correlation_id = _HEADER_FIXED.unpack_from(frame, 0)
    (length,) = struct.unpack_from(">h", frame, 8)
    position = 10
    client_id = None
    if length >= 0:
        if position + length > len(frame):
            raise ProtocolError("truncated client id")
        client_id = frame[position : position + length].decode("utf-8", "replace")
        position += length
    return RequestHeader(api_key, api_version, correlation_id, client_id), position


def decode_request(frame: bytes) -> Request:
    """Decode a whole frame; UnsupportedVersion for an unknown key/version, else ProtocolError."""
    header, position = decode_header(frame)
    try:
        schema = request_schema(header.api_key, header.api_version)
    except (UnknownAPIKey, UnknownEntity):
        raise UnsupportedVersion(header) from None
    if schema.__flexible__:
        position = skip_tagged_fields(frame, position)
    body = decode_body(schema, frame, position)
    return Request(header, body)


def decode_body(schema: Any, frame: bytes, position: int) -> Any:
    """Decode a request body from untrusted bytes.

    kio's native reader pre-allocates whatever array length a frame declares and aborts
    the whole process when that allocation fails, so untrusted frames go through the
    lenient reader, which rejects lengths that cannot fit in the frame (and skips unknown
    tagged fields, as KIP-482 requires).
    """
    try:
        body, _end = read_entity_lenient(schema, frame, position)
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure is a malformed frame
        raise ProtocolError(f"malformed {schema.__name__}: {exc}") from exc
    return body


def encode_response(api_key: int, api_version: int, correlation_id: int, body: Any) -> bytes:
    """Frame bytes for `body`: size, response header, payload."""
    schema = type(body)
    buffer = io.BytesIO()
    buffer.write(b"\x00\x00\x00\x00")
    buffer.write(_INT32.pack(correlation_id))
    # ApiVersions responses always use header v0 so that any client can read them.
    if schema.__flexible__ and api_key != API_VERSIONS_KEY:
        buffer.write(b"\x00")
    _writer(schema)(buffer, body)
    frame = buffer.getbuffer()
    _INT32.pack_into(frame, 0, len(frame) - 4)
    return bytes(frame)
