"""A minimal blocking Kafka client for protocol-level tests: any request, any version,
and raw bytes when a test needs to send something no real client would."""

from __future__ import annotations

import io
import socket
import struct
import time
from typing import Any

import crc32c
from kio.serial import entity_reader, entity_writer

from contextplane.protocol.build import build
from contextplane.protocol.codec import request_schema, response_schema


class RawClient:
    def __init__(
        self, bootstrap: str, client_id: str = "raw-test", source: str | None = None
    ) -> None:
        """`source`: the local address to connect from (any of 127.0.0.0/8 on Linux)."""
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection(
            (host, int(port)), timeout=30, source_address=(source, 0) if source else None
        )
        self.client_id = client_id.encode()
        self.correlation_id = 0
        self._pending: list[tuple[int, int, int]] = []
        self._closed_while_sending = False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frame(self, api_key: int, version: int, body: Any) -> bytes:
        schema = request_schema(api_key, version)
        self.correlation_id += 1
        header = struct.pack(">hhih", api_key, version, self.correlation_id, len(self.client_id))
        header += self.client_id
        if schema.__flexible__:
            header += b"\x00"
        buffer = io.BytesIO()
        entity_writer(schema)(buffer, body)
        payload = header + buffer.getvalue()
        return struct.pack(">i", len(payload)) + payload

    def send_raw(self, data: bytes) -> None:
        # A broker that refuses a frame from its size header closes while a large frame
        # is still being written: that close is the outcome `closed_by_broker` checks.
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self._closed_while_sending = True

    def read_frame(self) -> bytes:
        size = struct.unpack(">i", self._read_exact(4))[0]
        return self._read_exact(size)

    def _read_exact(self, count: int) -> bytes:
        chunks = []
        while count:
            chunk = self.sock.recv(count)
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def send(self, api_key: int, version: int, **fields: Any) -> None:
        """Send one request without waiting: several may be pipelined, then `receive`d."""
        body = build(request_schema(api_key, version), fields)
        self.send_raw(self.frame(api_key, version, body))
        self._pending.append((self.correlation_id, api_key, version))

    def receive(self) -> Any:
        """The response to the oldest request sent and not yet received."""
        correlation_id, api_key, version = self._pending.pop(0)
        frame = self.read_frame()
        (got,) = struct.unpack_from(">i", frame, 0)
        assert got == correlation_id, (got, correlation_id)
        schema = response_schema(api_key, version)
        position = 4
        if schema.__flexible__ and api_key != 18:  # ApiVersions keeps header v0
            assert frame[position] == 0  # no tagged fields in the response header
            position += 1
        body, _ = entity_reader(schema)(frame, position)
        return body

    def request(self, api_key: int, version: int, **fields: Any) -> Any:
        self.send(api_key, version, **fields)
        return self.receive()

    call = request

    def closed_by_broker(self, timeout_s: float = 5.0) -> bool:
        if self._closed_while_sending:
            return True
        self.sock.settimeout(timeout_s)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.sock.recv(65536) == b"":
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return False


def _varint(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def record_batch(
    values: list[bytes | None],
    *,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    timestamp_ms: int = 1_700_000_000_000,
    keys: list[bytes | None] | None = None,
    attributes: int = 0,
) -> bytes:
    """An uncompressed magic-v2 RecordBatch with a correct CRC32C (`attributes`: e.g.
    the transactional bit)."""
    records = bytearray()
    for index, value in enumerate(values):
        key = keys[index] if keys else None
        body = bytearray(b"\x00")  # attributes
        body += _varint(index)  # timestamp delta
        body += _varint(index)  # offset delta
        body += _varint(-1) if key is None else _varint(len(key)) + key
        body += _varint(-1) if value is None else _varint(len(value)) + value
        body += _varint(0)  # headers
        records += _varint(len(body)) + body
    count = len(values)
    after_crc = struct.pack(
        ">hiqqqhii",
        attributes,
        count - 1,
        timestamp_ms,
        timestamp_ms + count - 1,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    ) + bytes(records)
    crc = crc32c.crc32c(after_crc)
    batch_length = 4 + 1 + 4 + len(after_crc)  # epoch + magic + crc + rest
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc) + after_crc
