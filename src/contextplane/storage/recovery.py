"""Start-up recovery: the WAL tail past each partition's committed objects goes back into
the log cache, producer state and offsets.

Entries below a partition's committed object end are already in objects (the WAL is
trimmed only after a commit, so some may remain); entries between that end and the log
start (DeleteRecords cut them off before their upload) are replayed whole. Entries of
streams no longer led here (a deleted topic) are skipped. Replay keeps only what the
memory budget allows in memory; older batches are read back from the WAL when uploaded
or fetched.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Collection, Iterable, Mapping

from contextplane.protocol.records import parse_header
from contextplane.storage.log_cache import LogCache
from contextplane.storage.partition import CachedBatch, PartitionLog, track_transaction
from contextplane.storage.wal import WalEntry

log = logging.getLogger(__name__)


async def replay(
    pages: AsyncIterable[Iterable[WalEntry]],
    partitions: Mapping[int, PartitionLog],
    log_cache: LogCache,
    replayable: Collection[int] | None = None,
) -> int:
    """Replay `pages` (the WAL's durable entries, oldest first, in pages) into `partitions` (by
    stream id); returns how many were replayed. With `replayable`, the tail of any other
    stream is dropped, with one warning: this node no longer led it when it stopped, or
    another leader took it since (RFC 0004 §5), so that tail is not its log any more."""
    replayed = 0
    dropped: dict[int, int] = {}
    # Where each partition's committed objects end: below that the snapshot committed
    # with the objects holds the producer state. Between it and the log start lie
    # batches DeleteRecords cut off before they were uploaded: they are replayed and go
    # to an object as they would have without the restart, so their producer state is
    # committed with it (the WAL is trimmed after that, and would take it away).
    uploaded_end = {stream_id: p.index.uploaded_end for stream_id, p in partitions.items()}
    async for entries in pages:
        for entry in entries:
            partition = partitions.get(entry.stream_id)
            if partition is None:
                continue  # a deleted topic
            header = parse_header(entry.batch)
            end = entry.base_offset + header.last_offset_delta + 1
            if end <= uploaded_end[entry.stream_id] or (
                partition.cache and entry.base_offset < partition.cache[-1].end_offset
            ):
                continue  # in an object already (or replayed already)
            if replayable is not None and entry.stream_id not in replayable:
                dropped[entry.stream_id] = dropped.get(entry.stream_id, 0) + 1
                continue
            if entry.base_offset < partition.object_end_offset:
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
            track_transaction(partition, header, entry.batch, entry.base_offset)
            partition.next_offset = max(partition.next_offset, end)
            partition.advance_high_watermark(end)
            replayed += 1
    if dropped:
        log.warning(
            "dropped %d WAL entries of %d partitions another leader took while this"
            " broker was away (streams %s)",
            sum(dropped.values()),
            len(dropped),
            ", ".join(map(str, sorted(dropped)[:20])),
        )
    return replayed
