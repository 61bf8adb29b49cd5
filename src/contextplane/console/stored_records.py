"""Committed records of a partition this broker leads, read through the storage engine as a
read_committed fetch reads them (never through a Kafka client): up to the last stable
offset, control batches and aborted transactions' records left out.

`StoredMessage` answers the accessors of confluent-kafka's `Message` that the trace reader
uses (`services/trace/reader.py`), so its logic follows links over these records too.
Every read is bounded: `bytes_max` of batches in all, each batch's records decompressed
to at most `DECOMPRESSED_BYTES_MAX`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from contextplane.protocol.record_codec import read_records, zigzag_varint
from contextplane.protocol.records import BatchHeader
from contextplane.storage.aborted_reads import aborted_overlapping
from contextplane.storage.reader import READ_COMMITTED
from contextplane.storage.transactions_index import AbortedTxn

if TYPE_CHECKING:
    from contextplane.storage.engine import StorageEngine
    from contextplane.storage.partition import PartitionLog

DECOMPRESSED_BYTES_MAX = 16 * 1024 * 1024
READ_CHUNK_BYTES = 1024 * 1024
HEADERS_MAX = 1000  # a record's headers decoded, at most
_CREATE_TIME = 0


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One record, with the accessors of confluent-kafka's `Message`."""

    topic_name: str
    partition_index: int
    at: int
    stamp_ms: int
    key_bytes: bytes | None
    value_bytes: bytes | None
    header_list: list[tuple[str, bytes | None]]

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return self.partition_index

    def offset(self) -> int:
        return self.at

    def timestamp(self) -> tuple[int, int]:
        return _CREATE_TIME, self.stamp_ms

    def key(self) -> bytes | None:
        return self.key_bytes

    def value(self) -> bytes | None:
        return self.value_bytes

    def headers(self) -> list[tuple[str, bytes | None]]:
        return self.header_list


async def committed_records(
    log: StorageEngine, partition: PartitionLog, start: int, end: int, bytes_max: int
) -> tuple[list[StoredMessage], int]:
    """The committed records of [start, end) (end at most the last stable offset) within
    `bytes_max` of batches, and the offset the read stopped at (`end` when all were read)."""
    end = min(end, partition.last_stable_offset)
    aborted = await aborted_overlapping(log.metadata, partition, start, end)
    found: list[StoredMessage] = []
    position, left = max(start, partition.log_start_offset), bytes_max
    while position < end and left > 0:
        batches = await log.read(
            partition, position, min(left, READ_CHUNK_BYTES), True, READ_COMMITTED
        )
        if not batches:
            break
        for batch in batches:
            left -= len(batch)
            header, records = read_records(batch, DECOMPRESSED_BYTES_MAX)
            position = max(position, header.base_offset + header.last_offset_delta + 1)
            if header.is_control or _aborted(header, aborted):
                continue
            found.extend(
                StoredMessage(
                    partition.topic,
                    partition.partition,
                    record.offset,
                    record.timestamp,
                    None if record.key is None else bytes(record.key),
                    None if record.value is None else bytes(record.value),
                    decode_headers(record.headers),
                )
                for record in records
                if start <= record.offset < end
            )
    return found, min(position, end)


def _aborted(header: BatchHeader, aborted: list[AbortedTxn]) -> bool:
    """A transactional batch inside one of its producer's aborted transactions."""
    return header.is_transactional and any(
        a.producer_id == header.producer_id and a.first_offset <= header.base_offset < a.last_offset
        for a in aborted
    )


def decode_headers(raw: bytes | memoryview) -> list[tuple[str, bytes | None]]:
    """A record's encoded headers (a varint count, then each key and value with a varint
    length; -1 a null value); what cannot be decoded ends the list."""
    buf = bytes(raw)
    headers: list[tuple[str, bytes | None]] = []
    try:
        count, cursor = zigzag_varint(buf, 0)
        for _ in range(min(count, HEADERS_MAX)):
            size, cursor = zigzag_varint(buf, cursor)
            if size < 0 or cursor + size > len(buf):
                break
            name = buf[cursor : cursor + size].decode(errors="backslashreplace")
            cursor += size
            size, cursor = zigzag_varint(buf, cursor)
            value = None if size < 0 else buf[cursor : cursor + size]
            cursor += max(size, 0)
            headers.append((name, value))
    except (IndexError, ValueError):
        pass
    return headers
