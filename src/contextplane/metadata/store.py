"""The metadata store: topics, partitions (leader + epoch), the object index, group
offsets and producer state. SQLite for the embedded default.

Every statement that changes what readers may rely on runs in one transaction, and the
partition leader epoch is checked inside the same transaction that commits an object
(`commit_object`), so a fenced broker can never publish data.

A write that fails for lack of disk space releases the space reserve (metadata/reserve.py)
and runs once more, so uploads can always commit and drain a full disk.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from contextplane.errors import FencedError, KafkaError
from contextplane.metadata.reserve import SpaceReserve
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)
_T = TypeVar("_T")
# SQLite's primary result codes for a failed write: the disk is full, or an I/O error
# (creating or growing the -shm file on a full disk reports SQLITE_IOERR_SHMSIZE).
_OUT_OF_SPACE_CODES = (13, 10)  # SQLITE_FULL, SQLITE_IOERR

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY,
    topic_id BLOB NOT NULL UNIQUE,
    configs TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS partitions (
    stream_id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL REFERENCES topics(name) ON DELETE CASCADE,
    partition INTEGER NOT NULL,
    leader_node INTEGER NOT NULL DEFAULT -1,
    leader_epoch INTEGER NOT NULL DEFAULT 0,
    log_start_offset INTEGER NOT NULL DEFAULT 0,
    producer_state TEXT NOT NULL DEFAULT '{}',
    UNIQUE (topic, partition)
);
CREATE TABLE IF NOT EXISTS objects (
    object_id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ranges (
    stream_id INTEGER NOT NULL,
    base_offset INTEGER NOT NULL,
    end_offset INTEGER NOT NULL,
    object_id INTEGER NOT NULL REFERENCES objects(object_id),
    position INTEGER NOT NULL,
    size INTEGER NOT NULL,
    max_timestamp INTEGER NOT NULL,
    PRIMARY KEY (stream_id, base_offset)
);
CREATE INDEX IF NOT EXISTS ranges_by_object ON ranges(object_id);
CREATE TABLE IF NOT EXISTS group_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    committed_offset INTEGER NOT NULL,
    leader_epoch INTEGER NOT NULL DEFAULT -1,
    metadata TEXT,
    commit_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(slots=True)
class TopicRecord:
    name: str
    topic_id: bytes
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class PartitionRecord:
    stream_id: int
    topic: str
    partition: int
    leader_node: int
    leader_epoch: int
    log_start_offset: int
    producer_state: dict[str, Any]


@dataclass(slots=True)
class RangeRecord:
    stream_id: int
    base_offset: int
    end_offset: int  # exclusive
    object_key: str
    position: int
    size: int
    max_timestamp: int
    created_ms: int = 0  # when its object was committed (segment rolling by time)


@dataclass(slots=True)
class CommittedOffset:
    offset: int
    leader_epoch: int
    metadata: str | None


def _out_of_space(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _OUT_OF_SPACE_CODES


def _uses_reserve(method: Callable[..., _T]) -> Callable[..., _T]:
    """Run a write once more in the reserved space if it failed for lack of disk."""

    @functools.wraps(method)
    def wrapper(self: MetadataStore, *args: Any, **kwargs: Any) -> _T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            if not _out_of_space(exc) or self.reserve is None or not self.reserve.release():
                raise
            return method(self, *args, **kwargs)

    return wrapper


class MetadataStore:
    def __init__(self, url: str, reserve: SpaceReserve | None = None) -> None:
        if not url.startswith("sqlite:///"):
            raise ValueError(f"metadata store URL {url!r}: only sqlite:/// is implemented")
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        self.reserve = reserve
        self._path = path
        self._db = self._connect()

    @_uses_reserve
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            # WAL journal + synchronous=FULL: a committed transaction survives power loss,
            # which the broker relies on before it trims its own write-ahead log.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # -- cluster -----------------------------------------------------------------------

    @_uses_reserve
    def cluster_id(self) -> str:
        with self._transaction():
            row = self._db.execute("SELECT value FROM cluster WHERE key='cluster_id'").fetchone()
            if row:
                return str(row[0])
            value = uuid.uuid4().hex[:22]
            self._db.execute("INSERT INTO cluster VALUES ('cluster_id', ?)", (value,))
            return value

    @_uses_reserve
    def next_counter(self, name: str, count: int = 1) -> int:
        """Allocate `count` values of a durable counter; returns the first."""
        with self._transaction():
            row = self._db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
            first = row[0] if row else 0
            self._db.execute(
                "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=?",
                (name, first + count, first + count),
            )
            return int(first)

    # -- topics ------------------------------------------------------------------------

    @_uses_reserve
    def create_topic(self, name: str, partitions: int, configs: dict[str, str]) -> TopicRecord:
        with self._transaction():
            exists = self._db.execute("SELECT 1 FROM topics WHERE name=?", (name,)).fetchone()
            if exists:
                raise KafkaError(ErrorCode.topic_already_exists, f"Topic '{name}' already exists.")
            topic_id = uuid.uuid4().bytes
            self._db.execute(
                "INSERT INTO topics (name, topic_id, configs) VALUES (?, ?, ?)",
                (name, topic_id, json.dumps(configs)),
            )
            self._db.executemany(
                "INSERT INTO partitions (topic, partition) VALUES (?, ?)",
                [(name, p) for p in range(partitions)],
            )
        return TopicRecord(name, topic_id, partitions, configs)

    def topics(self) -> list[TopicRecord]:
        rows = self._db.execute(
            "SELECT t.name, t.topic_id, t.configs, COUNT(p.partition) FROM topics t "
            "LEFT JOIN partitions p ON p.topic = t.name GROUP BY t.name ORDER BY t.name"
        ).fetchall()
        return [TopicRecord(r[0], r[1], r[3], json.loads(r[2])) for r in rows]

    @_uses_reserve
    def delete_topic(self, name: str) -> list[str]:
        """Delete a topic and its ranges; returns object keys no range points at any more."""
        with self._transaction():
            streams = [
                r[0]
                for r in self._db.execute("SELECT stream_id FROM partitions WHERE topic=?", (name,))
            ]
            for stream_id in streams:
                self._db.execute("DELETE FROM ranges WHERE stream_id=?", (stream_id,))
            self._db.execute("DELETE FROM partitions WHERE topic=?", (name,))
            self._db.execute("DELETE FROM topics WHERE name=?", (name,))
            return self._delete_orphan_objects()

    @_uses_reserve
    def add_partitions(self, name: str, total: int) -> None:
        with self._transaction():
            (current,) = self._db.execute(
                "SELECT COUNT(*) FROM partitions WHERE topic=?", (name,)
            ).fetchone()
            self._db.executemany(
                "INSERT INTO partitions (topic, partition) VALUES (?, ?)",
                [(name, p) for p in range(current, total)],
            )

    @_uses_reserve
    def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE topics SET configs=? WHERE name=?", (json.dumps(configs), name)
            )

    # -- partitions --------------------------------------------------------------------

    def partitions(self, topic: str | None = None) -> list[PartitionRecord]:
        query = (
            "SELECT stream_id, topic, partition, leader_node, leader_epoch, log_start_offset,"
            " producer_state FROM partitions"
        )
        args: tuple[Any, ...] = ()
        if topic is not None:
            query += " WHERE topic=?"
            args = (topic,)
        rows = self._db.execute(query + " ORDER BY topic, partition", args).fetchall()
        return [PartitionRecord(*r[:6], json.loads(r[6])) for r in rows]

    @_uses_reserve
    def claim_leadership(self, claims: dict[int, int], node_id: int) -> dict[int, int]:
        """Become leader of each stream with epoch `seen + 1` (claims: stream -> seen
        epoch), all in one transaction; fails if any epoch moved since it was read."""
        with self._transaction():
            for stream_id, seen_epoch in claims.items():
                updated = self._db.execute(
                    "UPDATE partitions SET leader_node=?, leader_epoch=leader_epoch+1 "
                    "WHERE stream_id=? AND leader_epoch=?",
                    (node_id, stream_id, seen_epoch),
                ).rowcount
                if updated != 1:
                    raise FencedError(f"stream {stream_id}: epoch moved past {seen_epoch}")
        return {stream_id: seen + 1 for stream_id, seen in claims.items()}

    # -- objects -----------------------------------------------------------------------

    @_uses_reserve
    def commit_object(
        self,
        key: str,
        size: int,
        created_ms: int,
        ranges: list[tuple[int, int, int, int, int, int]],
        epochs: dict[int, int],
        producer_states: dict[int, dict[str, Any]],
    ) -> None:
        """Publish an uploaded object: its ranges become readable atomically.

        `ranges` rows are (stream_id, base_offset, end_offset, position, size, max_ts);
        `epochs` is this broker's leader epoch per stream, checked in the same transaction.
        """
        with self._transaction():
            for stream_id, epoch in epochs.items():
                row = self._db.execute(
                    "SELECT leader_epoch FROM partitions WHERE stream_id=?", (stream_id,)
                ).fetchone()
                if row is None:
                    continue  # the topic was deleted while its data was in flight
                if row[0] != epoch:
                    raise FencedError(f"stream {stream_id}: epoch {epoch} != {row[0]}")
            cursor = self._db.execute(
                "INSERT INTO objects (key, size, created_ms) VALUES (?, ?, ?)",
                (key, size, created_ms),
            )
            object_id = cursor.lastrowid
            live = {r[0] for r in self._db.execute("SELECT stream_id FROM partitions").fetchall()}
            self._db.executemany(
                "INSERT INTO ranges (stream_id, base_offset, end_offset, object_id, position,"
                " size, max_timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(s, b, e, object_id, p, n, t) for s, b, e, p, n, t in ranges if s in live],
            )
            for stream_id, state in producer_states.items():
                self._db.execute(
                    "UPDATE partitions SET producer_state=? WHERE stream_id=?",
                    (json.dumps(state), stream_id),
                )

    def ranges_by_stream(self) -> dict[int, list[RangeRecord]]:
        """Every stream's ranges in offset order, in one query (broker start)."""
        rows = self._db.execute(
            "SELECT r.stream_id, r.base_offset, r.end_offset, o.key, r.position, r.size,"
            " r.max_timestamp, o.created_ms FROM ranges r"
            " JOIN objects o ON o.object_id = r.object_id ORDER BY r.stream_id, r.base_offset"
        ).fetchall()
        result: dict[int, list[RangeRecord]] = {}
        for row in rows:
            result.setdefault(row[0], []).append(RangeRecord(*row))
        return result

    @_uses_reserve
    def advance_log_start(self, stream_id: int, offset: int) -> list[str]:
        """Move the log start offset forward (never back); drop ranges wholly below it.

        Returns the keys of objects that no range references any more.
        """
        with self._transaction():
            self._db.execute(
                "UPDATE partitions SET log_start_offset=MAX(log_start_offset, ?) WHERE stream_id=?",
                (offset, stream_id),
            )
            self._db.execute(
                "DELETE FROM ranges WHERE stream_id=? AND end_offset <= ?", (stream_id, offset)
            )
            return self._delete_orphan_objects()

    def _delete_orphan_objects(self) -> list[str]:
        rows = self._db.execute(
            "SELECT object_id, key FROM objects WHERE object_id NOT IN"
            " (SELECT DISTINCT object_id FROM ranges)"
        ).fetchall()
        self._db.executemany("DELETE FROM objects WHERE object_id=?", [(r[0],) for r in rows])
        return [r[1] for r in rows]

    # -- group offsets -----------------------------------------------------------------

    @_uses_reserve
    def commit_offsets(
        self, group_id: str, offsets: list[tuple[str, int, int, int, str | None]], now_ms: int
    ) -> None:
        """Rows are (topic, partition, offset, leader_epoch, metadata)."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO group_offsets VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT"
                " (group_id, topic, partition) DO UPDATE SET committed_offset=excluded."
                "committed_offset, leader_epoch=excluded.leader_epoch,"
                " metadata=excluded.metadata, commit_ms=excluded.commit_ms",
                [(group_id, t, p, o, e, m, now_ms) for t, p, o, e, m in offsets],
            )

    def fetch_offsets(self, group_id: str) -> dict[tuple[str, int], CommittedOffset]:
        rows = self._db.execute(
            "SELECT topic, partition, committed_offset, leader_epoch, metadata"
            " FROM group_offsets WHERE group_id=?",
            (group_id,),
        ).fetchall()
        return {(r[0], r[1]): CommittedOffset(r[2], r[3], r[4]) for r in rows}

    @_uses_reserve
    def delete_offsets(self, group_id: str, partitions: list[tuple[str, int]] | None) -> None:
        with self._transaction():
            if partitions is None:
                self._db.execute("DELETE FROM group_offsets WHERE group_id=?", (group_id,))
            else:
                self._db.executemany(
                    "DELETE FROM group_offsets WHERE group_id=? AND topic=? AND partition=?",
                    [(group_id, t, p) for t, p in partitions],
                )

    def groups_with_offsets(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT group_id FROM group_offsets").fetchall()
        return [r[0] for r in rows]


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._outer = False

    def __enter__(self) -> None:
        self._outer = not self._db.in_transaction
        if self._outer:
            self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._outer:
            return
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        elif self._db.in_transaction:  # SQLite may have rolled back already (SQLITE_FULL)
            self._db.execute("ROLLBACK")
