"""Transaction markers: the control batches (RecordBatch v2 with the transactional and
control bits) that end a transaction in a partition's log, as Kafka writes them.

A marker holds one record: key = version (int16, 0) and type (int16: 0 ABORT,
1 COMMIT); value = version (int16, 0) and the coordinator epoch (int32).
"""

from __future__ import annotations

import struct

import crc32c

from contextplane.protocol.records import BATCH_HEADER_BYTES, CONTROL_BIT, TRANSACTIONAL_BIT

ABORT = 0
COMMIT = 1
_KEY = struct.Struct(">hh")
_VALUE = struct.Struct(">hi")


def _varint(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def marker_batch(
    producer_id: int, producer_epoch: int, commit: bool, timestamp_ms: int, coordinator_epoch: int
) -> bytes:
    """One control batch ending `producer_id`'s transaction (base offset 0: the appender
    stamps it)."""
    key = _KEY.pack(0, COMMIT if commit else ABORT)
    value = _VALUE.pack(0, coordinator_epoch)
    body = (
        b"\x00"  # record attributes
        + _varint(0)  # timestamp delta
        + _varint(0)  # offset delta
        + _varint(len(key))
        + key
        + _varint(len(value))
        + value
        + _varint(0)  # no headers
    )
    record = _varint(len(body)) + body
    attributes = TRANSACTIONAL_BIT | CONTROL_BIT
    after_crc = (
        struct.pack(
            ">hiqqqhii",
            attributes,
            0,  # last offset delta
            timestamp_ms,
            timestamp_ms,
            producer_id,
            producer_epoch,
            -1,  # base sequence: markers carry none
            1,
        )
        + record
    )
    length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, length, -1, 2, crc32c.crc32c(after_crc)) + after_crc


def marker_type(batch: bytes | memoryview) -> int | None:
    """ABORT or COMMIT for an uncompressed control batch; None if it is not a marker."""
    position = BATCH_HEADER_BYTES
    view = memoryview(batch)
    # record length, attributes, timestamp delta, offset delta, key length: varints
    # of one byte each for a marker, then the 4-byte key.
    if len(view) < position + 9:
        return None
    key_length_at = position + 4
    if view[key_length_at] != 8:  # zigzag of 4
        return None
    version, kind = _KEY.unpack_from(view, key_length_at + 1)
    if version != 0 or kind not in (ABORT, COMMIT):
        return None
    return int(kind)
