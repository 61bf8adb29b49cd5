"""Record-level reads of a batch (timestamp lookups and tools; never the hot path).

Decompression uses cramjam. Snappy payloads from the Java client use xerial framing
(a magic header, then length-prefixed raw snappy blocks); librdkafka may send raw snappy.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import cramjam

from contextplane.protocol.records import BATCH_HEADER_BYTES, BatchHeader, parse_header

_XERIAL_MAGIC = b"\x82SNAPPY\x00"


def _snappy(data: bytes) -> bytes:
    if data.startswith(_XERIAL_MAGIC):
        position = 16  # magic (8) + version (4) + compatible version (4)
        out = bytearray()
        while position < len(data):
            (size,) = struct.unpack_from(">i", data, position)
            position += 4
            out += bytes(cramjam.snappy.decompress_raw(data[position : position + size]))
            position += size
        return bytes(out)
    return bytes(cramjam.snappy.decompress_raw(data))


def decompress(codec: int, data: bytes) -> bytes:
    if codec == 0:
        return data
    if codec == 1:
        return bytes(cramjam.gzip.decompress(data))
    if codec == 2:
        return _snappy(data)
    if codec == 3:
        return bytes(cramjam.lz4.decompress(data))
    if codec == 4:
        return bytes(cramjam.zstd.decompress(data))
    raise ValueError(f"unknown compression codec {codec}")


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), position
        shift += 7


def record_timestamps(batch: bytes) -> Iterator[tuple[int, int]]:
    """(offset, timestamp) of each record in one batch."""
    header: BatchHeader = parse_header(batch)
    if header.attributes & 0x08:  # LogAppendTime: every record has max_timestamp
        for delta in range(header.records_count):
            yield header.base_offset + delta, header.max_timestamp
        return
    body = decompress(header.compression, bytes(batch[BATCH_HEADER_BYTES : header.total_bytes]))
    position = 0
    for _ in range(header.records_count):
        length, position = _varint(body, position)
        end = position + length
        position += 1  # attributes
        timestamp_delta, position = _varint(body, position)
        offset_delta, position = _varint(body, position)
        yield header.base_offset + offset_delta, header.base_timestamp + timestamp_delta
        position = end


def check_payload(header: BatchHeader, batch: bytes | memoryview) -> None:
    """Raise ValueError if a compressed batch's payload does not decompress.

    The CRC only proves the bytes arrived as sent; a producer bug can still send a payload
    no consumer can read. Kafka decompresses on produce and rejects such a batch; this
    does the same (decompression runs in C; records are not parsed).
    """
    if header.compression == 0:
        return
    try:
        decompress(header.compression, bytes(batch[BATCH_HEADER_BYTES : header.total_bytes]))
    except Exception as exc:  # noqa: BLE001 - every codec raises its own error type
        raise ValueError(f"compressed record batch payload is unreadable: {exc}") from exc
