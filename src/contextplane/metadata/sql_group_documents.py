"""One opaque document per group in a table keyed by group id: the shape the classic
group table (migration 0015) and the share group membership table (0016) share. What a
document holds is the coordinator's business (coordinators/classic_stored.py,
coordinators/share_stored.py); here it is bytes. One save is one transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from contextplane.metadata.sql_db import Db

# The tables of this shape (a literal, so no caller can put other text in a statement).
GroupTable = Literal["classic_groups", "share_groups"]


def load(db: Db, table: GroupTable) -> dict[str, bytes]:
    return {
        group_id: bytes(metadata)
        for group_id, metadata in db.execute(f"SELECT group_id, metadata FROM {table}")
    }


def save_one(db: Db, table: GroupTable, group_id: str, metadata: bytes | None) -> None:
    if metadata is None:
        db.execute(f"DELETE FROM {table} WHERE group_id=?", (group_id,))
        return
    db.execute(
        f"INSERT INTO {table} (group_id, metadata) VALUES (?, ?)"
        " ON CONFLICT (group_id) DO UPDATE SET metadata=excluded.metadata",
        (group_id, metadata),
    )


def save_all(
    engine: Any,
    table: GroupTable,
    writes: dict[str, bytes | None],
    fences: Collection[tuple[int, int]] = (),
) -> None:
    """Every write (None deletes) in one transaction of `engine` (a SqlEngine: its
    transactions and disk-full retry), once each coordinator shard of `fences` is still
    at its epoch (else CoordinatorFenced, nothing written)."""

    def run() -> None:
        with engine._transaction():
            engine.check_shards(fences)
            for group_id, metadata in sorted(writes.items()):
                save_one(engine._db, table, group_id, metadata)

    engine._run_write(run)
