"""The statements of the KIP-932 share-partition tables (migration 0014), and the engine
and store methods over them (mixed into `SqlEngine` and `SqlMetadataStore`).

A save replaces each named share partition's row and its in-flight runs, all in one
transaction: a crash leaves a partition as one save or the next wrote it, never a mix.
A save is fenced by the leader epochs of the topic partitions it covers (each share
partition is served by its topic partition's leader), checked in its transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from contextplane.metadata.records import StoredSharePartition
from contextplane.metadata.sql_db import Db

_KEY = "group_id=? AND topic=? AND partition_index=?"


def load(db: Db, key: tuple[str, str, int] | None = None) -> list[StoredSharePartition]:
    """Every share partition, or the one of `key` (group, topic, partition)."""
    where, args = ("", ()) if key is None else (f" WHERE {_KEY}", key)
    partitions: dict[tuple[str, str, int], StoredSharePartition] = {}
    rows = db.execute(
        "SELECT group_id, topic, partition_index, start_offset, state_epoch"
        " FROM share_partition_state" + where,
        args,
    )
    for group_id, topic, index, start, epoch in rows:
        partitions[(group_id, topic, index)] = StoredSharePartition(
            group_id, topic, int(index), int(start), int(epoch), []
        )
    runs = db.execute(
        "SELECT group_id, topic, partition_index, first_offset, last_offset, state,"
        " delivery_count FROM share_inflight" + where + " ORDER BY first_offset",
        args,
    )
    for group_id, topic, index, first, last, state, count in runs:
        stored = partitions.get((group_id, topic, index))
        if stored is not None:  # never without its row: a save writes both at once
            stored.runs.append((int(first), int(last), int(state), int(count)))
    return list(partitions.values())


def save(db: Db, stored: StoredSharePartition) -> None:
    key = (stored.group_id, stored.topic, stored.partition)
    db.execute(f"DELETE FROM share_inflight WHERE {_KEY}", key)
    db.execute(
        "INSERT INTO share_partition_state"
        " (group_id, topic, partition_index, start_offset, state_epoch) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (group_id, topic, partition_index) DO UPDATE SET"
        " start_offset=excluded.start_offset, state_epoch=excluded.state_epoch",
        (*key, stored.start_offset, stored.state_epoch),
    )
    if stored.runs:
        db.executemany(
            "INSERT INTO share_inflight (group_id, topic, partition_index, first_offset,"
            " last_offset, state, delivery_count) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*key, *run) for run in stored.runs],
        )


def delete_where(db: Db, column: str, value: str) -> None:
    """Every share partition whose `column` (topic or group_id) is `value`."""
    assert column in ("topic", "group_id")
    db.execute(f"DELETE FROM share_inflight WHERE {column}=?", (value,))
    db.execute(f"DELETE FROM share_partition_state WHERE {column}=?", (value,))


def delete_group_topics(db: Db, group_id: str, topics: list[str]) -> None:
    """A group's share partitions of the named topics (DeleteShareGroupOffsets)."""
    for table in ("share_inflight", "share_partition_state"):
        db.executemany(
            f"DELETE FROM {table} WHERE group_id=? AND topic=?", [(group_id, t) for t in topics]
        )


class SharePartitionRows:
    """`SqlEngine`'s share-partition methods (over its connection and transactions)."""

    _db: Db

    def share_partitions(
        self, key: tuple[str, str, int] | None = None
    ) -> list[StoredSharePartition]:
        return load(self._db, key)

    def save_share_partitions(
        self, partitions: list[StoredSharePartition], fences: Collection[tuple[int, int]] = ()
    ) -> None:
        engine: Any = self  # a SqlEngine: its transactions and disk-full retry

        def run() -> None:
            with engine._transaction():
                engine.check_shards(fences)
                for stored in partitions:
                    save(self._db, stored)

        engine._run_write(run)

    def delete_share_topic_state(self, topic: str) -> None:
        self._delete_share_state("topic", topic)

    def delete_share_group_state(self, group_id: str, topics: list[str] | None = None) -> None:
        if topics is None:
            self._delete_share_state("group_id", group_id)
            return
        engine: Any = self

        def run() -> None:
            with engine._transaction():
                delete_group_topics(self._db, group_id, topics)

        engine._run_write(run)

    def _delete_share_state(self, column: str, value: str) -> None:
        engine: Any = self

        def run() -> None:
            with engine._transaction():
                delete_where(self._db, column, value)

        engine._run_write(run)


class SharePartitionCalls:
    """`SqlMetadataStore`'s share-partition methods, run on its worker thread."""

    async def share_partitions(
        self, key: tuple[str, str, int] | None = None
    ) -> list[StoredSharePartition]:
        store: Any = self  # a SqlMetadataStore
        result: list[StoredSharePartition] = await store._call(store.engine.share_partitions, key)
        return result

    async def save_share_partitions(
        self, partitions: list[StoredSharePartition], fences: Collection[tuple[int, int]] = ()
    ) -> None:
        store: Any = self
        await store._call(store.engine.save_share_partitions, partitions, fences)

    async def delete_share_topic_state(self, topic: str) -> None:
        store: Any = self
        await store._call(store.engine.delete_share_topic_state, topic)

    async def delete_share_group_state(
        self, group_id: str, topics: list[str] | None = None
    ) -> None:
        store: Any = self
        await store._call(store.engine.delete_share_group_state, group_id, topics)
