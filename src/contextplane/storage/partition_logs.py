"""A claimed partition's log as the storage engine opens it: where its objects end, its
producer state, and an object index that loads its ranges on first need
(partition_index.py). Used at start-up, for partitions moved here and for partitions
recovered from a dead broker's object WAL (wal_takeover.py)."""

from __future__ import annotations

from contextplane.clock import Clock
from contextplane.metadata.records import PartitionRecord, RangeRecord, RangeSummary
from contextplane.metadata.store import MetadataStore
from contextplane.storage.block_cache import BlockCache
from contextplane.storage.memory import MemoryBudget
from contextplane.storage.object_index import ObjectRanges
from contextplane.storage.partition import PartitionLog, load_state
from contextplane.storage.partition_index import FetchRanges, PartitionIndex, RangeStats


def ranges_fetcher(metadata: MetadataStore, blocks: BlockCache, stream_id: int) -> FetchRanges:
    """How a partition's object index loads its ranges when first needed."""

    async def fetch() -> list[RangeRecord]:
        records = await metadata.ranges_of(stream_id)
        blocks.learn(records)  # where its objects hold ranges: spans widen within
        return records

    return fetch


def claimed_log(
    record: PartitionRecord,
    epoch: int,
    summary: RangeSummary | None,
    metadata: MetadataStore,
    blocks: BlockCache,
    budget: MemoryBudget,
    clock: Clock,
) -> PartitionLog:
    """A claimed partition's log as its objects end (`summary` None: it has none yet)."""
    object_end = max(summary.end_offset if summary else 0, record.log_start_offset)
    partition = PartitionLog(
        stream_id=record.stream_id,
        topic=record.topic,
        partition=record.partition,
        leader_epoch=epoch,
        log_start_offset=record.log_start_offset,
        next_offset=object_end,
        high_watermark=object_end,
        object_end_offset=object_end,
        index=PartitionIndex(
            ObjectRanges() if summary is None else None,
            RangeStats.of(summary),
            ranges_fetcher(metadata, blocks, record.stream_id),
            budget,
            clock,
        ),
    )
    load_state(partition, record.producer_state)
    partition.transactions.count_in(budget)
    return partition


def release_memory(partition: PartitionLog) -> None:
    """A log built here that is not served (closed, discarded, fenced while recovered):
    its loaded ranges and aborted-transaction entries leave the memory budget."""
    partition.index.close()
    partition.transactions.uncount()


async def object_ends(
    metadata: MetadataStore, records: list[PartitionRecord]
) -> dict[int, RangeSummary]:
    """The partitions' object ends, read now (a handover's last upload is in)."""
    summaries = {}
    for record in records:
        ranges = await metadata.ranges_of(record.stream_id)
        if ranges:
            summaries[record.stream_id] = RangeSummary(
                record.stream_id,
                ranges[-1].end_offset,
                -1,
                len(ranges),
                ranges[0].max_timestamp,
            )
    return summaries
