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
from collections.abc import Iterator
from dataclasses import dataclass

from contextplane.compiled import compiled_or_interpreted
from contextplane.protocol import record_walk
from contextplane.protocol.compress import compress
from contextplane.protocol.crc import crc32c
from contextplane.protocol.decompress import CHUNK_BYTES, NONE, decompressed_chunks
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
_walker = compiled_or_interpreted(record_walk)
# Records whose heads one call of the compiled walker reads (about a millisecond).
HEADS_RUN_RECORDS = 10_000
_CRC_START = 21


@dataclass(slots=True)
class Record:
    attributes: int
    timestamp: int  # absolute
    offset: int  # absolute
    key: bytes | None
    value: bytes | None
    headers: bytes  # the encoded header count and headers, kept as they were


def zigzag_varint(buf: bytes, position: int, max_shift: int = 63) -> tuple[int, int]:
    """The zigzag varint at `position` and the position after it; ValueError once a
    continuation byte would shift past `max_shift` (63: an int64's 10 bytes), IndexError
    at the end of `buf`."""
    shift = result = 0
    while True:
        byte = buf[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), position
        shift += 7
        if shift > max_shift:
            raise ValueError("varint too long")


def encode_varint(value: int) -> bytes:
    if -64 <= value < 64:  # one byte: most deltas, counts and short lengths
        return _ONE_BYTE_VARINTS[value + 64]
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


_ONE_BYTE_VARINTS = [bytes((((v << 1) ^ (v >> 63)) & 0x7F,)) for v in range(-64, 64)]


def _bytes_field(buf: bytes, position: int) -> tuple[bytes | None, int]:
    length, position = zigzag_varint(buf, position)
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
        length, position = zigzag_varint(buf, position)
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
                fields[index], cursor = zigzag_varint(buf, cursor)
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
        length, position = zigzag_varint(buf, position)
        end = position + length
        cursor = position + 1
        fields = [0, 0, 0]
        for index in range(3):
            byte = buf[cursor]
            if byte < 0x80:
                fields[index] = (byte >> 1) ^ -(byte & 1)
                cursor += 1
            else:
                fields[index], cursor = zigzag_varint(buf, cursor)
        if fields[2] >= 0:
            keys.append((base_offset + fields[1], buf[cursor : cursor + fields[2]]))
        position = end
    return header, keys


def record_heads(
    batch: bytes | memoryview, limit: int, head_bytes: int
) -> tuple[record_walk.HeadTable, record_walk.HeadTable]:
    """The first `head_bytes` of each record's key and of its value (`HeadTable`: each
    distinct head once, and per record which): enough to read a prefix such as a schema
    id without copying payloads. The batch's records must already be validated
    (`record_validation`), and decompress within `limit`.

    Records are read by the compiled walker, a bounded run per call (a thread doing this
    hands the GIL back between runs). A compressed batch is read as it decompresses: the
    memory held is about two chunks whatever the batch expands to, a record larger than
    that being read in pieces (`_Chunks`), only its heads kept."""
    header, stream = _records_stream(batch, limit)
    keys, values = _walker.HeadTable(), _walker.HeadTable()
    count = header.records_count
    while values.records < count:
        before = values.records
        run = min(HEADS_RUN_RECORDS, count - before)
        stream.position = _walker.heads(stream.buf, stream.position, run, head_bytes, keys, values)
        if values.records - before == run:
            continue
        # The next record does not end in the buffer: join the next chunk to it, unless it
        # is larger than a chunk (then it is read in pieces).
        if stream.record_length() > CHUNK_BYTES:
            stream.read_heads(head_bytes, keys, values)
        elif not stream.more():
            raise ValueError("records past the end of the batch")
    return keys, values


def _records_stream(batch: bytes | memoryview, limit: int) -> tuple[BatchHeader, _Chunks]:
    """The batch's header and its records as a forward stream, decompressed as read
    (within `limit`)."""
    header = parse_header(batch)
    payload = memoryview(batch)[BATCH_HEADER_BYTES : header.total_bytes]
    codec = header.attributes & COMPRESSION_MASK
    if codec == NONE:
        chunks: Iterator[bytes] = iter((bytes(payload),))
    else:
        chunks = decompressed_chunks(codec, payload, limit)
    return header, _Chunks(chunks)


class _Chunks:
    """A decompressed record stream read forwards: `buf` holds what is left of the
    previous chunk and the current one."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.buf = b""
        self.position = 0
        self.more()

    def more(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self.buf = self.buf[self.position :] + chunk
        self.position = 0
        return True

    def fill(self, count: int) -> bool:
        """Read chunks until `count` bytes are buffered; False if the stream ends first."""
        while len(self.buf) - self.position < count:
            if not self.more():
                return False
        return True

    def need(self, count: int) -> None:
        if not self.fill(count):
            raise ValueError("records past the end of the batch")

    def skip(self, count: int) -> None:
        while count > len(self.buf) - self.position:
            count -= len(self.buf) - self.position
            self.position = len(self.buf)
            if not self.more():
                raise ValueError("records past the end of the batch")
        self.position += count

    def varint(self) -> tuple[int, int]:
        """A zigzag varint (up to 10 bytes) and how many bytes it took."""
        result = shift = taken = 0
        while True:
            self.need(1)
            byte = self.buf[self.position]
            self.position += 1
            taken += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1), taken
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def take(self, count: int) -> bytes:
        self.need(count)
        taken = self.buf[self.position : self.position + count]
        self.position += count
        return taken

    def record_length(self) -> int:
        """The next record's length, without moving past it."""
        self.fill(10)  # a varint's most; fewer at the stream's end
        return zigzag_varint(self.buf, self.position)[0]

    def read_heads(
        self, head_bytes: int, keys: record_walk.HeadTable, values: record_walk.HeadTable
    ) -> None:
        """The heads of the next record, read in pieces."""
        length, _ = self.varint()
        remaining = length - 1
        self.skip(1)  # attributes
        for _ in range(2):  # timestamp and offset deltas
            _, taken = self.varint()
            remaining -= taken
        for table in (keys, values):
            size, taken = self.varint()
            remaining -= taken
            if size < 0:
                table.note(-1)
                continue
            head = min(size, head_bytes)
            table.add(self.take(head))
            self.skip(size - head)
            remaining -= size
        self.skip(remaining)  # the headers


def header_names(
    batch: bytes | memoryview, limit: int, indexes: set[int], names: frozenset[bytes]
) -> dict[int, set[bytes]]:
    """Which of `names` the headers of each record at `indexes` (positions in the batch)
    carry; read as the batch decompresses (`_Chunks`), only as far as the last of them,
    nothing of the records kept."""
    header, stream = _records_stream(batch, limit)
    longest = max((len(name) for name in names), default=0)
    found: dict[int, set[bytes]] = {}
    for index in range(min(header.records_count, max(indexes, default=-1) + 1)):
        length, _ = stream.varint()
        if index not in indexes:
            stream.skip(length)
            continue
        remaining = length - 1
        stream.skip(1)  # attributes
        for field in range(4):  # timestamp and offset deltas (no bytes follow), key, value
            size, taken = stream.varint()
            remaining -= taken
            if field >= 2 and size > 0:
                stream.skip(size)
                remaining -= size
        count, taken = stream.varint()
        remaining -= taken
        for _ in range(max(count, 0)):
            size, taken = stream.varint()
            remaining -= taken
            if 0 <= size <= longest:
                name = stream.take(size)
                if name in names:
                    found.setdefault(index, set()).add(name)
            elif size > 0:
                stream.skip(size)
            remaining -= max(size, 0)
            size, taken = stream.varint()
            remaining -= taken + max(size, 0)
            stream.skip(max(size, 0))
        stream.skip(remaining)
    return found


def _encode_record(record: Record, base_offset: int, base_timestamp_ms: int) -> bytes:
    body = b"".join(
        (
            bytes((record.attributes,)),
            encode_varint(record.timestamp - base_timestamp_ms),
            encode_varint(record.offset - base_offset),
            encode_varint(-1) if record.key is None else encode_varint(len(record.key)),
            record.key or b"",
            encode_varint(-1) if record.value is None else encode_varint(len(record.value)),
            record.value or b"",
            record.headers,
        )
    )
    return encode_varint(len(body)) + body


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
