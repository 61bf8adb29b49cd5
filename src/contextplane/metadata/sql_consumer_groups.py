"""The statements of the KIP-848 consumer group tables and the per-group configs
(migration 0013), and the engine and store methods over them (mixed into `SqlEngine` and
`SqlMetadataStore`). A group's configs are replaced whole in one transaction that also
moves `generation.topics`, so every broker reads them again (as dynamic broker configs).

The rows' documents are JSON the group coordinator writes and reads
(coordinators/consumer_group/stored.py); here they are opaque text. One save is one
transaction, so a group's row and its members' rows never disagree after a crash.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from contextplane.metadata.records import ConsumerGroupWrite, StoredConsumerGroup
from contextplane.metadata.sql_assignment import TOPICS_GENERATION, bump_generation
from contextplane.metadata.sql_db import Db
from contextplane.metadata.sql_group_documents import save_one


def load(db: Db) -> list[StoredConsumerGroup]:
    groups: dict[str, StoredConsumerGroup] = {}
    for group_id, state in db.execute("SELECT group_id, state FROM consumer_groups"):
        groups[group_id] = StoredConsumerGroup(group_id, state, {})
    members = db.execute(
        "SELECT group_id, member_id, metadata, assignment FROM consumer_group_members"
    )
    for group_id, member_id, metadata, assignment in members:
        group = groups.get(group_id)
        if group is not None:  # never without its group: a save writes both at once
            group.members[member_id] = (metadata, assignment)
    return list(groups.values())


def save(db: Db, write: ConsumerGroupWrite) -> None:
    if write.group_state is None:
        db.execute("DELETE FROM consumer_group_members WHERE group_id=?", (write.group_id,))
        db.execute("DELETE FROM consumer_groups WHERE group_id=?", (write.group_id,))
        return
    db.execute(
        "INSERT INTO consumer_groups (group_id, state) VALUES (?, ?)"
        " ON CONFLICT (group_id) DO UPDATE SET state=excluded.state",
        (write.group_id, write.group_state),
    )
    if write.removed_members:
        db.executemany(
            "DELETE FROM consumer_group_members WHERE group_id=? AND member_id=?",
            [(write.group_id, m) for m in write.removed_members],
        )
    both = [
        (write.group_id, m, w.metadata, w.assignment)
        for m, w in write.members.items()
        if w.metadata is not None and w.assignment is not None
    ]
    if both:
        db.executemany(
            "INSERT INTO consumer_group_members (group_id, member_id, metadata, assignment)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (group_id, member_id) DO UPDATE SET"
            " metadata=excluded.metadata, assignment=excluded.assignment",
            both,
        )
    for column in ("metadata", "assignment"):
        # Only one document changed: the other is not rewritten.
        changed = [
            (getattr(w, column), write.group_id, m)
            for m, w in write.members.items()
            if (w.metadata is None) != (w.assignment is None) and getattr(w, column) is not None
        ]
        if changed:
            db.executemany(
                f"UPDATE consumer_group_members SET {column}=? WHERE group_id=? AND member_id=?",
                changed,
            )


def load_group_configs(db: Db) -> dict[str, dict[str, str]]:
    configs: dict[str, dict[str, str]] = {}
    for group_id, name, value in db.execute("SELECT group_id, name, value FROM group_configs"):
        configs.setdefault(group_id, {})[name] = value
    return configs


def replace_group_configs(db: Db, group_id: str, configs: dict[str, str]) -> None:
    db.execute("DELETE FROM group_configs WHERE group_id=?", (group_id,))
    if configs:
        db.executemany(
            "INSERT INTO group_configs (group_id, name, value) VALUES (?, ?, ?)",
            [(group_id, name, value) for name, value in sorted(configs.items())],
        )


class ConsumerGroupRows:
    """`SqlEngine`'s consumer group methods (over its connection and transactions)."""

    _db: Db

    def consumer_groups(self) -> list[StoredConsumerGroup]:
        return load(self._db)

    def save_consumer_groups(
        self, writes: list[ConsumerGroupWrite], fences: Collection[tuple[int, int]] = ()
    ) -> None:
        engine: Any = self  # a SqlEngine: its transactions and disk-full retry

        def run() -> None:
            with engine._transaction():
                engine.check_shards(fences)
                for write in writes:
                    save(self._db, write)

        engine._run_write(run)

    def convert_groups(
        self,
        writes: list[ConsumerGroupWrite],
        classic: dict[str, bytes | None],
        fences: Collection[tuple[int, int]] = (),
    ) -> None:
        """A group changing protocol: its consumer group rows and its classic group row
        (None deletes it) in one transaction, so a restart finds one of the two."""
        engine: Any = self

        def run() -> None:
            with engine._transaction():
                engine.check_shards(fences)
                for write in writes:
                    save(self._db, write)
                for group_id, metadata in sorted(classic.items()):
                    save_one(self._db, "classic_groups", group_id, metadata)

        engine._run_write(run)

    def group_configs(self) -> dict[str, dict[str, str]]:
        return load_group_configs(self._db)

    def set_group_configs(self, group_id: str, configs: dict[str, str]) -> None:
        engine: Any = self

        def run() -> None:
            with engine._transaction():
                # Other brokers read the group configs again when it moves: the group's
                # coordinator and its share partitions' leaders may be any of them.
                bump_generation(self._db, TOPICS_GENERATION)
                replace_group_configs(self._db, group_id, configs)

        engine._run_write(run)


class ConsumerGroupCalls:
    """`SqlMetadataStore`'s consumer group methods, run on its worker thread."""

    async def consumer_groups(self) -> list[StoredConsumerGroup]:
        store: Any = self  # a SqlMetadataStore
        result: list[StoredConsumerGroup] = await store._call(store.engine.consumer_groups)
        return result

    async def save_consumer_groups(
        self, writes: list[ConsumerGroupWrite], fences: Collection[tuple[int, int]] = ()
    ) -> None:
        store: Any = self
        await store._call(store.engine.save_consumer_groups, writes, fences)

    async def convert_groups(
        self,
        writes: list[ConsumerGroupWrite],
        classic: dict[str, bytes | None],
        fences: Collection[tuple[int, int]] = (),
    ) -> None:
        store: Any = self
        await store._call(store.engine.convert_groups, writes, classic, fences)

    async def group_configs(self) -> dict[str, dict[str, str]]:
        store: Any = self
        result: dict[str, dict[str, str]] = await store._call(store.engine.group_configs)
        return result

    async def set_group_configs(self, group_id: str, configs: dict[str, str]) -> None:
        store: Any = self
        await store._call(store.engine.set_group_configs, group_id, configs)
