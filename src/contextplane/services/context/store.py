"""The context service's local store: one SQLite file holding entity states, the source
positions they reflect and how far the changelog has been read, always written together
in one SQLite transaction (RFC 0006 §1).

It is a cache of the changelog topic, never ahead of it: the apply loop writes here only
after its Kafka transaction committed, so deleting the file loses nothing (a start
rebuilds it from the changelog). WAL mode lets `get` read on the event loop's thread
while the apply loop writes on its own, each with its own connection.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from contextplane.services.context.freshness import Position, TopicPartition

EntityKey = tuple[str, str]  # (view, entity id)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    view TEXT NOT NULL, entity TEXT NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (view, entity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL,
    position INTEGER NOT NULL, newest_ms INTEGER,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
# The changelog offset of each entity's row (NULL: not known, a store written before the
# column or a delivery report that did not come): what `get` names as the record it
# answered from. Added to a store that predates it, in place.
_CHANGELOG_OFFSET_COLUMN = "ALTER TABLE entities ADD COLUMN changelog_offset INTEGER"
# The changelog partition holding each entity (NULL: 0, the single instance's one
# partition); partitioned instances drop a partition's rows when it moves elsewhere.
_CHANGELOG_PARTITION_COLUMN = "ALTER TABLE entities ADD COLUMN changelog_partition INTEGER"


def _position_name(partition: int) -> str:
    """The meta row of a changelog partition's read position (partition 0 keeps the
    single instance's name, so its stores read as before)."""
    return "changelog_position" if partition == 0 else f"changelog_position:{partition}"


class LocalStore:
    """One connection, for one thread."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A commit lost to a power cut is read again from the changelog at the next start.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(entities)")}
        if "changelog_offset" not in columns:
            self._db.execute(_CHANGELOG_OFFSET_COLUMN)
        if "changelog_partition" not in columns:
            self._db.execute(_CHANGELOG_PARTITION_COLUMN)

    def commit(
        self,
        entities: dict[EntityKey, bytes | None],
        positions: dict[TopicPartition, Position],
        changelog_position: int | None,
        changelog_offsets: dict[EntityKey, int] | None = None,
        changelog_partitions: dict[EntityKey, int] | None = None,
        partition_positions: dict[int, int] | None = None,
    ) -> None:
        """Entity values (None: deleted), positions and the changelog's read position,
        all or nothing; `changelog_offsets`: where each entity's value is on the changelog;
        `changelog_partitions`: which partition holds it (absent: 0);
        `partition_positions`: read positions of changelog partitions besides 0's
        `changelog_position`."""
        offsets = changelog_offsets or {}
        partitions = changelog_partitions or {}
        read_to = dict(partition_positions or {})
        if changelog_position is not None:
            read_to[0] = changelog_position
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for (view, entity), value in entities.items():
                if value is None:
                    db.execute("DELETE FROM entities WHERE view = ? AND entity = ?", (view, entity))
                else:
                    key = (view, entity)
                    db.execute(
                        "INSERT OR REPLACE INTO entities VALUES (?, ?, ?, ?, ?)",
                        (view, entity, value, offsets.get(key), partitions.get(key, 0)),
                    )
            db.executemany(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?)",
                [(t, p, at.position, at.newest_ms) for (t, p), at in positions.items()],
            )
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(_position_name(p), at) for p, at in read_to.items()],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def entity(self, view: str, entity: str) -> tuple[bytes | None, dict[TopicPartition, Position]]:
        """An entity's value and the positions it reflects, from one read transaction."""
        raw, _, positions = self.entity_row(view, entity)
        return raw, positions

    def entity_row(
        self, view: str, entity: str
    ) -> tuple[bytes | None, int | None, dict[TopicPartition, Position]]:
        """An entity's value, its changelog offset (None: not known) and the positions
        it reflects, from one read transaction."""
        raw, at, positions = self.entity_located(view, entity)
        return raw, None if at is None else at[1], positions

    def entity_located(
        self, view: str, entity: str
    ) -> tuple[bytes | None, tuple[int, int | None] | None, dict[TopicPartition, Position]]:
        """As `entity_row`, with the changelog (partition, offset or None) of the value."""
        db = self._db
        db.execute("BEGIN")
        try:
            row = db.execute(
                "SELECT value, changelog_partition, changelog_offset FROM entities"
                " WHERE view = ? AND entity = ?",
                (view, entity),
            ).fetchone()
            positions = self._positions()
        finally:
            db.execute("COMMIT")
        if row is None:
            return None, None, positions
        return bytes(row[0]), (row[1] or 0, row[2]), positions

    def entities(self, view: str) -> dict[str, bytes]:
        """Every entity of a view (tests and tools; a view can be large)."""
        rows = self._db.execute("SELECT entity, value FROM entities WHERE view = ?", (view,))
        return {entity: bytes(value) for entity, value in rows}

    def positions(self) -> dict[TopicPartition, Position]:
        return self._positions()

    def _positions(self) -> dict[TopicPartition, Position]:
        rows = self._db.execute("SELECT topic, partition, position, newest_ms FROM positions")
        return {(t, p): Position(position, newest) for t, p, position, newest in rows}

    def changelog_position(self, partition: int = 0) -> int:
        row = self._db.execute(
            "SELECT value FROM meta WHERE name = ?", (_position_name(partition),)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget every changelog partition numbered in `partitions`: its entities, the
        positions of the source partitions of the same number and its read position (a
        partitioned instance that no longer owns them; one transaction)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for p in sorted(partitions):
                db.execute("DELETE FROM entities WHERE IFNULL(changelog_partition, 0) = ?", (p,))
                db.execute("DELETE FROM positions WHERE partition = ?", (p,))
                db.execute("DELETE FROM meta WHERE name = ?", (_position_name(p),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def copy_to(self, path: Path) -> None:
        """A consistent copy of the whole store (one read transaction: entities and the
        positions they reflect agree), as a new file at `path`."""
        self._db.execute("VACUUM INTO ?", (str(path),))

    def close(self) -> None:
        self._db.close()


def read_copy(
    path: Path, view: str, entity: str
) -> tuple[bytes | None, dict[TopicPartition, Position]]:
    """An entity and the positions it reflects, from a copy `copy_to` wrote (read-only:
    a missing file is an error, never a new empty store)."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT value FROM entities WHERE view = ? AND entity = ?", (view, entity)
        ).fetchone()
        rows = db.execute("SELECT topic, partition, position, newest_ms FROM positions")
        positions = {(t, p): Position(at, newest) for t, p, at, newest in rows}
    finally:
        db.close()
    return (None if row is None else bytes(row[0])), positions
