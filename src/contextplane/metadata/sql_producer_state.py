"""Producer state rows: one row per (stream, producer id) and one per aborted
transaction (migration 0009).

An object commit upserts the rows of the producers touched since the previous commit and
deletes those forgotten (expired), appends the aborted transactions closed since, and
drops those below the log start: its cost follows what changed, not the partition's
producer table (which an unprivileged writer can grow to hundreds of thousands of ids).
The batches of a row are serialised here, on the store's worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Collection

from contextplane import limits
from contextplane.metadata.records import (
    AbortedRow,
    ProducerRow,
    ProducerStateDelta,
    StoredProducerState,
)
from contextplane.metadata.sql_db import Db


def write(db: Db, deltas: dict[int, ProducerStateDelta], committed: Collection[int]) -> None:
    """Apply the committed streams' deltas (inside the commit's transaction)."""
    upserts: list[tuple[int, int, int | None, str, int | None]] = []
    deletes: list[tuple[int, int]] = []
    aborted: list[tuple[int, int, int, int]] = []
    trims: list[tuple[int, int]] = []
    for stream_id, delta in deltas.items():
        if stream_id not in committed:
            continue
        upserts.extend(
            (stream_id, r.producer_id, r.epoch, json.dumps(r.batches), r.txn_first_offset)
            for r in delta.upserts
        )
        deletes.extend((stream_id, producer_id) for producer_id in delta.deletes)
        aborted.extend((stream_id, a[2], a[0], a[1]) for a in delta.aborted)
        trims.append((stream_id, delta.log_start_offset))
    db.executemany(
        "INSERT INTO producer_states"
        " (stream_id, producer_id, epoch, batches, txn_first_offset) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (stream_id, producer_id) DO UPDATE SET epoch=excluded.epoch,"
        " batches=excluded.batches, txn_first_offset=excluded.txn_first_offset",
        upserts,
    )
    db.executemany("DELETE FROM producer_states WHERE stream_id=? AND producer_id=?", deletes)
    db.executemany(
        "INSERT INTO aborted_transactions"
        " (stream_id, last_offset, producer_id, first_offset) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (stream_id, last_offset) DO UPDATE SET producer_id=excluded.producer_id,"
        " first_offset=excluded.first_offset",
        aborted,
    )
    db.executemany("DELETE FROM aborted_transactions WHERE stream_id=? AND last_offset < ?", trims)


def load(db: Db, topic: str | None) -> dict[int, StoredProducerState]:
    """The stored state of every stream (of `topic`, if given) that has any."""
    where, args = (
        ("", ())
        if topic is None
        else (
            " WHERE stream_id IN (SELECT stream_id FROM partitions WHERE topic=?)",
            (topic,),
        )
    )
    states: dict[int, StoredProducerState] = {}
    for stream_id, producer_id, epoch, batches, txn_first in db.execute(
        "SELECT stream_id, producer_id, epoch, batches, txn_first_offset FROM producer_states"
        + where,
        args,
    ):
        state = states.setdefault(stream_id, StoredProducerState())
        rows = [tuple(b) for b in json.loads(batches)]
        state.producers.append(ProducerRow(producer_id, epoch, rows, txn_first))  # type: ignore[arg-type]
    # Each stream's latest (at most ABORTED_TXNS_IN_MEMORY_MAX, fewer when many streams
    # have some: ABORTED_TXNS_LOADED_MAX in all), and whether there are older ones.
    (streams,) = db.execute(
        "SELECT COUNT(DISTINCT stream_id) FROM aborted_transactions" + where, args
    ).fetchone()
    kept = min(
        limits.ABORTED_TXNS_IN_MEMORY_MAX,
        max(limits.ABORTED_TXNS_IN_MEMORY_FLOOR, limits.ABORTED_TXNS_LOADED_MAX // max(1, streams)),
    )
    for stream_id, last_offset, producer_id, first_offset, recent in db.execute(
        "SELECT stream_id, last_offset, producer_id, first_offset, recent FROM ("
        " SELECT stream_id, last_offset, producer_id, first_offset, ROW_NUMBER() OVER"
        " (PARTITION BY stream_id ORDER BY last_offset DESC) AS recent"
        " FROM aborted_transactions" + where + ") AS latest WHERE recent <= ?"
        " ORDER BY stream_id, last_offset",
        (*args, kept + 1),
    ):
        state = states.setdefault(stream_id, StoredProducerState())
        if recent > kept:
            state.aborted_truncated = True  # one more than kept: there are older ones
            continue
        state.aborted.append((producer_id, first_offset, last_offset))
    return states


def aborted_in(db: Db, stream_id: int, start: int, end: int, before: int) -> list[AbortedRow]:
    """The stream's stored aborted transactions overlapping [start, end) whose marker
    lies before `before` (a seek on the primary key, bounded by `before`)."""
    rows = db.execute(
        "SELECT producer_id, first_offset, last_offset FROM aborted_transactions"
        " WHERE stream_id=? AND last_offset >= ? AND last_offset < ? AND first_offset < ?"
        " ORDER BY last_offset",
        (stream_id, start, before, end),
    ).fetchall()
    return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]
