"""The aborted transactions overlapping a read, from an index that keeps in memory only
those ending at or after `stored_before` (a partition's `PartitionTransactions`, a read
replica's mirror) and, below that, from the metadata store, as Kafka reads them from its
segments' .txnindex files."""

from __future__ import annotations

from contextplane.metadata.store import MetadataStore
from contextplane.storage.partition import PartitionLog
from contextplane.storage.transactions_index import AbortedTxn, aborted_in


async def aborted_between(
    metadata: MetadataStore,
    stream_id: int,
    kept: list[AbortedTxn],
    stored_before: int,
    start: int,
    end: int,
) -> list[AbortedTxn]:
    """The aborted transactions (by last offset) overlapping [start, end): those of
    `kept`, and, when `start` is below `stored_before`, the store's ending before it."""
    found = aborted_in(kept, start, end)
    if start >= stored_before:
        return found
    stored = await metadata.aborted_in(stream_id, start, end, stored_before)
    # Memory holds those ending at or after `stored_before`, the store's answer those before.
    return [*(AbortedTxn(*row) for row in stored), *found]


async def aborted_overlapping(
    metadata: MetadataStore, partition: PartitionLog, start: int, end: int
) -> list[AbortedTxn]:
    """`aborted_between` for a partition led here."""
    transactions = partition.transactions
    return await aborted_between(
        metadata,
        partition.stream_id,
        transactions.aborted,
        transactions.stored_before,
        start,
        end,
    )
