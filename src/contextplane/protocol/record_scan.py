"""Record-level reads of a stored batch (timestamp lookups; never the hot path).

Records are read as a stream (`record_validation.read_records`): decompression is
bounded and key and value bytes are skipped, so even a batch stored before record
validation existed costs at most a chunk of memory.
"""

from __future__ import annotations

from collections.abc import Iterator

from contextplane.protocol.record_validation import read_records
from contextplane.protocol.records import TIMESTAMP_TYPE_BIT, BatchHeader, parse_header


def record_timestamps(batch: bytes) -> Iterator[tuple[int, int]]:
    """(offset, timestamp) of each record in one batch; stops at a malformed record."""
    header: BatchHeader = parse_header(batch)
    if header.attributes & TIMESTAMP_TYPE_BIT:  # LogAppendTime: every record has max_timestamp
        for delta in range(header.records_count):
            yield header.base_offset + delta, header.max_timestamp
        return
    for offset_delta, timestamp_delta in read_records(header, batch):
        yield header.base_offset + offset_delta, header.base_timestamp + timestamp_delta
