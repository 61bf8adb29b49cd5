"""The metadata store's logic, written once for every SQL engine: `SqlEngine` holds the
statements and the transactions of each method; an engine (sqlite.py, postgres.py)
supplies the connection (`sql_db.Db`), its transactions, the row-lock clause and what a
failed write may retry.

Every change readers rely on is one transaction. An object commit, the cleaner's swap and
object compaction's swap read each partition's leader epoch with `_lock` (PostgreSQL's
`FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` already holds the one write lock), in stream
order, in the transaction that publishes their ranges.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, ParamSpec, TypeVar

from contextplane.errors import CoordinatorFenced, KafkaError
from contextplane.metadata import sql_acls, sql_producer_state, sql_replica, sql_scram
from contextplane.metadata.records import (
    AbortedRow,
    AclRecord,
    ClaimOutcome,
    CommitOutcome,
    CommittedOffset,
    ObjectCommit,
    OffsetRow,
    PartitionRecord,
    RangeRecord,
    RangeSummary,
    ReplicaRanges,
    ScramCredentialRecord,
    StoredProducerState,
    TopicRecord,
    WalSource,
)
from contextplane.metadata.sql_assignment import (
    ASSIGNMENT_GENERATION,
    LEASED_STATES,
    SECURITY_GENERATION,
    TOPICS_GENERATION,
    AssignmentRows,
    TargetOf,
    bump_generation,
    place_partitions,
)
from contextplane.metadata.sql_broker_configs import BrokerConfigRows
from contextplane.metadata.sql_brokers import BrokerRows
from contextplane.metadata.sql_classic_groups import ClassicGroupRows
from contextplane.metadata.sql_consumer_groups import ConsumerGroupRows
from contextplane.metadata.sql_db import Db
from contextplane.metadata.sql_objects import (
    CompactionRows,
    ObjectRows,
    insert_object,
    unreference_orphans,
)
from contextplane.metadata.sql_offsets import upsert_group_offsets
from contextplane.metadata.sql_quotas import QuotaRows
from contextplane.metadata.sql_reassignments import ReassignmentRows
from contextplane.metadata.sql_share_group_members import ShareGroupRows
from contextplane.metadata.sql_share_groups import SharePartitionRows
from contextplane.metadata.sql_transactions import TransactionRows
from contextplane.metadata.sql_wal_dirty import (
    WalDirtyRows,
    clear_dirty,
    dirty_leader,
    dirty_sql,
    unrecovered_wals,
    wal_source,
)
from contextplane.protocol.error_codes import ErrorCode

_P = ParamSpec("_P")
_T = TypeVar("_T")


def write(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """A write: the engine's `_run_write` runs it (SQLite retries one that failed for
    lack of disk in its reserved space)."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        engine = args[0]
        assert isinstance(engine, SqlEngine)
        return engine._run_write(functools.partial(method, *args, **kwargs))

    return wrapper


class SqlEngine(
    BrokerConfigRows,
    QuotaRows,
    ClassicGroupRows,
    ShareGroupRows,
    ConsumerGroupRows,
    SharePartitionRows,
    TransactionRows,
    ObjectRows,
    CompactionRows,
    BrokerRows,
    AssignmentRows,
    ReassignmentRows,
    WalDirtyRows,
):
    """Synchronous: one connection, called from one thread at a time."""

    _db: Db
    # Appended to a SELECT of the partition rows a transaction's check depends on.
    _lock: str = ""
    # The database's clock in milliseconds since the epoch, as an SQL expression (leases
    # are judged on it). SQLite's is the one host's clock: fine for the one broker it allows.
    _now_ms: str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"

    def _transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _run_write(self, attempt: Callable[[], _T]) -> _T:
        return attempt()

    def _before_range_deletes(self) -> None:
        """Called in a transaction before it deletes ranges and looks for objects left
        unreferenced: an engine whose transactions run concurrently serialises these
        (two that each drop one of an object's last two ranges would each still see the
        other's, and neither would queue the object for deletion)."""

    def close(self) -> None:
        raise NotImplementedError

    # -- cluster -----------------------------------------------------------------------

    @write
    def cluster_id(self) -> str:
        with self._transaction():
            self._db.execute(
                "INSERT INTO cluster VALUES ('cluster_id', ?) ON CONFLICT (key) DO NOTHING",
                (uuid.uuid4().hex[:22],),
            )
            row = self._db.execute("SELECT value FROM cluster WHERE key='cluster_id'").fetchone()
            return str(row[0])

    @write
    def next_counter(self, name: str, count: int = 1) -> int:
        """Allocate `count` values of a durable counter; returns the first."""
        with self._transaction():
            (value,) = self._db.execute(
                "INSERT INTO counters VALUES (?, ?) ON CONFLICT (name)"
                " DO UPDATE SET value=counters.value + excluded.value RETURNING value",
                (name, count),
            ).fetchone()
            return int(value) - count

    # -- topics ------------------------------------------------------------------------

    def _insert_topic(
        self, name: str, partitions: int, configs: dict[str, str], placement: TargetOf | None
    ) -> TopicRecord | None:
        """Insert the topic and its partitions, each with its target node from
        `placement`; None when it exists (one statement decides, so two brokers creating
        it at once cannot both succeed)."""
        topic_id = uuid.uuid4().bytes
        inserted = self._db.execute(
            "INSERT INTO topics (name, topic_id, configs) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING RETURNING name",
            (name, topic_id, json.dumps(configs)),
        ).fetchone()
        if inserted is None:
            return None
        self._db.executemany(
            "INSERT INTO partitions (topic, partition) VALUES (?, ?)",
            [(name, p) for p in range(partitions)],
        )
        place_partitions(self._db, name, 0, placement)
        return TopicRecord(name, topic_id, partitions, configs)

    @write
    def create_topic(
        self,
        name: str,
        partitions: int,
        configs: dict[str, str],
        placement: TargetOf | None = None,
    ) -> TopicRecord:
        with self._transaction():
            bump_generation(self._db, TOPICS_GENERATION)
            created = self._insert_topic(name, partitions, configs, placement)
            if created is None:
                raise KafkaError(ErrorCode.topic_already_exists, f"Topic '{name}' already exists.")
            return created

    @write
    def create_topics(
        self,
        names: list[str],
        partitions: int,
        configs: dict[str, str],
        placement: TargetOf | None = None,
    ) -> list[TopicRecord]:
        """Create those of `names` that do not exist yet, all in one transaction."""
        with self._transaction():
            bump_generation(self._db, TOPICS_GENERATION)
            created = [
                self._insert_topic(name, partitions, configs, placement)
                for name in dict.fromkeys(names)
            ]
            return [topic for topic in created if topic is not None]

    def topics(self) -> list[TopicRecord]:
        rows = self._db.execute(
            "SELECT t.name, t.topic_id, t.configs, COUNT(p.partition) FROM topics t "
            "LEFT JOIN partitions p ON p.topic = t.name GROUP BY t.name ORDER BY t.name"
        ).fetchall()
        return [TopicRecord(r[0], bytes(r[1]), int(r[3]), json.loads(r[2])) for r in rows]

    def topic(self, name: str) -> TopicRecord | None:
        return self._topic_where("t.name", name)

    def topic_by_id(self, topic_id: bytes) -> TopicRecord | None:
        return self._topic_where("t.topic_id", topic_id)

    def _topic_where(self, column: str, value: str | bytes) -> TopicRecord | None:
        # Both columns are unique, so indexed: one row at most.
        row = self._db.execute(
            "SELECT t.name, t.topic_id, t.configs, COUNT(p.partition) FROM topics t "
            f"LEFT JOIN partitions p ON p.topic = t.name WHERE {column} = ? GROUP BY t.name",
            (value,),
        ).fetchone()
        return TopicRecord(row[0], bytes(row[1]), int(row[3]), json.loads(row[2])) if row else None

    @write
    def delete_topic(self, name: str, delete_due_ms: int) -> list[str]:
        """Delete a topic and its ranges; returns the keys of objects no range points at
        any more, now due for deletion at `delete_due_ms`."""
        with self._transaction():
            bump_generation(self._db, TOPICS_GENERATION)
            self._before_range_deletes()
            streams = [
                r[0]
                for r in self._db.execute(
                    "SELECT stream_id FROM partitions WHERE topic=? ORDER BY stream_id"
                    + self._lock,
                    (name,),
                ).fetchall()
            ]
            for stream_id in streams:
                self._db.execute("DELETE FROM ranges WHERE stream_id=?", (stream_id,))
            self._db.execute("DELETE FROM partitions WHERE topic=?", (name,))
            self._db.execute("DELETE FROM topics WHERE name=?", (name,))
            return unreference_orphans(self._db, delete_due_ms)

    @write
    def add_partitions(self, name: str, total: int, placement: TargetOf | None = None) -> None:
        with self._transaction():
            bump_generation(self._db, TOPICS_GENERATION)
            (current,) = self._db.execute(
                "SELECT COUNT(*) FROM partitions WHERE topic=?", (name,)
            ).fetchone()
            self._db.executemany(
                "INSERT INTO partitions (topic, partition) VALUES (?, ?)",
                [(name, p) for p in range(current, total)],
            )
            place_partitions(self._db, name, int(current), placement)

    @write
    def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        with self._transaction():
            bump_generation(self._db, TOPICS_GENERATION)
            self._db.execute(
                "UPDATE topics SET configs=? WHERE name=?", (json.dumps(configs), name)
            )

    # -- partitions --------------------------------------------------------------------

    def partitions(self, topic: str | None = None) -> list[PartitionRecord]:
        query = (
            "SELECT stream_id, topic, partition, leader_node, leader_epoch, log_start_offset,"
            " target_node, wal_dirty FROM partitions"
        )
        args: tuple[Any, ...] = ()
        if topic is not None:
            query += " WHERE topic=?"
            args = (topic,)
        rows = self._db.execute(query + " ORDER BY topic, partition", args).fetchall()
        states = sql_producer_state.load(self._db, topic)
        return [
            PartitionRecord(*r[:6], states.get(r[0], StoredProducerState()), int(r[6]), int(r[7]))
            for r in rows
        ]

    def leader_epoch(self, stream_id: int) -> int | None:
        """The stream's stored leader epoch, its row locked until the transaction ends
        (None: no such stream)."""
        row = self._db.execute(
            "SELECT leader_epoch FROM partitions WHERE stream_id=?" + self._lock, (stream_id,)
        ).fetchone()
        return None if row is None else int(row[0])

    @write
    def claim_leadership(
        self, claims: dict[int, int], node_id: int, unclean: frozenset[int] = frozenset()
    ) -> ClaimOutcome:
        """Lead each stream with epoch `seen + 1` (claims: stream -> epoch seen), in one
        transaction; a stream whose epoch moved since it was read is not claimed.

        The claimability conditions are in the claim itself, so a broker acting on a
        stale read never takes a partition from a live leader: it claims what it led
        itself (an earlier incarnation's, reopened at start), or a partition targeted at
        it (or at no one: rows older than targets) that nobody leads or whose leader's
        lease has lapsed (on the database's clock). A dirty partition (its leader's WAL
        holds acknowledged records in no object, RFC 0004 §5; or its leader's row says
        it may have acknowledged without marking, `unmarked_acks`) is claimed only by
        that leader's node, whose restart replays them, or by anyone when that leader's
        registration names an object WAL (`brokers.wal_url`: the claimer recovers them
        from it, `outcome.recovering`, with every other expired broker's unrecovered WAL
        after it, and the stream stays dirty at the new epoch), or,
        for the streams in `unclean` (unclean.leader.election.enable), by anyone, giving
        those records up."""
        outcome = ClaimOutcome({}, {})
        with self._transaction():
            announced = bump_generation(self._db, ASSIGNMENT_GENERATION)
            unrecovered: list[WalSource] | None = None  # read once, if needed
            for stream_id, seen_epoch in sorted(claims.items()):
                source = wal_source(self._db, stream_id, node_id, self._lock)
                allow_unclean = stream_id in unclean and source is None
                before = dirty_leader(self._db, stream_id) if allow_unclean else None
                # A recovery from an object WAL keeps the stream dirty, at the new epoch:
                # the claimer's WAL holds the records once it has replayed them.
                updated = self._db.execute(
                    "UPDATE partitions SET leader_node=?, leader_epoch=leader_epoch+1,"
                    " wal_dirty=CASE WHEN leader_node=? THEN wal_dirty"
                    " WHEN ?=1 THEN leader_epoch+1 ELSE 0 END,"
                    " assignment_generation=? WHERE stream_id=? AND leader_epoch=?"
                    f" AND (NOT {dirty_sql('partitions')} OR leader_node=? OR ?=1 OR ?=1)"
                    " AND (leader_node=? OR (target_node IN (?, -1) AND (leader_node=-1"
                    " OR NOT EXISTS (SELECT 1 FROM brokers b WHERE b.node_id=partitions.leader_node"
                    f" AND b.state IN {LEASED_STATES} AND b.lease_expires_ms >= "
                    + self._now_ms
                    + "))))",
                    (node_id, node_id, int(source is not None), announced, stream_id,
                     seen_epoch, node_id, int(allow_unclean), int(source is not None),
                     node_id, node_id),
                ).rowcount  # fmt: skip
                if updated == 1:
                    outcome.claimed[stream_id] = seen_epoch + 1
                    if source is not None:
                        if unrecovered is None:
                            unrecovered = unrecovered_wals(self._db, node_id)
                        outcome.recovering[stream_id] = (source,) + tuple(
                            w for w in unrecovered if w.node_id != source.node_id
                        )
                    if before is not None and before[0] != node_id:
                        outcome.unclean[stream_id] = before
                    continue
                row = self._db.execute(
                    f"SELECT leader_epoch, leader_node, {dirty_sql('partitions')} FROM partitions"
                    " WHERE stream_id=?" + self._lock,
                    (stream_id,),
                ).fetchone()
                if row is None:
                    continue
                if int(row[0]) == seen_epoch and row[2] and int(row[1]) != node_id:
                    outcome.dirty[stream_id] = int(row[1])
                else:
                    outcome.moved[stream_id] = int(row[0])
            self._claimed(outcome.claimed, node_id)
        return outcome

    # -- objects -----------------------------------------------------------------------

    @write
    def commit_object(self, commit: ObjectCommit) -> CommitOutcome:
        """Publish an uploaded object: its ranges become readable atomically, for every
        stream whose stored leader epoch is still the committer's (checked in the same
        transaction, the partition rows locked); the other streams' ranges are left out.

        Idempotent: a commit retried after its outcome was lost (the connection broke
        at COMMIT) publishes nothing twice. Object keys are never reused, so an object
        already known by this key is that earlier attempt's (its rows were visible once
        the partition rows were locked, an attempt still in flight holding them)."""
        outcome = CommitOutcome(committed=set(), epoch_mismatch={}, deleted=set())
        with self._transaction():
            for stream_id, epoch in sorted(commit.epochs.items()):
                stored = self.leader_epoch(stream_id)
                if stored is None:
                    outcome.deleted.add(stream_id)
                elif stored != epoch:
                    outcome.epoch_mismatch[stream_id] = stored
                else:
                    outcome.committed.add(stream_id)
            if self.known_objects([commit.key]):
                # Epochs only grow, and the committer held its own: a stream whose epoch
                # is still the committer's was committed by that attempt too.
                outcome.replayed = True
                return outcome
            if not outcome.committed:
                return outcome
            object_id = insert_object(self._db, commit.key, commit.size, commit.created_ms, 0, 0)
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
            sql_producer_state.write(self._db, commit.producer_states, outcome.committed)
            clear_dirty(self._db, commit.clear_dirty & outcome.committed)
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

    def ranges_of(self, stream_id: int) -> list[RangeRecord]:
        """One stream's ranges in offset order (a primary-key range scan)."""
        rows = self._db.execute(
            "SELECT r.stream_id, r.base_offset, r.end_offset, o.key, r.position, r.size,"
            " r.max_timestamp, COALESCE(r.created_ms, o.created_ms) FROM ranges r"
            " JOIN objects o ON o.object_id = r.object_id WHERE r.stream_id=?"
            " ORDER BY r.base_offset",
            (stream_id,),
        ).fetchall()
        return [RangeRecord(*row) for row in rows]

    def replica_ranges(
        self, topic: str, partition: int, since: int, aborted_since: int = -1
    ) -> ReplicaRanges | None:
        return sql_replica.replica_ranges(self._db, topic, partition, since, aborted_since)

    def aborted_in(self, stream_id: int, start: int, end: int, before: int) -> list[AbortedRow]:
        return sql_producer_state.aborted_in(self._db, stream_id, start, end, before)

    def range_summaries(self) -> dict[int, RangeSummary]:
        """Every partition's `RangeSummary` (partitions without ranges are left out): its
        first and last range found by two primary-key seeks a partition, so start-up
        does not grow with the rows retained (a GROUP BY over the ranges read all 1.28
        million rows of 100 GiB: seconds). `range_count` is therefore 1 or 2, two
        meaning "two or more" (retention and the cleaner ask no more); retained bytes
        would need every row and are left unknown (-1)."""
        rows = self._db.execute(
            "SELECT s.stream_id, l.end_offset, s.first_base = s.last_base, f.max_timestamp"
            " FROM (SELECT p.stream_id,"
            " (SELECT r.base_offset FROM ranges r WHERE r.stream_id = p.stream_id"
            " ORDER BY r.base_offset LIMIT 1) AS first_base,"
            " (SELECT r.base_offset FROM ranges r WHERE r.stream_id = p.stream_id"
            " ORDER BY r.base_offset DESC LIMIT 1) AS last_base FROM partitions p) s"
            " JOIN ranges f ON f.stream_id = s.stream_id AND f.base_offset = s.first_base"
            " JOIN ranges l ON l.stream_id = s.stream_id AND l.base_offset = s.last_base"
        ).fetchall()
        return {
            int(r[0]): RangeSummary(int(r[0]), int(r[1]), -1, 1 if r[2] else 2, int(r[3]))
            for r in rows
        }

    @write
    def advance_log_start(self, stream_id: int, offset: int, delete_due_ms: int) -> list[str]:
        """Move the log start offset forward (never back); drop ranges wholly below it.

        Returns the keys of objects that no range references any more, now due for
        deletion at `delete_due_ms`.
        """
        with self._transaction():
            self._before_range_deletes()
            self._db.execute(
                "UPDATE partitions SET log_start_offset=CASE WHEN log_start_offset > ?"
                " THEN log_start_offset ELSE ? END WHERE stream_id=?",
                (offset, offset, stream_id),
            )
            self._db.execute(
                "DELETE FROM ranges WHERE stream_id=? AND end_offset <= ?", (stream_id, offset)
            )
            return unreference_orphans(self._db, delete_due_ms)

    # -- group offsets -----------------------------------------------------------------

    def _check_shard(self, fence: tuple[int, int] | None) -> None:
        """A coordinator's write is fenced by its shard's (stream, leader epoch), read
        locked in the write's transaction as `commit_object` reads its streams'."""
        if fence is not None and self.leader_epoch(fence[0]) != fence[1]:
            raise CoordinatorFenced(fence[0])

    def check_shards(self, fences: Iterable[tuple[int, int]]) -> None:
        for fence in sorted(fences):  # one lock order for every writer
            self._check_shard(fence)

    @write
    def commit_offsets(
        self,
        group_id: str,
        rows: Iterable[OffsetRow],
        now_ms: int,
        fence: tuple[int, int] | None = None,
    ) -> None:
        with self._transaction():
            self._check_shard(fence)
            upsert_group_offsets(self._db, group_id, rows, now_ms)

    def fetch_offsets(self, group_id: str) -> dict[tuple[str, int], CommittedOffset]:
        rows = self._db.execute(
            "SELECT topic, partition, committed_offset, leader_epoch, metadata, commit_ms"
            " FROM group_offsets WHERE group_id=?",
            (group_id,),
        ).fetchall()
        return {(r[0], r[1]): CommittedOffset(r[2], r[3], r[4], r[5]) for r in rows}

    @write
    def delete_offsets(
        self,
        group_id: str,
        partitions: list[tuple[str, int]] | None,
        fence: tuple[int, int] | None = None,
    ) -> None:
        with self._transaction():
            self._check_shard(fence)
            if partitions is None:
                self._db.execute("DELETE FROM group_offsets WHERE group_id=?", (group_id,))
            else:
                self._db.executemany(
                    "DELETE FROM group_offsets WHERE group_id=? AND topic=? AND partition=?",
                    [(group_id, t, p) for t, p in partitions],
                )

    @write
    def delete_topic_offsets(self, topic: str) -> None:
        """Every group's committed offsets of a deleted topic (Kafka's onPartitionsDeleted)."""
        with self._transaction():
            self._db.execute("DELETE FROM group_offsets WHERE topic=?", (topic,))

    def groups_with_offsets(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT group_id FROM group_offsets").fetchall()
        return [r[0] for r in rows]

    # -- ACLs --------------------------------------------------------------------------

    def acls(self) -> list[AclRecord]:
        return sql_acls.load(self._db)

    @write
    def create_acls(self, records: Iterable[AclRecord]) -> None:
        with self._transaction():
            bump_generation(self._db, SECURITY_GENERATION)
            sql_acls.insert(self._db, records)

    @write
    def delete_acls(self, records: Iterable[AclRecord]) -> None:
        with self._transaction():
            bump_generation(self._db, SECURITY_GENERATION)
            sql_acls.delete(self._db, records)

    alter_client_quotas = write(QuotaRows.alter_client_quotas)
    move_partitions = write(AssignmentRows.move_partitions)
    release_leadership = write(AssignmentRows.release_leadership)
    resign_controller = write(AssignmentRows.resign_controller)
    cancel_reassignments = write(ReassignmentRows.cancel_reassignments)

    # -- SCRAM credentials -------------------------------------------------------------

    def scram_credentials(self) -> list[ScramCredentialRecord]:
        return sql_scram.load(self._db)

    @write
    def alter_scram_credentials(
        self, upserts: list[ScramCredentialRecord], deletions: list[tuple[str, str]]
    ) -> None:
        with self._transaction():
            bump_generation(self._db, SECURITY_GENERATION)
            sql_scram.alter(self._db, upserts, deletions)
