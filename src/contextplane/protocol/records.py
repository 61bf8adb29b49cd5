"""RecordBatch (magic v2) headers: parse, validate, stamp offsets. Never re-encodes.

Only the 61-byte batch header is read on the hot path. The CRC32C covers the bytes from
`attributes` to the end of the batch, so the broker can stamp `baseOffset` and
`partitionLeaderEpoch` in place without recomputing it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from contextplane.errors import KafkaError
from contextplane.protocol.crc import crc32c
from contextplane.protocol.error_codes import ErrorCode

BATCH_HEADER_BYTES = 61
# Offset of `magic`; everything before it (offset, length, epoch) is outside the CRC.
_LENGTH_PREFIX_BYTES = 12
_HEADER = struct.Struct(">qiibIhiqqqhii")
_CRC_START = 21

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20
COMPRESSION_CODECS_MAX = 4  # none, gzip, snappy, lz4, zstd


@dataclass(slots=True)
class BatchHeader:
    """The fields of one batch header that the broker acts on."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def total_bytes(self) -> int:
        return self.batch_length + _LENGTH_PREFIX_BYTES

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def last_sequence(self) -> int:
        if self.base_sequence < 0:
            return -1
        return (self.base_sequence + self.last_offset_delta) % (2**31)


def parse_header(data: bytes | memoryview, position: int = 0) -> BatchHeader:
    return BatchHeader(*_HEADER.unpack_from(data, position))


def split_batches(
    data: bytes, batch_bytes_max: int, sparse: bool = False
) -> list[tuple[BatchHeader, memoryview]]:
    """Split a produce payload into validated batches.

    Raises KafkaError with Kafka's own code for each kind of bad input: a truncated or
    malformed batch (truncated, inconsistent length or record count) or a legacy (v0/v1)
    batch is INVALID_RECORD, an unknown magic or a bad CRC is CORRUPT_MESSAGE, a batch
    over `message.max.bytes` is MESSAGE_TOO_LARGE — the codes Apache Kafka 4.4 returns.
    `sparse`: a batch may hold fewer records than offsets (a batch copied from a log that
    compaction thinned, even to none), as Kafka's log keeps them.
    """
    view = memoryview(data)
    batches: list[tuple[BatchHeader, memoryview]] = []
    position = 0
    end = len(view)
    if end == 0:
        raise KafkaError(ErrorCode.invalid_record, "empty record set")
    while position < end:
        if end - position < BATCH_HEADER_BYTES:
            raise KafkaError(ErrorCode.invalid_record, "truncated record batch header")
        header = parse_header(view, position)
        if header.magic != 2:
            # Kafka: produce v3+ must carry magic v2 (INVALID_RECORD); any other value
            # is not a record batch at all (CORRUPT_MESSAGE).
            raise KafkaError(
                ErrorCode.invalid_record if header.magic in (0, 1) else ErrorCode.corrupt_message,
                f"record batch magic {header.magic} is not supported",
            )
        size = header.total_bytes
        if header.batch_length < BATCH_HEADER_BYTES - _LENGTH_PREFIX_BYTES or position + size > end:
            raise KafkaError(ErrorCode.invalid_record, "record batch length is inconsistent")
        if size > batch_bytes_max:
            raise KafkaError(
                ErrorCode.message_too_large,
                f"record batch of {size} bytes exceeds message.max.bytes={batch_bytes_max}",
            )
        batch = view[position : position + size]
        if crc32c(batch[_CRC_START:]) != header.crc:
            raise KafkaError(ErrorCode.corrupt_message, "record batch CRC mismatch")
        if header.compression > COMPRESSION_CODECS_MAX:
            raise KafkaError(
                ErrorCode.unsupported_compression_type,
                f"compression codec {header.compression} is unknown",
            )
        if sparse:
            if not 0 <= header.records_count <= header.last_offset_delta + 1:
                raise KafkaError(ErrorCode.invalid_record, "record count exceeds the offsets")
        elif header.records_count != header.last_offset_delta + 1 or header.records_count <= 0:
            raise KafkaError(ErrorCode.invalid_record, "record count and offset delta disagree")
        batches.append((header, batch))
        position += size
    return batches


def stamp(
    batch: memoryview, base_offset: int, leader_epoch: int, log_append_time_ms: int | None = None
) -> bytes:
    """Copy of `batch` with broker-assigned base offset and leader epoch.

    Both lie outside the CRC, so the CRC stays as the producer computed it, except for a
    LogAppendTime topic: then the timestamp-type bit and maxTimestamp are set to the
    broker's clock and the CRC is recomputed, as Kafka's LogValidator does.
    """
    out = bytearray(batch)
    struct.pack_into(">q", out, 0, base_offset)
    struct.pack_into(">i", out, 12, leader_epoch)
    if log_append_time_ms is not None:
        (attributes,) = struct.unpack_from(">h", out, 21)
        struct.pack_into(">h", out, 21, attributes | TIMESTAMP_TYPE_BIT)
        struct.pack_into(">q", out, 35, log_append_time_ms)
        struct.pack_into(">I", out, 17, crc32c(memoryview(out)[_CRC_START:]))
    return bytes(out)


def empty_batch(base_offset: int, offsets: int, timestamp_ms: int) -> bytes:
    """A batch of no records spanning `offsets` offsets from `base_offset`: what Kafka's
    log cleaner leaves where it removed every record of a batch, so the offsets stay
    taken and readers step over them."""
    out = bytearray(BATCH_HEADER_BYTES)
    _HEADER.pack_into(
        out,
        0,
        base_offset,
        BATCH_HEADER_BYTES - _LENGTH_PREFIX_BYTES,
        -1,  # partition leader epoch: the appender stamps it
        2,  # magic
        0,  # crc, below
        0,  # attributes: no compression, create time
        offsets - 1,  # last offset delta
        timestamp_ms,
        timestamp_ms,
        -1,  # no producer
        -1,
        -1,
        0,  # no records
    )
    struct.pack_into(">I", out, 17, crc32c(memoryview(out)[_CRC_START:]))
    return bytes(out)


def iter_batch_headers(data: bytes | memoryview) -> list[BatchHeader]:
    """Headers of already-validated, concatenated batches (from the log or an object)."""
    view = memoryview(data)
    headers = []
    position = 0
    while position + BATCH_HEADER_BYTES <= len(view):
        header = parse_header(view, position)
        headers.append(header)
        position += header.total_bytes
    return headers
