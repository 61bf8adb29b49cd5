"""Which retained data retention may delete: pure functions over a partition's ranges.

Kafka deletes whole *closed* segments: a segment whose largest timestamp is older than
`retention.ms`, or the oldest segments while the log minus that segment is still at least
`retention.bytes`. The active (newest) segment is never deleted, so records produced just
now with an old CreateTime stay until their segment rolls.

Here a partition's data is a list of ranges, one per uploaded object. Segments are
derived from them the way Kafka rolls on append: a range starts a new segment when the
current one would exceed `segment.bytes`, or when the current segment's first upload is
`segment.ms` older than this range's upload. The last segment is the active one.
"""

from __future__ import annotations

from collections.abc import Sequence

from contextplane.metadata.store import RangeRecord
from contextplane.storage.partition_index import RangeStats


def segments(
    ranges: Sequence[RangeRecord], segment_bytes: int, segment_ms: int
) -> list[list[RangeRecord]]:
    result: list[list[RangeRecord]] = []
    size = 0
    for record in ranges:
        if result:
            current = result[-1]
            rolls = (
                size + record.size > segment_bytes
                or record.created_ms - current[0].created_ms >= segment_ms
            )
            if not rolls:
                current.append(record)
                size += record.size
                continue
        result.append([record])
        size = record.size
    return result


def retention_start(
    ranges: Sequence[RangeRecord],
    now_ms: int,
    retention_ms: int,
    retention_bytes: int,
    segment_bytes: int,
    segment_ms: int,
) -> int | None:
    """The new log start offset retention asks for, or None to keep everything."""
    closed = segments(ranges, segment_bytes, segment_ms)[:-1]
    total = sum(r.size for r in ranges)
    new_start: int | None = None
    for segment in closed:
        expired = (
            retention_ms >= 0 and max(r.max_timestamp for r in segment) < now_ms - retention_ms
        )
        size = sum(r.size for r in segment)
        oversize = retention_bytes >= 0 and total - size >= retention_bytes
        if not (expired or oversize):
            break
        total -= size
        new_start = segment[-1].end_offset
    return new_start


def may_delete(stats: RangeStats, now_ms: int, retention_ms: int, retention_bytes: int) -> bool:
    """Whether `retention_start` could move the log start, judged from a partition's
    summary without its ranges. It deletes only closed segments, so there are at least
    two ranges; the first closed segment goes only if it expired — its largest timestamp,
    at least its first range's, is below the cutoff — or if the log without it still
    holds `retention.bytes`, which needs the total to be at least that (or unknown:
    start-up does not sum the sizes)."""
    if not stats.exact:
        return True  # a swap or log-start move changed the ranges unseen
    if stats.range_count < 2:
        return False
    expired = retention_ms >= 0 and stats.first_max_timestamp < now_ms - retention_ms
    oversize = retention_bytes >= 0 and not 0 <= stats.retained_bytes < retention_bytes
    return expired or oversize
