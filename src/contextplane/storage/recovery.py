"""Start-up recovery: the WAL tail past each partition's committed objects goes back into
the log cache, producer state and offsets.

Entries below a partition's committed object end are already in objects (the WAL is
trimmed only after a commit, so some may remain), or below its log start; a batch that
the log start cuts in two is replayed whole. Entries of streams no longer led here
(a deleted topic) are skipped. Replay keeps only what the memory budget allows in memory;
older batches are read back from the WAL when uploaded or fetched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from contextplane.protocol.records import parse_header
from contextplane.storage.log_cache import LogCache
from contextplane.storage.partition import CachedBatch, PartitionLog
from contextplane.storage.wal import WalEntry


def replay(
    entries: Iterable[WalEntry], partitions: Mapping[int, PartitionLog], log_cache: LogCache
) -> int:
    """Replay `entries` (the WAL's durable entries, oldest first) into `partitions` (by
    stream id); returns how many were replayed."""
    replayed = 0
    for entry in entries:
        partition = partitions.get(entry.stream_id)
        if partition is None:
            continue  # a deleted topic
        header = parse_header(entry.batch)
        end = entry.base_offset + header.last_offset_delta + 1
        if end <= partition.object_end_offset:
            # Already in an object (the snapshot holds its producer state: recording it
            # again is a no-op), or wholly below the log start: DeleteRecords does not
            # make the producer forget its sequence, so its state is kept.
            partition.producers.record(header, entry.base_offset)
            continue
        if entry.base_offset < partition.object_end_offset:
            # The log start (DeleteRecords) cut this batch before it was uploaded: its
            # offsets from the log start on are still the log's, and it goes to an object
            # whole, as it would have without the restart.
            partition.object_end_offset = entry.base_offset
        log_cache.add(
            partition,
            CachedBatch(
                entry.base_offset,
                end,
                header.max_timestamp,
                entry.batch,
                entry.position,
                len(entry.batch),
            ),
        )
        partition.producers.record(header, entry.base_offset)
        partition.next_offset = end
        partition.advance_high_watermark(end)
        replayed += 1
    return replayed
