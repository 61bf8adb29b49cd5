"""A read replica's refresh query (RFC 0004 §7, storage/read_replica.py)."""

from __future__ import annotations

from contextplane import limits
from contextplane.metadata.records import RangeRecord, ReplicaRanges
from contextplane.metadata.sql_db import Db


def replica_ranges(
    db: Db, topic: str, partition: int, since: int, aborted_since: int = -1
) -> ReplicaRanges | None:
    """A read replica's refresh (RFC 0004 §7): the partition's stream, log start and
    ranges starting at or after `since`, in offset order (primary-key seeks), then its
    oldest open transaction's first offset and the aborted transactions ending at or
    after `aborted_since` (index seeks); None when the partition does not exist.

    No transaction: each statement may see later commits than the one before (as
    PostgreSQL's read committed statements do), so the transaction state is read last
    and is as of the ranges' end or later. Later is safe: a transaction open at the
    ranges' end and closed since ended with a durable marker, a commit (its records
    are committed) or an abort (listed among the aborted)."""
    row = db.execute(
        "SELECT stream_id, log_start_offset FROM partitions WHERE topic=? AND partition=?",
        (topic, partition),
    ).fetchone()
    if row is None:
        return None
    stream_id = row[0]
    rows = db.execute(
        "SELECT r.stream_id, r.base_offset, r.end_offset, o.key, r.position, r.size,"
        " r.max_timestamp, COALESCE(r.created_ms, o.created_ms) FROM ranges r"
        " JOIN objects o ON o.object_id = r.object_id WHERE r.stream_id=?"
        " AND r.base_offset >= ? ORDER BY r.base_offset",
        (stream_id, since),
    ).fetchall()
    open_first = db.execute(
        "SELECT MIN(txn_first_offset) FROM producer_states"
        " WHERE stream_id=? AND txn_first_offset IS NOT NULL",
        (stream_id,),
    ).fetchone()
    # The latest ABORTED_TXNS_IN_MEMORY_MAX asked (and one more: whether there are older).
    aborted = db.execute(
        "SELECT producer_id, first_offset, last_offset FROM aborted_transactions"
        " WHERE stream_id=? AND last_offset >= ? ORDER BY last_offset DESC LIMIT ?",
        (stream_id, aborted_since, limits.ABORTED_TXNS_IN_MEMORY_MAX + 1),
    ).fetchall()[::-1]
    truncated = len(aborted) > limits.ABORTED_TXNS_IN_MEMORY_MAX
    if truncated:
        aborted = aborted[1:]
    return ReplicaRanges(
        stream_id,
        row[1],
        [RangeRecord(*r) for r in rows],
        None if open_first is None or open_first[0] is None else int(open_first[0]),
        [(int(a[0]), int(a[1]), int(a[2])) for a in aborted],
        truncated,
    )
