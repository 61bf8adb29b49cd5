"""The statements of the share group membership table (migration 0016), and the engine and store
methods over it (mixed into `SqlEngine` and `SqlMetadataStore`).

A row's value is the group's membership (coordinators/share_stored.py writes
and reads it); here it is opaque bytes. One save is one transaction.
"""

from __future__ import annotations

from typing import Any

from contextplane.metadata.sql_db import Db


def load(db: Db) -> dict[str, bytes]:
    return {
        group_id: bytes(metadata)
        for group_id, metadata in db.execute("SELECT group_id, metadata FROM share_groups")
    }


def save(db: Db, group_id: str, metadata: bytes | None) -> None:
    if metadata is None:
        db.execute("DELETE FROM share_groups WHERE group_id=?", (group_id,))
        return
    db.execute(
        "INSERT INTO share_groups (group_id, metadata) VALUES (?, ?)"
        " ON CONFLICT (group_id) DO UPDATE SET metadata=excluded.metadata",
        (group_id, metadata),
    )


class ShareGroupRows:
    """`SqlEngine`'s share group membership methods (over its connection and transactions)."""

    _db: Db

    def share_groups(self) -> dict[str, bytes]:
        return load(self._db)

    def save_share_groups(self, writes: dict[str, bytes | None]) -> None:
        engine: Any = self  # a SqlEngine: its transactions and disk-full retry

        def run() -> None:
            with engine._transaction():
                for group_id, metadata in sorted(writes.items()):
                    save(self._db, group_id, metadata)

        engine._run_write(run)


class ShareGroupCalls:
    """`SqlMetadataStore`'s share group membership methods, run on its worker thread."""

    async def share_groups(self) -> dict[str, bytes]:
        store: Any = self  # a SqlMetadataStore
        result: dict[str, bytes] = await store._call(store.engine.share_groups)
        return result

    async def save_share_groups(self, writes: dict[str, bytes | None]) -> None:
        store: Any = self
        await store._call(store.engine.save_share_groups, writes)
