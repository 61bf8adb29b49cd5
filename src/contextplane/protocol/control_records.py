"""Transaction markers: the control batches (RecordBatch v2 with the transactional and
control bits) that end a transaction in a partition's log, as Kafka writes them.

A marker holds one record: key = version (int16, 0) and type (int16: 0 ABORT,
1 COMMIT); value = version (int16, 0) and the coordinator epoch (int32).
"""

from __future__ import annotations

import struct

from contextplane.protocol.offsets_records import encode_batch
from contextplane.protocol.records import BATCH_HEADER_BYTES, CONTROL_BIT, TRANSACTIONAL_BIT

ABORT = 0
COMMIT = 1
_KEY = struct.Struct(">hh")
_VALUE = struct.Struct(">hi")


def marker_batch(
    producer_id: int, producer_epoch: int, commit: bool, timestamp_ms: int, coordinator_epoch: int
) -> bytes:
    """One control batch ending `producer_id`'s transaction (base offset 0: the appender
    stamps it)."""
    key = _KEY.pack(0, COMMIT if commit else ABORT)
    value = _VALUE.pack(0, coordinator_epoch)
    return encode_batch(
        [(key, value)],
        timestamp_ms,
        attributes=TRANSACTIONAL_BIT | CONTROL_BIT,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
    )


def _skip_varint(view: memoryview, position: int) -> int | None:
    """The position after the varint at `position`, None past the end or the limit."""
    for end in range(position, min(position + 10, len(view))):
        if not view[end] & 0x80:
            return end + 1
    return None


def marker_type(batch: bytes | memoryview) -> int | None:
    """ABORT or COMMIT for an uncompressed control batch; None if it is not a marker.

    The record's varints are read whole: a marker the cleaner rewrote with a delete
    horizon (KIP-534: the horizon becomes the batch's base timestamp) has a negative
    timestamp delta of several bytes."""
    view = memoryview(batch)
    # record length, then attributes, timestamp delta, offset delta, key length
    position = _skip_varint(view, BATCH_HEADER_BYTES)
    if position is None:
        return None
    position = _skip_varint(view, position + 1)
    if position is not None:
        position = _skip_varint(view, position)
    if position is None or position + 5 > len(view) or view[position] != 8:  # zigzag of 4
        return None
    version, kind = _KEY.unpack_from(view, position + 1)
    if version != 0 or kind not in (ABORT, COMMIT):
        return None
    return int(kind)
