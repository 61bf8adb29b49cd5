"""Whole records of a stored batch, read and written again: what the log cleaner needs to
keep some records of a batch and drop others (Kafka's MemoryRecords.filterTo).

Only batches the broker already validated and stored are read here (the cleaner), so a
malformed record is an error, not a client's mistake. Decompression is bounded by the
caller's limit. A rewritten batch keeps the original's base offset and last offset delta
(Kafka's cleaner keeps both, so a producer's last sequence stays where it was), producer
id, epoch, base sequence, attributes (so its codec: Kafka's filterTo rewrites with the
original batch's compression type) and leader epoch; records keep their offsets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from contextplane.protocol.compress import compress
from contextplane.protocol.crc import crc32c
from contextplane.protocol.decompress import NONE, decompressed_chunks
from contextplane.protocol.records import (
    BATCH_HEADER_BYTES,
    COMPRESSION_MASK,
    BatchHeader,
    parse_header,
)

# Kafka's RecordBatch attribute bit 6 (KIP-534): the base timestamp is the batch's delete
# horizon, after which its tombstones and transaction markers may be dropped.
DELETE_HORIZON_BIT = 0x40
_AFTER_CRC = struct.Struct(">hiqqqhii")
_CRC_START = 21


@dataclass(slots=True)
class Record:
    attributes: int
    timestamp: int  # absolute
    offset: int  # absolute
    key: bytes | None
    value: bytes | None
    headers: bytes  # the encoded header count and headers, kept as they were


def _varint(buf: bytes, position: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = buf[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), position
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _encode_varint(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def _bytes_field(buf: bytes, position: int) -> tuple[bytes | None, int]:
    length, position = _varint(buf, position)
    if length < 0:
        return None, position
    end = position + length
    if end > len(buf):
        raise ValueError("record field past the end of the batch")
    return buf[position:end], end


def delete_horizon(header: BatchHeader) -> int | None:
    return header.base_timestamp if header.attributes & DELETE_HORIZON_BIT else None


def _records_buffer(batch: bytes | memoryview, limit: int) -> tuple[BatchHeader, bytes]:
    header = parse_header(batch)
    payload = memoryview(batch)[BATCH_HEADER_BYTES : header.total_bytes]
    codec = header.attributes & COMPRESSION_MASK
    buf = bytes(payload) if codec == NONE else b"".join(decompressed_chunks(codec, payload, limit))
    return header, buf


def read_records(batch: bytes | memoryview, limit: int) -> tuple[BatchHeader, list[Record]]:
    """The header and every record of one stored batch (decompressed within `limit`).

    Varints of one byte (most deltas and lengths) are decoded inline: this loop is the
    cleaner's cost."""
    header, buf = _records_buffer(batch, limit)
    records: list[Record] = []
    append = records.append
    base_offset, base_ts = header.base_offset, header.base_timestamp
    position = 0
    for _ in range(header.records_count):
        length, position = _varint(buf, position)
        end = position + length
        attributes = buf[position]
        cursor = position + 1
        fields = [0, 0, 0]
        for index in range(3):  # timestamp delta, offset delta, key length
            byte = buf[cursor]
            if byte < 0x80:
                fields[index] = (byte >> 1) ^ -(byte & 1)
                cursor += 1
            else:
                fields[index], cursor = _varint(buf, cursor)
        key: bytes | None = None
        if fields[2] >= 0:
            key = buf[cursor : cursor + fields[2]]
            cursor += fields[2]
        value, cursor = _bytes_field(buf, cursor)
        if cursor > end:
            raise ValueError("record fields past the record's length")
        append(
            Record(
                attributes,
                base_ts + fields[0],
                base_offset + fields[1],
                key,
                value,
                buf[cursor:end],
            )
        )
        position = end
    return header, records


def read_keys(batch: bytes | memoryview, limit: int) -> tuple[BatchHeader, list[tuple[int, bytes]]]:
    """(offset, key) of each keyed record of one stored batch: what the cleaner's map
    needs, without copying values or headers."""
    header, buf = _records_buffer(batch, limit)
    keys: list[tuple[int, bytes]] = []
    base_offset = header.base_offset
    position = 0
    for _ in range(header.records_count):
        length, position = _varint(buf, position)
        end = position + length
        cursor = position + 1
        fields = [0, 0, 0]
        for index in range(3):
            byte = buf[cursor]
            if byte < 0x80:
                fields[index] = (byte >> 1) ^ -(byte & 1)
                cursor += 1
            else:
                fields[index], cursor = _varint(buf, cursor)
        if fields[2] >= 0:
            keys.append((base_offset + fields[1], buf[cursor : cursor + fields[2]]))
        position = end
    return header, keys


def _encode_record(record: Record, base_offset: int, base_timestamp_ms: int) -> bytes:
    body = b"".join(
        (
            bytes((record.attributes,)),
            _encode_varint(record.timestamp - base_timestamp_ms),
            _encode_varint(record.offset - base_offset),
            _encode_varint(-1) if record.key is None else _encode_varint(len(record.key)),
            record.key or b"",
            _encode_varint(-1) if record.value is None else _encode_varint(len(record.value)),
            record.value or b"",
            record.headers,
        )
    )
    return _encode_varint(len(body)) + body


def write_batch(header: BatchHeader, records: list[Record], horizon_ms: int | None = None) -> bytes:
    """`header`'s batch holding only `records` (at least one, or none for an empty batch
    Kafka would not write: the caller drops those), with the delete horizon set if given
    (or kept if the batch had one)."""
    attributes = header.attributes
    if horizon_ms is not None:
        attributes |= DELETE_HORIZON_BIT
        base_ts = horizon_ms
    else:
        base_ts = header.base_timestamp
    body = b"".join(_encode_record(r, header.base_offset, base_ts) for r in records)
    body = compress(attributes & COMPRESSION_MASK, body)  # the original codec, as Kafka
    max_timestamp = max((r.timestamp for r in records), default=header.max_timestamp)
    if attributes & 0x08:  # LogAppendTime: the batch's time stands for every record
        max_timestamp = header.max_timestamp
    after_crc = (
        _AFTER_CRC.pack(
            attributes,
            header.last_offset_delta,
            base_ts,
            max_timestamp,
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            len(records),
        )
        + body
    )
    length = 4 + 1 + 4 + len(after_crc)
    return (
        struct.pack(
            ">qiibI",
            header.base_offset,
            length,
            header.partition_leader_epoch,
            2,
            crc32c(after_crc),
        )
        + after_crc
    )
