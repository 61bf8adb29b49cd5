"""The SQLite statements of object lifetimes (migration 0007): objects no range references
any more wait in `objects_to_delete` until they are due; the cleaner's swap of a
partition's ranges; which keys the store knows (the orphan sweep). The engine and store
methods over them are mixed into `SqliteEngine` and `SqliteMetadataStore`.

An object leaves `objects` in the transaction that drops its last range and enters
`objects_to_delete` in that same transaction, so no crash can lose track of it: it is
either referenced, or due for deletion, or (only between a PUT and its commit) unknown,
which is what the orphan sweep looks for.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from contextplane.metadata.records import RangeSwap


def unreference_orphans(db: sqlite3.Connection, due_ms: int) -> list[str]:
    """Move objects no range references into `objects_to_delete`, due at `due_ms` (an
    object already waiting keeps the later of its two due times); returns their keys."""
    rows = db.execute(
        "SELECT object_id, key FROM objects WHERE object_id NOT IN"
        " (SELECT DISTINCT object_id FROM ranges)"
    ).fetchall()
    db.executemany("DELETE FROM objects WHERE object_id=?", [(r[0],) for r in rows])
    db.executemany(
        "INSERT INTO objects_to_delete (key, due_ms) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET due_ms=MAX(due_ms, excluded.due_ms)",
        [(r[1], due_ms) for r in rows],
    )
    return [r[1] for r in rows]


def _chunks(keys: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


class ObjectRows:
    """`SqliteEngine`'s object lifetime methods (over its connection and transactions)."""

    _db: sqlite3.Connection

    def due_deletions(self, now_ms: int, limit: int) -> list[str]:
        rows = self._db.execute(
            "SELECT key FROM objects_to_delete WHERE due_ms <= ? ORDER BY due_ms LIMIT ?",
            (now_ms, limit),
        ).fetchall()
        return [r[0] for r in rows]

    def next_deletion_due(self) -> int | None:
        row = self._db.execute("SELECT MIN(due_ms) FROM objects_to_delete").fetchone()
        return None if row[0] is None else int(row[0])

    def forget_deletions(self, keys: list[str]) -> None:
        engine: Any = self  # a SqliteEngine: its BEGIN IMMEDIATE ... COMMIT
        with engine._transaction():
            self._db.executemany("DELETE FROM objects_to_delete WHERE key=?", [(k,) for k in keys])

    def cleaner_states(self) -> dict[int, dict[str, Any]]:
        rows = self._db.execute("SELECT stream_id, cleaner_state FROM partitions").fetchall()
        return {int(r[0]): json.loads(r[1]) for r in rows}

    def known_objects(self, keys: list[str]) -> set[str]:
        """The keys of `keys` that a range references or that wait for deletion."""
        known: set[str] = set()
        for chunk in _chunks(keys):
            marks = ",".join("?" * len(chunk))
            for table in ("objects", "objects_to_delete"):
                known.update(
                    r[0]
                    for r in self._db.execute(
                        f"SELECT key FROM {table} WHERE key IN ({marks})",  # noqa: S608
                        chunk,
                    )
                )
        return known

    def swap_ranges(self, swap: RangeSwap) -> bool:
        """The cleaner's swap, in one transaction: if the stream's leader epoch is still
        `swap.epoch` and its ranges in [base, end) are still exactly those the cleaner
        read, replace them by the new object's ranges and move objects left unreferenced
        to `objects_to_delete`. False (nothing changed) otherwise."""
        engine: Any = self
        db = self._db
        with engine._transaction():
            row = db.execute(
                "SELECT leader_epoch FROM partitions WHERE stream_id=?", (swap.stream_id,)
            ).fetchone()
            if row is None or row[0] != swap.epoch:
                return False
            current = db.execute(
                "SELECT r.base_offset, o.key FROM ranges r JOIN objects o"
                " ON o.object_id = r.object_id WHERE r.stream_id=? AND r.base_offset >= ?"
                " AND r.base_offset < ? ORDER BY r.base_offset",
                (swap.stream_id, swap.base_offset, swap.end_offset),
            ).fetchall()
            if [tuple(r) for r in current] != [tuple(r) for r in swap.replaced]:
                return False
            db.execute(
                "DELETE FROM ranges WHERE stream_id=? AND base_offset >= ? AND base_offset < ?",
                (swap.stream_id, swap.base_offset, swap.end_offset),
            )
            if swap.ranges:
                cursor = db.execute(
                    "INSERT INTO objects (key, size, created_ms) VALUES (?, ?, ?)",
                    (swap.key, swap.size, swap.created_ms),
                )
                db.executemany(
                    "INSERT INTO ranges (stream_id, base_offset, end_offset, object_id,"
                    " position, size, max_timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (r.stream_id, r.base_offset, r.end_offset, cursor.lastrowid,
                         r.position, r.size, r.max_timestamp)
                        for r in swap.ranges
                    ],
                )  # fmt: skip
            db.execute(
                "UPDATE partitions SET cleaner_state=? WHERE stream_id=?",
                (json.dumps(swap.cleaner_state), swap.stream_id),
            )
            unreference_orphans(db, swap.delete_due_ms)
        return True


class ObjectCalls:
    """`SqliteMetadataStore`'s object lifetime methods, run on its worker thread."""

    async def due_deletions(self, now_ms: int, limit: int) -> list[str]:
        store: Any = self  # a SqliteMetadataStore
        result: list[str] = await store._call(store.engine.due_deletions, now_ms, limit)
        return result

    async def next_deletion_due(self) -> int | None:
        store: Any = self
        result: int | None = await store._call(store.engine.next_deletion_due)
        return result

    async def forget_deletions(self, keys: list[str]) -> None:
        store: Any = self
        await store._call(store.engine.forget_deletions, keys)

    async def cleaner_states(self) -> dict[int, dict[str, Any]]:
        store: Any = self
        result: dict[int, dict[str, Any]] = await store._call(store.engine.cleaner_states)
        return result

    async def known_objects(self, keys: list[str]) -> set[str]:
        store: Any = self
        result: set[str] = await store._call(store.engine.known_objects, keys)
        return result

    async def swap_ranges(self, swap: RangeSwap) -> bool:
        store: Any = self
        result: bool = await store._call(store.engine.swap_ranges, swap)
        return result
