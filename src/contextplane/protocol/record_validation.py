"""Record-level validation of a produced batch, as Kafka's LogValidator does it.

The batch header and CRC are checked by `records.split_batches`; this walks the records
inside (decompressing with a bound, `decompress.py`) and rejects, with Kafka's codes:

* a payload that does not decompress: UNKNOWN_SERVER_ERROR (what Kafka 4.4 answers);
* records that decompress to more than the bound: MESSAGE_TOO_LARGE;
* record framing that does not add up (DefaultRecordBatch / DefaultRecord): fewer
  records than the header counts, bytes left over after the last one, a record whose
  declared length differs from what its fields take, a negative header count or header
  key length, a varint that is too long: INVALID_RECORD;
* offset deltas other than 0..n-1 in order: INVALID_RECORD (Kafka stores such an
  uncompressed batch unchanged and fails on a compressed one; contextplane never
  re-encodes and refuses both);
* per-record errors (KIP-467), which name each offending record (`RecordErrors`): no
  key on a compacted topic (INVALID_RECORD), a CreateTime timestamp outside
  `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms`, or the
  LogAppendTime bit set by a producer on a LogAppendTime topic (INVALID_TIMESTAMP).

Complete records are walked by `record_walk.walk`, a flat loop over one buffer (compiled
by mypyc when the package was built, see `compiled.py`, else interpreted). An
uncompressed batch of up to 2 MiB, and a producer's usual small lz4 batch (one block),
are walked whole. Otherwise a small record that straddles two decompressed chunks is
joined to the next chunk; a large one is read by `_Stream`, which skips key, value and
header bytes without keeping them (the headers whole in a chunk in one compiled loop,
`record_walk.skip_header_run`): memory stays at about two chunks whatever the records'
sizes (a raw snappy block, which cannot be read in parts, costs its declared size,
checked first against the bound). No record costs Python-level steps per header; the
record errors (KIP-467) are searched for by the compiled `record_walk.find_record_error`,
Python looking only at the offending records it names. Each compiled call covers at most
a chunk or so (the GIL is held during it), so a thread of the validation pool never
keeps the event loop waiting for long.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from contextplane.compiled import compiled_or_interpreted
from contextplane.errors import KafkaError
from contextplane.limits import RECORD_ERRORS_LISTED_MAX
from contextplane.protocol import record_walk
from contextplane.protocol.decompress import (
    CHUNK_BYTES,
    LZ4,
    DecompressedTooLarge,
    DecompressionError,
    decompressed_chunks,
    lz4_one_block,
)
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.record_walk import ErrorScan, WalkState, size_mismatch
from contextplane.protocol.records import BATCH_HEADER_BYTES, TIMESTAMP_TYPE_BIT, BatchHeader

_INT64_MIN = record_walk.INT64_MIN
_INT64_MAX = record_walk.INT64_MAX
NO_TIMESTAMP = -1
# Reading a stored batch keeps at most a chunk whatever this is: it bounds a read's work.
_STORED_BATCH_BYTES_MAX = 1 << 40

# An uncompressed batch up to this size is walked in place, in one compiled call holding
# the GIL (20-40 ms for 1 MiB of the densest records); a larger one (max.message.bytes
# raised) chunk by chunk like a decompressed one, so the loop gets the GIL between chunks.
WALKED_WHOLE_BYTES_MAX = 2 * 1024 * 1024

PREMATURE_EOF = "Incorrect declared batch size, premature EOF reached"
RECORDS_REMAINING = "Incorrect declared batch size, records still remaining in file"


@dataclass(frozen=True, slots=True)
class RecordPolicy:
    """What a topic asks of each record (its configs, as LogValidator reads them)."""

    topic_partition: str  # "topic-index", as Kafka's messages name it
    compacted: bool
    log_append_time: bool
    timestamp_before_max_ms: int
    timestamp_after_max_ms: int
    decompressed_bytes_max: int


class RecordErrors(KafkaError):
    """A batch rejected for the records it names: (batch index, message) each."""

    def __init__(self, code: ErrorCode, message: str, record_errors: list[tuple[int, str]]) -> None:
        super().__init__(code, message)
        self.record_errors = record_errors


class _Malformed(Exception):
    """Record framing is invalid (INVALID_RECORD)."""


def _varint(buf: bytes, position: int) -> tuple[int, int]:
    """A zigzag int32 of up to five bytes, as Kafka's ByteUtils.readVarint reads it."""
    value = 0
    for shift in (0, 7, 14, 21, 28):
        byte = buf[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            value &= 0xFFFFFFFF
            return (value >> 1) ^ -(value & 1), position
    raise _Malformed("Varint is too long")


# The walk itself: the compiled copy of record_walk.py if it is built and current.
walker = compiled_or_interpreted(record_walk)


def _walk(buf: bytes, position: int, count: int, walk: WalkState) -> int:
    """Read every complete record of `buf` from `position`, up to `count` in all.

    Returns the position after the last complete record; stops early at a record that
    does not end inside `buf` (the caller knows whether more bytes can follow).
    """
    stop = walker.walk(buf, position, count, walk)
    if walk.error:
        raise _Malformed(walk.error)
    return stop


@dataclass(slots=True)
class _Record:
    """One record's fields, as the detailed pass needs them."""

    timestamp_delta: int
    offset_delta: int
    key_size: int
    value_size: int


class _Stream:
    """Decompressed chunks read as one stream: the current chunk, a position in it, and
    reads that move on to the next chunk (for a record that straddles two). Key, value
    and header bytes are skipped, never kept."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.buf = b""
        self.position = 0
        self._consumed_before = 0  # bytes of the chunks before `buf`

    @property
    def consumed(self) -> int:
        return self._consumed_before + self.position

    def next_chunk(self) -> bool:
        """Move past the (fully read) current chunk; False at the end of the stream."""
        self._consumed_before += len(self.buf)
        self.buf = next(self._chunks, b"")
        self.position = 0
        return bool(self.buf)

    def join_next_chunk(self) -> bool:
        """Make the rest of this chunk and the next one the buffer; False at the end."""
        rest = self.buf[self.position :]
        self._consumed_before += self.position
        self.buf = rest
        self.position = 0
        following = next(self._chunks, b"")
        if not following:
            return False
        self.buf = rest + following
        return True

    def straddling_length(self) -> int:
        """The declared length of the record at the position (0 if that is cut too)."""
        try:
            length, _ = _varint(self.buf, self.position)
        except IndexError:
            return 0
        return length

    def at_end(self) -> bool:
        """True if nothing follows; False if more bytes (however many) do."""
        if self.position < len(self.buf):
            return False
        try:
            return not self.next_chunk()
        except DecompressedTooLarge:
            return False

    def _byte(self) -> int:
        if self.position >= len(self.buf) and not self.next_chunk():
            raise _Malformed(PREMATURE_EOF)
        byte = self.buf[self.position]
        self.position += 1
        return byte

    def _unsigned(self, max_bytes: int) -> int:
        value = 0
        for shift in range(0, 7 * max_bytes, 7):
            byte = self._byte()
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
        raise _Malformed("Varint is too long")

    def varint(self) -> int:
        value = self._unsigned(5) & 0xFFFFFFFF
        return (value >> 1) ^ -(value & 1)

    def varlong(self) -> int:
        value = self._unsigned(10) & 0xFFFFFFFFFFFFFFFF
        return (value >> 1) ^ -(value & 1)

    def skip(self, count: int) -> None:
        while count > 0:
            if self.position >= len(self.buf) and not self.next_chunk():
                raise _Malformed(PREMATURE_EOF)
            taken = min(count, len(self.buf) - self.position)
            self.position += taken
            count -= taken

    def record(self) -> _Record:
        """Read one record; its fields must fill exactly its declared length."""
        length = self.varint()
        if length <= 0:
            raise _Malformed(f"Invalid record size {length}")
        start = self.consumed
        end = start + length

        def skip_within(count: int) -> None:
            if self.consumed + count > end:
                raise _Malformed(size_mismatch(length, self.consumed + count - start))
            self.skip(count)

        skip_within(1)  # attributes
        timestamp_delta = self.varlong()
        offset_delta = self.varint()
        key_size = self.varint()
        skip_within(max(key_size, 0))
        value_size = self.varint()
        skip_within(max(value_size, 0))
        headers = self.varint()
        if headers < 0:
            raise _Malformed(f"Found invalid number of record headers {headers}")
        if headers and headers > end - self.consumed:
            raise _Malformed(f"Found invalid number of record headers. {headers} is too large")
        while headers:
            # The headers whole in this chunk in one compiled loop; one cut by the
            # chunk's end (or malformed) here, which moves to the next chunk (or raises).
            limit = self.position + end - self.consumed
            self.position, headers = walker.skip_header_run(self.buf, self.position, limit, headers)
            if headers:
                size = self.varint()
                if size < 0:
                    raise _Malformed(f"Invalid negative header key size {size}")
                skip_within(size)
                skip_within(max(self.varint(), 0))
                headers -= 1
        if self.consumed != end:
            raise _Malformed(size_mismatch(length, self.consumed - start))
        return _Record(timestamp_delta, offset_delta, key_size, value_size)


# -- the batch -----------------------------------------------------------------------------


def validate_records(
    header: BatchHeader,
    batch: bytes | memoryview,
    policy: RecordPolicy,
    now_ms: int,
    chunk_bytes: int = CHUNK_BYTES,
) -> None:
    """Raise KafkaError (or RecordErrors) if the batch's records are not acceptable."""
    walk = _small_lz4_walked(header, batch, policy, chunk_bytes)
    if walk is None:
        walk = walker.WalkState()
        try:
            try:
                if header.compression == 0 and len(batch) <= WALKED_WHOLE_BYTES_MAX:
                    _walk_whole(_as_bytes(batch), header.records_count, walk)
                else:
                    stream = _stream(header, batch, policy, chunk_bytes)
                    _walk_stream(stream, header.records_count, walk, chunk_bytes)
            except _Malformed as exc:
                raise KafkaError(
                    ErrorCode.invalid_record, f"{exc} in topic partition {policy.topic_partition}"
                ) from None
        except DecompressionError as exc:
            raise KafkaError(
                ErrorCode.unknown_server_error,
                f"Failed to decompress record stream in topic partition "
                f"{policy.topic_partition}: {exc}",
            ) from None
        except DecompressedTooLarge as exc:
            raise KafkaError(
                ErrorCode.message_too_large, f"{exc} in topic partition {policy.topic_partition}"
            ) from None
    if (policy.compacted and walk.keyless) or not _timestamps_surely_valid(
        header, policy, now_ms, walk
    ):
        rejection = _record_errors(header, batch, policy, now_ms, chunk_bytes, walk.keyless)
        if rejection is not None:
            raise rejection


def _small_lz4_walked(
    header: BatchHeader, batch: bytes | memoryview, policy: RecordPolicy, chunk_bytes: int
) -> WalkState | None:
    """The walk of a producer's usual small batch (lz4, one block, one chunk) read whole,
    if nothing in it is wrong; else None: the chunked stream reads it and names errors."""
    if header.compression != LZ4:
        return None
    limit = min(policy.decompressed_bytes_max, chunk_bytes)
    data = lz4_one_block(memoryview(batch)[BATCH_HEADER_BYTES:], limit)
    if data is None:
        return None
    walk = walker.WalkState()
    count = header.records_count
    if walker.walk(data, 0, count, walk) != len(data) or walk.error or walk.index != count:
        return None
    return walk


def _stream(
    header: BatchHeader, batch: bytes | memoryview, policy: RecordPolicy, chunk_bytes: int
) -> _Stream:
    payload = memoryview(batch)[BATCH_HEADER_BYTES:]
    return _Stream(
        decompressed_chunks(header.compression, payload, policy.decompressed_bytes_max, chunk_bytes)
    )


def _as_bytes(batch: bytes | memoryview) -> bytes:
    """The batch as bytes: a produce request's one batch per partition is a view of all
    of a bytes object, read in place (a copy of 1 MB costs several walks of it)."""
    if isinstance(batch, bytes):
        return batch
    base = batch.obj
    if isinstance(base, bytes) and batch.contiguous and batch.nbytes == len(base):
        return base
    return bytes(batch)


def _walk_whole(buf: bytes, count: int, walk: WalkState) -> None:
    position = _walk(buf, BATCH_HEADER_BYTES, count, walk)
    if walk.index < count:
        raise _Malformed(PREMATURE_EOF)
    if position != len(buf):
        raise _Malformed(RECORDS_REMAINING)


def _walk_stream(stream: _Stream, count: int, walk: WalkState, chunk_bytes: int) -> None:
    while walk.index < count:
        if stream.position >= len(stream.buf) and not stream.next_chunk():
            raise _Malformed(PREMATURE_EOF)
        stream.position = _walk(stream.buf, stream.position, count, walk)
        if walk.index >= count or stream.position >= len(stream.buf):
            continue
        # A record straddles this chunk and the next: a small one is joined to the next
        # chunk and walked there, a large one is read without keeping its bytes.
        if stream.straddling_length() <= chunk_bytes:
            if not stream.join_next_chunk():
                raise _Malformed(PREMATURE_EOF)
        else:
            _count_straddling(stream.record(), walk)
    if not stream.at_end():
        raise _Malformed(RECORDS_REMAINING)


def _count_straddling(record: _Record, walk: WalkState) -> None:
    """What `_walk` does for a record it reads itself, for one read by `_Stream`."""
    if record.offset_delta != walk.index:
        raise _Malformed(
            f"Record {walk.index} has offset delta {record.offset_delta}; expected {walk.index}"
        )
    walk.ts_low = min(walk.ts_low, record.timestamp_delta)
    walk.ts_high = max(walk.ts_high, record.timestamp_delta)
    if record.key_size < 0:
        walk.keyless += 1
    walk.index += 1


# -- record errors (KIP-467) ---------------------------------------------------------------


def _wrap64(value: int) -> int:
    """Java long arithmetic."""
    return (value + 2**63) % 2**64 - 2**63


def _timestamps_surely_valid(
    header: BatchHeader, policy: RecordPolicy, now_ms: int, walk: WalkState
) -> bool:
    """True when no record can fail the timestamp checks; False means: look closer."""
    log_append_time_batch = bool(header.attributes & TIMESTAMP_TYPE_BIT)
    if policy.log_append_time:
        return not log_append_time_batch
    before, after = policy.timestamp_before_max_ms, policy.timestamp_after_max_ms
    if before < 0 or after < 0:
        return False
    if log_append_time_batch:
        low = high = header.max_timestamp
    else:
        low, high = header.base_timestamp + walk.ts_low, header.base_timestamp + walk.ts_high
    return (
        low >= _INT64_MIN
        and high <= _INT64_MAX
        and now_ms - before <= low
        and high <= now_ms + after
    )


def _record_errors(
    header: BatchHeader,
    batch: bytes | memoryview,
    policy: RecordPolicy,
    now_ms: int,
    chunk_bytes: int,
    keyless: int,
) -> RecordErrors | None:
    """The batch's rejection if any record fails LogValidator.validateRecord's checks.

    The batch was walked once already (`keyless` records without a key), so its framing
    is known to be sound. Every offending record counts; the first
    RECORD_ERRORS_LISTED_MAX are named. The records are searched by the compiled
    `find_record_error`; Python looks only at the offending records it names, and stops
    once enough are named and the answer no longer depends on the rest.
    """
    stream = _stream(header, batch, policy, chunk_bytes)
    log_append_time_batch = bool(header.attributes & TIMESTAMP_TYPE_BIT)
    valid_low, valid_high = _surely_valid_deltas(header, policy, now_ms)
    scan = walker.ErrorScan(
        policy.compacted,
        _timestamp_rule(header, policy, now_ms),
        header.base_timestamp,
        now_ms,
        policy.timestamp_before_max_ms,
        policy.timestamp_after_max_ms,
        valid_low,
        valid_high,
    )
    count = header.records_count
    listed: list[tuple[int, str]] = []
    invalid_timestamp = False
    while scan.index < count and not (
        invalid_timestamp and len(listed) >= RECORD_ERRORS_LISTED_MAX
    ):
        record = _next_record_error(stream, scan, count, chunk_bytes)
        if record is None:
            continue
        message = _key_error(record, policy)
        if message is None:
            message = _timestamp_error(record, header, log_append_time_batch, policy, now_ms)
            invalid_timestamp = invalid_timestamp or message is not None
        if message is not None and len(listed) < RECORD_ERRORS_LISTED_MAX:
            listed.append((record.offset_delta, message))
        if len(listed) >= RECORD_ERRORS_LISTED_MAX:
            # The rest of the key errors are `keyless` (counted): look for a timestamp one.
            scan.stop_at_key_errors = False
    if not listed:
        return None
    total = keyless if policy.compacted else len(listed)
    if invalid_timestamp:
        return RecordErrors(
            ErrorCode.invalid_timestamp,
            "One or more records have been rejected due to invalid timestamp",
            listed,
        )
    return invalid_records(total, listed)


def invalid_records(total: int, listed: list[tuple[int, str]]) -> RecordErrors:
    """INVALID_RECORD for `total` offending records, `listed` the first of them, with
    Kafka's message (LogValidator's processRecordErrors)."""
    shown = ", ".join(
        f"RecordError(batchIndex={index}, message='{message}')" for index, message in listed[:3]
    )
    return RecordErrors(
        ErrorCode.invalid_record,
        f"One or more records have been rejected due to {total} record errors in total, "
        f"and only showing the first three errors at most: [{shown}]",
        listed,
    )


def _next_record_error(
    stream: _Stream, scan: ErrorScan, count: int, chunk_bytes: int
) -> _Record | None:
    """Read on to the next offending record (None if this chunk had none)."""
    if stream.position >= len(stream.buf) and not stream.next_chunk():
        raise _Malformed(PREMATURE_EOF)
    stream.position = walker.find_record_error(stream.buf, stream.position, count, scan)
    if scan.found != record_walk.NO_ERROR:
        return _Record(scan.timestamp_delta, scan.index - 1, scan.key_size, scan.value_size)
    if scan.index >= count or stream.position >= len(stream.buf):
        return None
    # A record straddles this chunk and the next: as in _walk_stream.
    if stream.straddling_length() <= chunk_bytes:
        if not stream.join_next_chunk():
            raise _Malformed(PREMATURE_EOF)
        return None
    record = stream.record()
    scan.index += 1
    if walker.classify(scan, record.key_size, record.timestamp_delta) == record_walk.NO_ERROR:
        return None
    return record


def _timestamp_rule(header: BatchHeader, policy: RecordPolicy, now_ms: int) -> int:
    """What the timestamp check comes to for this batch's records (record_walk's
    TIMESTAMPS_*): a LogAppendTime batch has one timestamp for all of them."""
    if not header.attributes & TIMESTAMP_TYPE_BIT:
        return (
            record_walk.TIMESTAMPS_PASS
            if policy.log_append_time
            else record_walk.TIMESTAMPS_CHECKED
        )
    any_record = _Record(0, 0, 0, 0)
    if _timestamp_error(any_record, header, True, policy, now_ms) is None:
        return record_walk.TIMESTAMPS_PASS
    return record_walk.TIMESTAMPS_FAIL


def _surely_valid_deltas(header: BatchHeader, policy: RecordPolicy, now_ms: int) -> tuple[int, int]:
    """The timestamp deltas whose timestamp is within the bounds without any wrapping of
    Java longs (an empty range, low > high, if there are none)."""
    before, after = policy.timestamp_before_max_ms, policy.timestamp_after_max_ms
    if before < 0 or after < 0:
        return 1, 0
    low = max(now_ms - before, _INT64_MIN) - header.base_timestamp
    high = min(now_ms + after, _INT64_MAX) - header.base_timestamp
    low, high = max(low, _INT64_MIN), min(high, _INT64_MAX)
    return (low, high) if low <= high else (1, 0)


def _key_error(record: _Record, policy: RecordPolicy) -> str | None:
    if policy.compacted and record.key_size < 0:
        return (
            "Compacted topic cannot accept message without key in topic partition "
            f"{policy.topic_partition}"
        )
    return None


def _timestamp_error(
    record: _Record,
    header: BatchHeader,
    log_append_time_batch: bool,
    policy: RecordPolicy,
    now_ms: int,
) -> str | None:
    if log_append_time_batch:
        timestamp = header.max_timestamp
    else:
        timestamp = _wrap64(header.base_timestamp + record.timestamp_delta)
    offset = _wrap64(header.base_offset + record.offset_delta)
    if not policy.log_append_time and timestamp != NO_TIMESTAMP:
        difference = _wrap64(now_ms - timestamp)
        if (
            difference > policy.timestamp_before_max_ms
            or _wrap64(-difference) > policy.timestamp_after_max_ms
        ):
            low = _wrap64(now_ms - policy.timestamp_before_max_ms)
            high = _wrap64(now_ms + policy.timestamp_after_max_ms)
            return (
                f"Timestamp {timestamp} of message with offset {offset} is out of range. "
                f"The timestamp should be within [{low}, {high}]"
            )
    elif log_append_time_batch:
        if header.compression:  # Kafka reads these records without key and value
            kind, key, value = "PartialDefaultRecord", record.key_size, record.value_size
        else:
            kind, key, value = "DefaultRecord", max(record.key_size, 0), max(record.value_size, 0)
        return (
            f"Invalid timestamp type in message {kind}(offset={offset}, timestamp={timestamp}, "
            f"key={key} bytes, value={value} bytes). "
            "Producer should not set timestamp type to LogAppendTime."
        )
    return None


# -- reading stored batches ----------------------------------------------------------------


def read_records(header: BatchHeader, batch: bytes | memoryview) -> Iterator[tuple[int, int]]:
    """(offset delta, timestamp delta) of each record of a stored batch, streamed.

    A batch in the log passed validation when it was produced (or was written before
    validation existed): reading stops quietly at the first record that does not parse.
    """
    payload = memoryview(batch)[BATCH_HEADER_BYTES : header.total_bytes]
    chunks = decompressed_chunks(header.compression, payload, _STORED_BATCH_BYTES_MAX)
    stream = _Stream(chunks)
    try:
        for _ in range(header.records_count):
            record = stream.record()
            yield record.offset_delta, record.timestamp_delta
    except (_Malformed, DecompressionError, DecompressedTooLarge):
        return
