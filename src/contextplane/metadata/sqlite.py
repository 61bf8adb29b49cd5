"""The SQLite engine of the metadata store (the embedded default).

`SqliteEngine` is synchronous: plain SQL on one connection, every change readers rely on
in one transaction (`BEGIN IMMEDIATE`), WAL journal with `synchronous=FULL` so that a
committed transaction survives power loss (the broker trims its own write-ahead log only
after a commit). `SqliteMetadataStore` is the async `MetadataStore` over it: each call
runs on the store's one worker thread, so nothing fsyncs on the event loop and calls are
serialised as SQLite wants.

A write that fails for lack of disk space releases the space reserve (reserve.py) and runs
once more, so uploads can always commit and drain a full disk. On a disk with no room
even for the shared-memory index (-shm) the database opens in exclusive locking mode;
an open or a leadership claim that cannot proceed for lack of space is retried until
space returns, after one log line.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from contextplane.errors import KafkaError
from contextplane.metadata import migrations, sqlite_acls, sqlite_producer_state, sqlite_scram
from contextplane.metadata.records import (
    AclRecord,
    ClaimOutcome,
    CommitOutcome,
    CommittedOffset,
    ObjectCommit,
    OffsetRow,
    PartitionRecord,
    RangeRecord,
    ScramCredentialRecord,
    StoredProducerState,
    TopicRecord,
)
from contextplane.metadata.reserve import SpaceReserve
from contextplane.metadata.runner import Runner, ThreadRunner
from contextplane.metadata.sqlite_objects import (
    CompactionRows,
    ObjectCalls,
    ObjectRows,
    unreference_orphans,
)
from contextplane.metadata.sqlite_offsets import upsert_group_offsets
from contextplane.metadata.sqlite_quotas import QuotaCalls, QuotaRows
from contextplane.metadata.sqlite_transaction import Transaction
from contextplane.metadata.sqlite_transactions import TransactionCalls, TransactionRows
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_T = TypeVar("_T")
ENGINE = "sqlite"
# SQLite's primary result codes for a failed write: the disk is full, or an I/O error
# (creating or growing the -shm file on a full disk reports SQLITE_IOERR_SHMSIZE).
_OUT_OF_SPACE_CODES = (13, 10)  # SQLITE_FULL, SQLITE_IOERR
SPACE_RETRY_S = 1.0  # how often a start on a full disk tries again


def _out_of_space(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _OUT_OF_SPACE_CODES


def _uses_reserve(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """Run a write once more in the reserved space if it failed for lack of disk."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        engine = args[0]
        assert isinstance(engine, SqliteEngine)
        try:
            return method(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            if not _out_of_space(exc) or engine.reserve is None or not engine.reserve.release():
                raise
            return method(*args, **kwargs)

    return wrapper


class SqliteEngine(QuotaRows, TransactionRows, ObjectRows, CompactionRows):
    def __init__(self, path: str, reserve: SpaceReserve | None = None) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.reserve = reserve
        self._path = path
        self._db = self._connect()

    @_uses_reserve
    def _connect(self) -> sqlite3.Connection:
        try:
            return self._open(exclusive=False)
        except sqlite3.OperationalError as exc:
            if not _out_of_space(exc) or self._path == ":memory:":
                raise
            if self.reserve is not None and self.reserve.present:
                raise  # the reserve is released and the open retried (_uses_reserve)
            # A disk that was full when the broker stopped: nothing left to release, and
            # no room for the shared-memory index (-shm) WAL mode opens with. In exclusive
            # locking mode the index lives in this process's memory, so the store opens
            # and reads (writes fail, retriably, until space returns); other processes
            # cannot read the database until the broker restarts.
            log.warning(
                "metadata store %s: no disk space for its shared-memory index (%s); "
                "opened in exclusive locking mode until the next restart",
                self._path,
                exc,
            )
            return self._open(exclusive=True)

    def _open(self, exclusive: bool) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            if exclusive:
                db.execute("PRAGMA locking_mode=EXCLUSIVE")  # before the first WAL access
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            _migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> Transaction:
        return Transaction(self._db)

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

    @_uses_reserve
    def create_topics(
        self, names: list[str], partitions: int, configs: dict[str, str]
    ) -> list[TopicRecord]:
        """Create those of `names` that do not exist yet, all in one transaction."""
        created = []
        with self._transaction():
            for name in dict.fromkeys(names):
                exists = self._db.execute("SELECT 1 FROM topics WHERE name=?", (name,)).fetchone()
                if exists:
                    continue
                topic_id = uuid.uuid4().bytes
                self._db.execute(
                    "INSERT INTO topics (name, topic_id, configs) VALUES (?, ?, ?)",
                    (name, topic_id, json.dumps(configs)),
                )
                self._db.executemany(
                    "INSERT INTO partitions (topic, partition) VALUES (?, ?)",
                    [(name, p) for p in range(partitions)],
                )
                created.append(TopicRecord(name, topic_id, partitions, configs))
        return created

    def topics(self) -> list[TopicRecord]:
        rows = self._db.execute(
            "SELECT t.name, t.topic_id, t.configs, COUNT(p.partition) FROM topics t "
            "LEFT JOIN partitions p ON p.topic = t.name GROUP BY t.name ORDER BY t.name"
        ).fetchall()
        return [TopicRecord(r[0], r[1], r[3], json.loads(r[2])) for r in rows]

    @_uses_reserve
    def delete_topic(self, name: str, delete_due_ms: int) -> list[str]:
        """Delete a topic and its ranges; returns the keys of objects no range points at
        any more, now due for deletion at `delete_due_ms`."""
        with self._transaction():
            streams = [
                r[0]
                for r in self._db.execute("SELECT stream_id FROM partitions WHERE topic=?", (name,))
            ]
            for stream_id in streams:
                self._db.execute("DELETE FROM ranges WHERE stream_id=?", (stream_id,))
            self._db.execute("DELETE FROM partitions WHERE topic=?", (name,))
            self._db.execute("DELETE FROM topics WHERE name=?", (name,))
            return unreference_orphans(self._db, delete_due_ms)

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
            "SELECT stream_id, topic, partition, leader_node, leader_epoch, log_start_offset"
            " FROM partitions"
        )
        args: tuple[Any, ...] = ()
        if topic is not None:
            query += " WHERE topic=?"
            args = (topic,)
        rows = self._db.execute(query + " ORDER BY topic, partition", args).fetchall()
        states = sqlite_producer_state.load(self._db, topic)
        return [PartitionRecord(*r, states.get(r[0], StoredProducerState())) for r in rows]

    @_uses_reserve
    def claim_leadership(self, claims: dict[int, int], node_id: int) -> ClaimOutcome:
        """Lead each stream with epoch `seen + 1` (claims: stream -> epoch seen), in one
        transaction; a stream whose epoch moved since it was read is not claimed."""
        claimed: dict[int, int] = {}
        moved: dict[int, int] = {}
        with self._transaction():
            for stream_id, seen_epoch in claims.items():
                updated = self._db.execute(
                    "UPDATE partitions SET leader_node=?, leader_epoch=leader_epoch+1 "
                    "WHERE stream_id=? AND leader_epoch=?",
                    (node_id, stream_id, seen_epoch),
                ).rowcount
                if updated == 1:
                    claimed[stream_id] = seen_epoch + 1
                    continue
                row = self._db.execute(
                    "SELECT leader_epoch FROM partitions WHERE stream_id=?", (stream_id,)
                ).fetchone()
                if row is not None:
                    moved[stream_id] = int(row[0])
        return ClaimOutcome(claimed, moved)

    # -- objects -----------------------------------------------------------------------

    @_uses_reserve
    def commit_object(self, commit: ObjectCommit) -> CommitOutcome:
        """Publish an uploaded object: its ranges become readable atomically, for every
        stream whose stored leader epoch is still the committer's (checked in the same
        transaction); the other streams' ranges are left out."""
        outcome = CommitOutcome(committed=set(), epoch_mismatch={}, deleted=set())
        with self._transaction():
            for stream_id, epoch in commit.epochs.items():
                row = self._db.execute(
                    "SELECT leader_epoch FROM partitions WHERE stream_id=?", (stream_id,)
                ).fetchone()
                if row is None:
                    outcome.deleted.add(stream_id)
                elif row[0] != epoch:
                    outcome.epoch_mismatch[stream_id] = int(row[0])
                else:
                    outcome.committed.add(stream_id)
            if not outcome.committed:
                return outcome
            cursor = self._db.execute(
                "INSERT INTO objects (key, size, created_ms) VALUES (?, ?, ?)",
                (commit.key, commit.size, commit.created_ms),
            )
            object_id = cursor.lastrowid
            self._db.executemany(
                "INSERT INTO ranges (stream_id, base_offset, end_offset, object_id, position,"
                " size, max_timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.stream_id, r.base_offset, r.end_offset, object_id, r.position, r.size,
                     r.max_timestamp)
                    for r in commit.ranges
                    if r.stream_id in outcome.committed
                ],
            )  # fmt: skip
            sqlite_producer_state.write(self._db, commit.producer_states, outcome.committed)
        return outcome

    def ranges_by_stream(self) -> dict[int, list[RangeRecord]]:
        """Every stream's ranges in offset order, in one query (broker start)."""
        rows = self._db.execute(
            "SELECT r.stream_id, r.base_offset, r.end_offset, o.key, r.position, r.size,"
            " r.max_timestamp, COALESCE(r.created_ms, o.created_ms) FROM ranges r"
            " JOIN objects o ON o.object_id = r.object_id ORDER BY r.stream_id, r.base_offset"
        ).fetchall()
        result: dict[int, list[RangeRecord]] = {}
        for row in rows:
            result.setdefault(row[0], []).append(RangeRecord(*row))
        return result

    @_uses_reserve
    def advance_log_start(self, stream_id: int, offset: int, delete_due_ms: int) -> list[str]:
        """Move the log start offset forward (never back); drop ranges wholly below it.

        Returns the keys of objects that no range references any more, now due for
        deletion at `delete_due_ms`.
        """
        with self._transaction():
            self._db.execute(
                "UPDATE partitions SET log_start_offset=MAX(log_start_offset, ?) WHERE stream_id=?",
                (offset, stream_id),
            )
            self._db.execute(
                "DELETE FROM ranges WHERE stream_id=? AND end_offset <= ?", (stream_id, offset)
            )
            return unreference_orphans(self._db, delete_due_ms)

    # -- group offsets -----------------------------------------------------------------

    @_uses_reserve
    def commit_offsets(self, group_id: str, rows: Iterable[OffsetRow], now_ms: int) -> None:
        with self._transaction():
            upsert_group_offsets(self._db, group_id, rows, now_ms)

    def fetch_offsets(self, group_id: str) -> dict[tuple[str, int], CommittedOffset]:
        rows = self._db.execute(
            "SELECT topic, partition, committed_offset, leader_epoch, metadata, commit_ms"
            " FROM group_offsets WHERE group_id=?",
            (group_id,),
        ).fetchall()
        return {(r[0], r[1]): CommittedOffset(r[2], r[3], r[4], r[5]) for r in rows}

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

    @_uses_reserve
    def delete_topic_offsets(self, topic: str) -> None:
        """Every group's committed offsets of a deleted topic (Kafka's onPartitionsDeleted)."""
        with self._transaction():
            self._db.execute("DELETE FROM group_offsets WHERE topic=?", (topic,))

    def groups_with_offsets(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT group_id FROM group_offsets").fetchall()
        return [r[0] for r in rows]

    # -- ACLs --------------------------------------------------------------------------

    def acls(self) -> list[AclRecord]:
        return sqlite_acls.load(self._db)

    @_uses_reserve
    def create_acls(self, records: Iterable[AclRecord]) -> None:
        with self._transaction():
            sqlite_acls.insert(self._db, records)

    @_uses_reserve
    def delete_acls(self, records: Iterable[AclRecord]) -> None:
        with self._transaction():
            sqlite_acls.delete(self._db, records)

    alter_client_quotas = _uses_reserve(QuotaRows.alter_client_quotas)

    # -- SCRAM credentials -------------------------------------------------------------

    def scram_credentials(self) -> list[ScramCredentialRecord]:
        return sqlite_scram.load(self._db)

    @_uses_reserve
    def alter_scram_credentials(
        self, upserts: list[ScramCredentialRecord], deletions: list[tuple[str, str]]
    ) -> None:
        with self._transaction():
            sqlite_scram.alter(self._db, upserts, deletions)


def _migrate(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
    )
    applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
    for migration in migrations.pending(ENGINE, applied):
        with Transaction(db):
            for statement in _statements(migration.sql):
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_migrations VALUES (?, ?)", (migration.version, migration.name)
            )
        log.info("metadata schema migrated to version %d (%s)", migration.version, migration.name)


def _statements(sql: str) -> list[str]:
    """A migration's statements (executescript would commit the surrounding transaction)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class SqliteMetadataStore(QuotaCalls, TransactionCalls, ObjectCalls):
    """`MetadataStore` on SQLite: every call runs on the runner (one worker thread)."""

    def __init__(
        self, path: str, reserve: SpaceReserve | None = None, runner: Runner | None = None
    ) -> None:
        self._runner = runner or ThreadRunner("metadata")
        self._engine: SqliteEngine | None = None
        self._path = path
        self.reserve = reserve

    async def open(self) -> None:
        self._engine = await self._until_space(
            "open", lambda: self._runner.run(SqliteEngine, self._path, self.reserve)
        )

    async def _until_space(self, what: str, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """`attempt`, retried until the disk has room for it; a start that cannot go on
        for lack of space says so once (no traceback, no exit)."""
        waiting = False
        while True:
            try:
                result = await attempt()
            except sqlite3.OperationalError as exc:
                if not _out_of_space(exc):
                    raise
                if not waiting:
                    log.error(
                        "metadata store %s cannot %s: the disk is full (%s); retrying "
                        "every %.0f s until space returns",
                        self._path,
                        what,
                        exc,
                        SPACE_RETRY_S,
                    )
                    waiting = True
                await asyncio.sleep(SPACE_RETRY_S)
                continue
            if waiting:
                log.info("metadata store %s: %s done, disk space returned", self._path, what)
            return result

    async def close(self) -> None:
        if self._engine is not None:
            await self._runner.run(self._engine.close)
            self._engine = None
            if self.reserve is not None and not self.reserve.present:
                # Closing deleted SQLite's -wal and -shm files: hold that space for the
                # next start (it needs room to open and to claim leadership), rather than
                # leave it to whatever else fills the disk meanwhile.
                await self._runner.run(self.reserve.hold_what_fits)
        self._runner.close()

    async def _call(self, method: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await self._runner.run(method, *args, **kwargs)

    @property
    def engine(self) -> SqliteEngine:
        assert self._engine is not None, "the metadata store is not open"
        return self._engine

    async def cluster_id(self) -> str:
        return await self._call(self.engine.cluster_id)

    async def next_counter(self, name: str, count: int = 1) -> int:
        return await self._call(self.engine.next_counter, name, count)

    async def create_topic(
        self, name: str, partitions: int, configs: dict[str, str]
    ) -> TopicRecord:
        return await self._call(self.engine.create_topic, name, partitions, configs)

    async def create_topics(
        self, names: list[str], partitions: int, configs: dict[str, str]
    ) -> list[TopicRecord]:
        return await self._call(self.engine.create_topics, names, partitions, configs)

    async def topics(self) -> list[TopicRecord]:
        return await self._call(self.engine.topics)

    async def delete_topic(self, name: str, delete_due_ms: int) -> list[str]:
        return await self._call(self.engine.delete_topic, name, delete_due_ms)

    async def add_partitions(self, name: str, total: int) -> None:
        await self._call(self.engine.add_partitions, name, total)

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        await self._call(self.engine.set_topic_configs, name, configs)

    async def partitions(self, topic: str | None = None) -> list[PartitionRecord]:
        return await self._call(self.engine.partitions, topic)

    async def claim_leadership(self, claims: dict[int, int], node_id: int) -> ClaimOutcome:
        # A start leads nothing before this commits: wait for space rather than fail.
        return await self._until_space(
            "claim leadership",
            lambda: self._call(self.engine.claim_leadership, claims, node_id),
        )

    async def commit_object(self, commit: ObjectCommit) -> CommitOutcome:
        return await self._call(self.engine.commit_object, commit)

    async def ranges_by_stream(self) -> dict[int, list[RangeRecord]]:
        return await self._call(self.engine.ranges_by_stream)

    async def advance_log_start(self, stream_id: int, offset: int, delete_due_ms: int) -> list[str]:
        return await self._call(self.engine.advance_log_start, stream_id, offset, delete_due_ms)

    async def commit_offsets(self, group_id: str, rows: list[OffsetRow], now_ms: int) -> None:
        await self._call(self.engine.commit_offsets, group_id, rows, now_ms)

    async def fetch_offsets(self, group_id: str) -> dict[tuple[str, int], CommittedOffset]:
        return await self._call(self.engine.fetch_offsets, group_id)

    async def delete_offsets(self, group_id: str, partitions: list[tuple[str, int]] | None) -> None:
        await self._call(self.engine.delete_offsets, group_id, partitions)

    async def delete_topic_offsets(self, topic: str) -> None:
        await self._call(self.engine.delete_topic_offsets, topic)

    async def groups_with_offsets(self) -> list[str]:
        return await self._call(self.engine.groups_with_offsets)

    async def acls(self) -> list[AclRecord]:
        return await self._call(self.engine.acls)

    async def create_acls(self, records: list[AclRecord]) -> None:
        await self._call(self.engine.create_acls, records)

    async def delete_acls(self, records: list[AclRecord]) -> None:
        await self._call(self.engine.delete_acls, records)

    async def scram_credentials(self) -> list[ScramCredentialRecord]:
        return await self._call(self.engine.scram_credentials)

    async def alter_scram_credentials(
        self, upserts: list[ScramCredentialRecord], deletions: list[tuple[str, str]]
    ) -> None:
        await self._call(self.engine.alter_scram_credentials, upserts, deletions)
