"""The aborted transactions a read_committed Fetch lists with a partition's records, from
the leader's transaction index or a read replica's mirror of the stored one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contextplane.broker.read_receipts import returned_range_of
from contextplane.metadata.store import MetadataStore
from contextplane.storage.aborted_reads import aborted_between
from contextplane.storage.partition import PartitionLog
from contextplane.storage.transactions_index import AbortedTxn, aborted_in, aborted_since


def aborted_entries(
    aborted: list[AbortedTxn], fetch_offset: int, chunks: bytes | Sequence[bytes | memoryview]
) -> list[dict[str, Any]]:
    """The response's entries for the aborted transactions (of `aborted`, by last offset)
    the returned batches may hold: the client drops their records (from each first offset
    to the producer's ABORT marker). Bounded by the data returned, as Kafka's
    LocalLog.collectAbortedTransactions is, not by the LSO: a small fetch over many
    aborted transactions lists few. The returned batches are walked only when some
    aborted transaction may be among them."""
    if not aborted_since(aborted, fetch_offset):
        return []
    returned = returned_range_of(fetch_offset, chunks)
    if returned is None:
        return []
    return [
        {"producer_id": a.producer_id, "first_offset": a.first_offset}
        for a in aborted_in(aborted, fetch_offset, returned[1] + 1)
    ]


async def stored_aborted_entries(
    metadata: MetadataStore,
    stream_id: int,
    kept: list[AbortedTxn],
    stored_before: int,
    fetch_offset: int,
    chunks: bytes | Sequence[bytes | memoryview],
) -> list[dict[str, Any]]:
    """`aborted_entries` where memory keeps only those ending at or after
    `stored_before` (`kept`): the rest, when the fetch reads below it, from the store."""
    if fetch_offset >= stored_before:
        return aborted_entries(kept, fetch_offset, chunks)
    returned = returned_range_of(fetch_offset, chunks)
    if returned is None:
        return []
    found = await aborted_between(
        metadata, stream_id, kept, stored_before, fetch_offset, returned[1] + 1
    )
    return [{"producer_id": a.producer_id, "first_offset": a.first_offset} for a in found]


async def leader_aborted_entries(
    metadata: MetadataStore,
    partition: PartitionLog,
    fetch_offset: int,
    chunks: bytes | Sequence[bytes | memoryview],
) -> list[dict[str, Any]]:
    """`aborted_entries` for a partition led here: its transaction index, and the store
    for what the index no longer keeps in memory (`storage/aborted_reads.py`)."""
    transactions = partition.transactions
    return await stored_aborted_entries(
        metadata,
        partition.stream_id,
        transactions.aborted,
        transactions.stored_before,
        fetch_offset,
        chunks,
    )
