"""Committed group offsets in SQL: the one statement that writes them, used by an
OffsetCommit and by the commit of a transaction's pending offsets."""

from __future__ import annotations

from collections.abc import Iterable

from contextplane.metadata.records import OffsetRow
from contextplane.metadata.sql_db import Db


def upsert_group_offsets(db: Db, group_id: str, rows: Iterable[OffsetRow], now_ms: int) -> None:
    db.executemany(
        "INSERT INTO group_offsets VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT"
        " (group_id, topic, partition) DO UPDATE SET committed_offset=excluded."
        "committed_offset, leader_epoch=excluded.leader_epoch,"
        " metadata=excluded.metadata, commit_ms=excluded.commit_ms",
        [
            (group_id, r.topic, r.partition, r.offset, r.leader_epoch, r.metadata, now_ms)
            for r in rows
        ],
    )
