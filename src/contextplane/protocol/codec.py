"""Kafka frames to requests and responses to frames: sans-I/O, never imports asyncio.

`FrameBuffer` cuts size-prefixed frames out of the bytes received (each admitted before
it is read); `decode_request()` turns a frame into a `Request`; `encode_response()` turns
a response entity into the bytes of a frame. `protocol/connection.py` ties them to a
connection's state.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import io
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kio.index import UnknownAPIKey, UnknownEntity, load_request_schema, load_response_schema
from kio.serial import entity_writer
from kio.serial._serialize import get_field_tag, get_field_writer
from kio.serial.writers import write_compact_array_length

from contextplane.errors import ProtocolError
from contextplane.protocol.lenient import read_entity_lenient
from contextplane.protocol.produce_request import PRODUCE_KEY, read_produce

API_VERSIONS_KEY = 18
MIRROR_APPEND_KEY = 10_000  # contextplane's own (protocol/mirror_append.py)
ZONE_PRODUCE_KEY = 10_001  # contextplane's own, inter-broker (protocol/zone_produce.py)
_HEADER_FIXED = struct.Struct(">hhi")
_INT32 = struct.Struct(">i")


class FrameBuffer:
    """Accumulates bytes and cuts size-prefixed frames (returned without the prefix).

    A frame is returned only once it has been *admitted*: the broker admits each frame
    against its request memory (queued.max.request.bytes) when the frame's size prefix
    arrives, before its bytes do. `next_frame_size()` is the declared size of the first
    frame not yet admitted, `admit_frame()` admits it, and `next_frame()` returns the
    oldest admitted frame once all its bytes are here. Only the last admitted frame can
    be incomplete: the next frame's prefix follows its last byte.

    The buffer grows only as bytes arrive: a declared length is checked against
    socket.request.max.bytes but never allocated up front. An admitted frame is cut out
    as its last byte arrives (the one copy a returned frame needs) and its bytes dropped
    from the buffer's head, so the buffer holds only the frame still arriving and bytes
    not yet admitted, and the frames wait whole in a queue: what is allocated is what
    request memory counts, the buffer's allocation at most twice the bytes it holds.
    (Cutting frames only when asked for, as before, kept every pipelined frame in one
    buffer, and dropping the returned ones copied the rest each time: with a producer's
    megabyte requests pipelined, half of the event loop.)
    """

    __slots__ = (
        "_buffer",
        "_frames",
        "_frames_bytes",
        "_admitted_end",
        "_frame_bytes_max",
        "frames_completed",
    )

    def __init__(self, frame_bytes_max: int) -> None:
        # From the size prefix of the first frame not cut out yet: the admitted frame
        # still arriving, if any, then bytes of frames not admitted yet.
        self._buffer = bytearray()
        self._frames: deque[bytes] = deque()  # admitted, complete, not yet returned
        self._frames_bytes = 0  # their bytes, size prefixes included
        self._admitted_end = 0  # in the buffer: just past the admitted frame (0: none)
        self._frame_bytes_max = frame_bytes_max
        self.frames_completed = 0  # admitted frames fully received, ever

    @property
    def pending_bytes(self) -> int:
        """Bytes received and not yet returned in a frame, size prefixes included."""
        return self._frames_bytes + len(self._buffer)

    @property
    def frames_ready(self) -> int:
        """Admitted frames whose bytes have all arrived, not yet returned."""
        return len(self._frames)

    @property
    def missing_bytes(self) -> int:
        """Bytes of the admitted frames that have not arrived yet."""
        return max(0, self._admitted_end - len(self._buffer))

    @property
    def incomplete_bytes(self) -> int:
        """Bytes received of a frame that is not complete and admitted: the admitted
        frame still arriving, or whatever follows the admitted frames."""
        return len(self._buffer)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data
        if 0 < self._admitted_end <= len(self._buffer):
            self._cut()

    def next_frame_size(self) -> int | None:
        """The declared size of the first frame not yet admitted, once its 4-byte prefix
        has arrived.

        ProtocolError if it is negative or above socket.request.max.bytes."""
        position = self._admitted_end
        if len(self._buffer) - position < 4:
            return None
        (size,) = _INT32.unpack_from(self._buffer, position)
        if size < 0 or size > self._frame_bytes_max:
            # A TLS record starts 0x16 0x03 (a handshake, TLS 1.x): say so, it is common.
            tls = " (a TLS handshake? this listener is not TLS)" if size >> 16 == 0x1603 else ""
            raise ProtocolError(
                f"frame of {size} bytes exceeds socket.request.max.bytes="
                f"{self._frame_bytes_max}{tls}"
            )
        return size

    def admit_frame(self) -> int:
        """Admit the frame `next_frame_size()` reports; returns its size."""
        size = self.next_frame_size()
        if size is None:
            raise ValueError("no frame size to admit yet")
        self._admitted_end += 4 + size
        if self._admitted_end <= len(self._buffer):
            self._cut()
        return size

    def next_frame(self) -> bytes | None:
        """The oldest admitted frame, once complete; None until then."""
        if not self._frames:
            return None
        frame = self._frames.popleft()
        self._frames_bytes -= 4 + len(frame)
        return frame

    def _cut(self) -> None:
        """Move the admitted frame, whose last byte has arrived, to the queue."""
        end = self._admitted_end
        self._frames.append(bytes(memoryview(self._buffer)[4:end]))
        self._frames_bytes += end
        self.frames_completed += 1
        self._admitted_end = 0
        rest = len(self._buffer) - end  # at most the rest of one read
        if rest == 0:
            self._buffer = bytearray()  # an emptied buffer gives its memory back
        elif rest <= end:
            # Into a buffer of its own size: dropping the head in place would keep the
            # cut frame's whole allocation (up to socket.request.max.bytes) uncounted.
            self._buffer = self._buffer[end:]
        else:
            # Small frames ahead of a longer rest: dropped in place (no copy; what the
            # allocation keeps beyond the rest is less than the rest itself).
            del self._buffer[:end]


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


# Versions newer than the bundled kio knows, defined here (kio's conventions): looked
# up before kio. (api key, version) -> the module defining (request, response), imported
# on first use like kio's own schemas (each is a dozen dataclasses: milliseconds of
# every start otherwise); a test checks each module's API_KEY and VERSION against it.
OWN_SCHEMAS: dict[tuple[int, int], tuple[str, str, str]] = {
    (28, 6): (
        "contextplane.protocol.txn_offset_commit_v6",
        "TxnOffsetCommitRequest",
        "TxnOffsetCommitResponse",
    ),
    (42, 3): (
        "contextplane.protocol.delete_groups_v3",
        "DeleteGroupsRequest",
        "DeleteGroupsResponse",
    ),
    (18, 5): ("contextplane.protocol.api_versions_v5", "ApiVersionsRequest", "ApiVersionsResponse"),
    (MIRROR_APPEND_KEY, 0): (
        "contextplane.protocol.mirror_append",
        "MirrorAppendRequest",
        "MirrorAppendResponse",
    ),
    (ZONE_PRODUCE_KEY, 0): (
        "contextplane.protocol.zone_produce",
        "ZoneProduceRequest",
        "ZoneProduceResponse",
    ),
}


def _own_schema(api_key: int, api_version: int, which: int) -> Any:
    """The request (`which` 1) or response (2) entity of an own schema, else None."""
    own = OWN_SCHEMAS.get((api_key, api_version))
    if own is None:
        return None
    return getattr(importlib.import_module(own[0]), own[which])


@functools.cache
def request_schema(api_key: int, api_version: int) -> Any:
    own = _own_schema(api_key, api_version, 1)
    return own if own is not None else load_request_schema(api_key, api_version)


@functools.cache
def response_schema(api_key: int, api_version: int) -> Any:
    own = _own_schema(api_key, api_version, 2)
    return own if own is not None else load_response_schema(api_key, api_version)


@functools.cache
def api_name(api_key: int) -> str:
    """Kafka's name of an API (Produce, CreateAcls, ...), for log and audit lines."""
    for version in range(20):
        try:
            return str(request_schema(api_key, version).__name__).removesuffix("Request")
        except (UnknownAPIKey, UnknownEntity):
            continue
    return f"ApiKey{api_key}"


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
    if header.api_key == PRODUCE_KEY:  # the hot request, read by hand when it can be
        body = read_produce(schema, frame, position)
        if body is not None:
            return Request(header, body)
    body = decode_body(schema, frame, position)
    return Request(header, body)


def decode_body(schema: Any, frame: bytes, position: int) -> Any:
    """Decode a request body from untrusted bytes.

    kio's native reader pre-allocates whatever array length a frame declares and aborts
    the whole process when that allocation fails, so untrusted frames go through the
    lenient reader, which rejects lengths that cannot fit in the frame and strings longer
    than Kafka's 32,767 bytes (and skips unknown tagged fields, as KIP-482 requires).
    """
    try:
        body, _end = read_entity_lenient(schema, frame, position)
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure is a malformed frame
        raise ProtocolError(f"malformed {schema.__name__}: {exc}") from exc
    return body


def _response_head(api_key: int, schema: Any, correlation_id: int) -> io.BytesIO:
    """A buffer holding a placeholder size and the response header."""
    buffer = io.BytesIO()
    buffer.write(b"\x00\x00\x00\x00")
    buffer.write(_INT32.pack(correlation_id))
    # ApiVersions responses always use header v0 so that any client can read them.
    if schema.__flexible__ and api_key != API_VERSIONS_KEY:
        buffer.write(b"\x00")
    return buffer


def encode_response(api_key: int, api_version: int, correlation_id: int, body: Any) -> bytes:
    """Frame bytes for `body`: size, response header, payload."""
    schema: Any = type(body)
    buffer = _response_head(api_key, schema, correlation_id)
    _writer(schema)(buffer, body)
    frame = buffer.getbuffer()
    _INT32.pack_into(frame, 0, len(frame) - 4)
    return bytes(frame)


def encode_entity(entity: Any) -> bytes:
    """The bytes kio writes for one entity, e.g. one element of a response array."""
    buffer = io.BytesIO()
    entity_type: Any = type(entity)
    _writer(entity_type)(buffer, entity)
    return buffer.getvalue()


@functools.cache
def _field_writers(schema: Any) -> tuple[tuple[str, Callable[[Any, Any], None]], ...]:
    fields = dataclasses.fields(schema)
    if any(get_field_tag(f) is not None for f in fields):
        raise NotImplementedError(f"{schema.__name__} has tagged fields")
    return tuple(
        (f.name, get_field_writer(f, schema.__flexible__, is_request_header=False, is_tag=False))
        for f in fields
    )


def encode_response_with_array(
    api_key: int,
    correlation_id: int,
    body: Any,
    array_field: str,
    items: bytes,
    count: int,
) -> list[bytes]:
    """Frame parts for `body` whose `array_field` holds `count` elements already encoded
    (`items`, each element as `encode_entity` writes it); the field's value in `body` is
    ignored. Byte for byte what `encode_response` writes, without re-encoding the array:
    large responses (Metadata) are assembled from cached parts."""
    schema: Any = type(body)
    head = _response_head(api_key, schema, correlation_id)
    tail = io.BytesIO()
    buffer = head
    for name, write in _field_writers(schema):
        if name != array_field:
            write(buffer, getattr(body, name))
            continue
        if schema.__flexible__:
            write_compact_array_length(buffer, count)
        else:
            buffer.write(_INT32.pack(count))
        buffer = tail
    if buffer is head:
        raise ValueError(f"{schema.__name__} has no field {array_field!r}")
    if schema.__flexible__:
        tail.write(b"\x00")  # no tagged fields
    parts = [head.getvalue(), items, tail.getvalue()]
    size = sum(len(part) for part in parts) - 4
    parts[0] = _INT32.pack(size) + parts[0][4:]
    return parts
