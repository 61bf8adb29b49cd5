"""A partition's aborted transactions overlapping a read, from its in-memory index and,
below what that index keeps (`PartitionTransactions.stored_before`), from the metadata
store, as Kafka reads them from its segments' .txnindex files."""

from __future__ import annotations

from contextplane.metadata.store import MetadataStore
from contextplane.storage.partition import PartitionLog
from contextplane.storage.transactions_index import AbortedTxn


async def aborted_overlapping(
    metadata: MetadataStore, partition: PartitionLog, start: int, end: int
) -> list[AbortedTxn]:
    """The aborted transactions (by last offset) overlapping [start, end)."""
    transactions = partition.transactions
    kept = transactions.aborted_in(start, end)
    if not transactions.needs_store(start):
        return kept
    before = transactions.stored_before
    stored = await metadata.aborted_in(partition.stream_id, start, end, before)
    # Memory holds those ending at or after `before`, the store's answer those before.
    return [*(AbortedTxn(*row) for row in stored), *kept]
