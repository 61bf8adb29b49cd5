"""The statements of object lifetimes (migrations 0007, 0008): objects no range
references any more wait in `objects_to_delete` until they are due; the cleaner's swap of
a partition's ranges; object compaction's candidates and its swap of many streams' ranges;
which keys the store knows (the orphan sweep). The engine and store
methods over them are mixed into `SqlEngine` and `SqlMetadataStore`.

An object leaves `objects` in the transaction that drops its last range and enters
`objects_to_delete` in that same transaction, so no crash can lose track of it: it is
either referenced, or due for deletion, or (only between a PUT and its commit) unknown,
which is what the orphan sweep looks for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from contextplane.metadata.records import (
    CompactedObject,
    ObjectSummary,
    ObjectSwap,
    ObjectUsage,
    RangeRecord,
    RangeSwap,
    SwapOutcome,
)
from contextplane.metadata.sql_db import Db


def unreference_orphans(db: Db, due_ms: int) -> list[str]:
    """Move objects no range references into `objects_to_delete`, due at `due_ms` (an
    object already waiting keeps the later of its two due times); returns their keys."""
    rows = db.execute(
        "SELECT object_id, key FROM objects WHERE object_id NOT IN"
        " (SELECT DISTINCT object_id FROM ranges)"
    ).fetchall()
    db.executemany("DELETE FROM objects WHERE object_id=?", [(r[0],) for r in rows])
    db.executemany(
        "INSERT INTO objects_to_delete (key, due_ms) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET due_ms=CASE WHEN objects_to_delete.due_ms >"
        " excluded.due_ms THEN objects_to_delete.due_ms ELSE excluded.due_ms END",
        [(r[1], due_ms) for r in rows],
    )
    return [r[1] for r in rows]


def insert_object(db: Db, key: str, size: int, created_ms: int, level: int, streams: int) -> int:
    """Insert an object row; returns its id."""
    (object_id,) = db.execute(
        "INSERT INTO objects (key, size, created_ms, level, streams) VALUES (?, ?, ?, ?, ?)"
        " RETURNING object_id",
        (key, size, created_ms, level, streams),
    ).fetchone()
    return int(object_id)


def _chunks(keys: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


class ObjectRows:
    """`SqlEngine`'s object lifetime methods (over its connection and transactions)."""

    _db: Db

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
        engine: Any = self  # a SqlEngine: its transactions
        with engine._transaction():
            self._db.executemany("DELETE FROM objects_to_delete WHERE key=?", [(k,) for k in keys])

    def cleaner_states(self) -> dict[int, dict[str, Any]]:
        rows = self._db.execute("SELECT stream_id, cleaner_state FROM partitions").fetchall()
        return {int(r[0]): json.loads(r[1]) for r in rows}

    def any_object(self) -> str | None:
        """The key of one referenced object, or None when no range references any."""
        row = self._db.execute("SELECT key FROM objects LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def object_usage(self) -> ObjectUsage:
        """Objects and bytes in all and per topic: two aggregate queries, each a scan of
        its table (the console's object store page, cached there)."""
        objects, size = self._db.execute("SELECT COUNT(*), SUM(size) FROM objects").fetchone()
        rows = self._db.execute(
            "SELECT p.topic, COUNT(DISTINCT r.object_id), SUM(r.size) FROM ranges r"
            " JOIN partitions p ON p.stream_id = r.stream_id GROUP BY p.topic"
        ).fetchall()
        return ObjectUsage(
            int(objects), int(size or 0), {str(r[0]): (int(r[1]), int(r[2] or 0)) for r in rows}
        )

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
            engine._before_range_deletes()
            if engine.leader_epoch(swap.stream_id) != swap.epoch:
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
                object_id = insert_object(db, swap.key, swap.size, swap.created_ms, 1, 1)
                db.executemany(
                    "INSERT INTO ranges (stream_id, base_offset, end_offset, object_id,"
                    " position, size, max_timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (r.stream_id, r.base_offset, r.end_offset, object_id,
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


# (base offset, end offset, the (base offset, object key) of each range read in between)
_Replaced = tuple[int, int, tuple[tuple[int, str], ...]]


def _stream_ranges_unchanged(db: Db, stream_id: int, ranges: list[_Replaced]) -> bool:
    """Whether each (base, end, replaced) still names exactly the stream's ranges starting
    in [base, end): same base offsets, same objects."""
    for base, end, replaced in ranges:
        current = db.execute(
            "SELECT r.base_offset, o.key FROM ranges r JOIN objects o"
            " ON o.object_id = r.object_id WHERE r.stream_id=? AND r.base_offset >= ?"
            " AND r.base_offset < ? ORDER BY r.base_offset",
            (stream_id, base, end),
        ).fetchall()
        if not replaced or [tuple(r) for r in current] != [tuple(r) for r in replaced]:
            return False
    return True


def _insert_output(db: Db, output: CompactedObject, kept: set[int]) -> bool:
    """Insert `output` with the ranges of the streams kept; False (nothing inserted) when
    none of its streams was kept."""
    ranges = [r for r in output.ranges if r.stream_id in kept]
    if not ranges:
        return False
    object_id = insert_object(
        db, output.key, output.size, output.created_ms, output.level,
        len({r.stream_id for r in output.ranges}),
    )  # fmt: skip
    db.executemany(
        "INSERT INTO ranges (stream_id, base_offset, end_offset, object_id, position, size,"
        " max_timestamp, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (r.stream_id, r.base_offset, r.end_offset, object_id, r.position, r.size,
             r.max_timestamp, r.created_ms)
            for r in ranges
        ],
    )  # fmt: skip
    return True


class CompactionRows:
    """`SqlEngine`'s object compaction methods: its candidates and its swap."""

    _db: Db

    def compaction_candidates(
        self, created_before_ms: int, live_ratio: float, limit: int, small_bytes: int
    ) -> list[ObjectSummary]:
        """The oldest level-0 objects created at or before `created_before_ms`, the
        oldest compacted ones smaller than `small_bytes`, and the oldest objects of any
        level whose referenced bytes are below `live_ratio` of their size, at most `limit`
        of each, with the ranges that reference them."""
        db = self._db
        columns = "o.object_id, o.key, o.size, o.created_ms, o.level, o.streams"
        rows = db.execute(
            f"SELECT {columns} FROM objects o WHERE o.level = 0 AND o.created_ms <= ?"  # noqa: S608
            " ORDER BY o.created_ms LIMIT ?",
            (created_before_ms, limit),
        ).fetchall()
        rows += db.execute(
            f"SELECT {columns} FROM objects o WHERE o.level > 0 AND o.size < ?"  # noqa: S608
            " AND o.created_ms <= ? ORDER BY o.created_ms LIMIT ?",
            (small_bytes, created_before_ms, limit),
        ).fetchall()
        rows += db.execute(
            f"SELECT {columns} FROM objects o JOIN ranges r ON r.object_id = o.object_id"  # noqa: S608
            " WHERE o.created_ms <= ? GROUP BY o.object_id HAVING SUM(r.size) < ? * o.size"
            " ORDER BY o.created_ms LIMIT ?",
            (created_before_ms, live_ratio, limit),
        ).fetchall()
        objects = {int(r[0]): r for r in rows}
        ranges: dict[int, list[RangeRecord]] = {object_id: [] for object_id in objects}
        ids = list(objects)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in db.execute(
                "SELECT r.object_id, r.stream_id, r.base_offset, r.end_offset, o.key,"
                " r.position, r.size, r.max_timestamp, COALESCE(r.created_ms, o.created_ms)"
                " FROM ranges r JOIN objects o ON o.object_id = r.object_id"
                f" WHERE r.object_id IN ({marks}) ORDER BY r.position",  # noqa: S608
                chunk,
            ):
                ranges[int(r[0])].append(RangeRecord(*r[1:]))
        return sorted(
            (
                ObjectSummary(row[1], row[2], row[3], row[4], row[5], tuple(ranges[object_id]))
                for object_id, row in objects.items()
            ),
            key=lambda o: (o.created_ms, o.key),
        )

    def swap_objects(self, swap: ObjectSwap) -> SwapOutcome:
        """Object compaction's swap, in one transaction (RFC 0003, "swap_objects"):
        1. a stream whose leader epoch is no longer `swap.epochs`' is left out;
        2. so is a stream whose ranges in any replaced interval are no longer exactly
           those read;
        3. the kept streams' replaced ranges are deleted, the outputs inserted with the
           kept streams' ranges, and input objects left unreferenced are queued for
           deletion (due `swap.delete_due_ms`); an input that still holds ranges of a
           stream left out stays where it is;
        4. an output none of whose streams was kept is not inserted (`refused`)."""
        engine: Any = self
        db = self._db
        outcome = SwapOutcome()
        by_stream: dict[int, list[_Replaced]] = {}
        for output in swap.outputs:
            for r in output.ranges:
                by_stream.setdefault(r.stream_id, []).append(
                    (r.base_offset, r.end_offset, r.replaced)
                )
        with engine._transaction():
            engine._before_range_deletes()
            for stream_id, ranges in sorted(by_stream.items()):
                epoch = engine.leader_epoch(stream_id)
                if epoch is None or epoch != swap.epochs.get(stream_id):
                    outcome.epoch_moved.add(stream_id)
                elif not _stream_ranges_unchanged(db, stream_id, ranges):
                    outcome.ranges_moved.add(stream_id)
                else:
                    outcome.swapped.add(stream_id)
            if not outcome.swapped:
                outcome.refused = [o.key for o in swap.outputs]
                return outcome
            db.executemany(
                "DELETE FROM ranges WHERE stream_id=? AND base_offset >= ? AND base_offset < ?",
                [
                    (stream_id, base, end)
                    for stream_id in outcome.swapped
                    for base, end, _ in by_stream[stream_id]
                ],
            )
            for output in swap.outputs:
                if _insert_output(db, output, outcome.swapped):
                    outcome.inserted.append(output.key)
                else:
                    outcome.refused.append(output.key)
            outcome.unreferenced = unreference_orphans(db, swap.delete_due_ms)
        return outcome


class ObjectCalls:
    """`SqlMetadataStore`'s object lifetime methods, run on its worker thread."""

    async def due_deletions(self, now_ms: int, limit: int) -> list[str]:
        store: Any = self  # a SqlMetadataStore
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

    async def any_object(self) -> str | None:
        store: Any = self
        result: str | None = await store._call(store.engine.any_object)
        return result

    async def object_usage(self) -> ObjectUsage:
        store: Any = self
        result: ObjectUsage = await store._call(store.engine.object_usage)
        return result

    async def known_objects(self, keys: list[str]) -> set[str]:
        store: Any = self
        result: set[str] = await store._call(store.engine.known_objects, keys)
        return result

    async def swap_ranges(self, swap: RangeSwap) -> bool:
        store: Any = self
        result: bool = await store._call(store.engine.swap_ranges, swap)
        return result

    async def compaction_candidates(
        self, created_before_ms: int, live_ratio: float, limit: int, small_bytes: int
    ) -> list[ObjectSummary]:
        store: Any = self
        result: list[ObjectSummary] = await store._call(
            store.engine.compaction_candidates, created_before_ms, live_ratio, limit, small_bytes
        )
        return result

    async def swap_objects(self, swap: ObjectSwap) -> SwapOutcome:
        store: Any = self
        result: SwapOutcome = await store._call(store.engine.swap_objects, swap)
        return result
