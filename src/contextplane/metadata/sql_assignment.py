"""The statements of the controller and of partition assignment (RFC 0004 §1, §2), and
the engine and store methods over them (mixed into `SqlEngine` and `SqlMetadataStore`).

- The controller is a lease on the one `controller` row, taken or renewed with each
  heartbeat on the database's clock. Taking it bumps `controller_epoch`; every controller
  write first reads the row locked and writes nothing unless the epoch is still the
  writer's (the fence, as Kafka's controller epoch).
- Change generations are counters bumped in the transaction of the change they announce:
  `generation.topics` (topics created, deleted, grown, reconfigured),
  `generation.assignment` (a partition's target or leader changed; each changed row also
  gets the new value in `assignment_generation`, so a broker reads only the rows past the
  generation it last saw) and `generation.security` (ACLs, SCRAM credentials or client
  quotas changed). A transaction bumps its counter before it writes the rows, so the
  counter's row lock orders the changes: a reader that sees generation G sees every row
  written at G or below.
- On PostgreSQL each bump also sends `NOTIFY` on GENERATION_CHANNEL in its transaction
  (delivered on commit, identical ones of a transaction folded into one), which wakes
  every broker's registry to read the generations at once (metadata/postgres_listener.py)
  instead of at its next heartbeat. A change of the live brokers themselves (a
  registration, its endpoints published once bound, a clean stop) sends the same NOTIFY
  without a generation (`announce`): the woken heartbeat reads the brokers, so a broker
  that just registered is a placement candidate and listed in Metadata on every broker
  within milliseconds, not a heartbeat later.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from contextplane.metadata.records import AssignmentRow, ClusterHeartbeat, ControllerRecord
from contextplane.metadata.sql_db import Db
from contextplane.metadata.sql_owed_marks import set_unmarked_acks, write_owed_marks

# The states whose lease counts: a broker shutting down still leads until it has handed
# over (a stopped or expired broker is listed by no one).
LEASED_STATES = "('live', 'draining', 'shutting_down')"

TOPICS_GENERATION = "generation.topics"
ASSIGNMENT_GENERATION = "generation.assignment"
SECURITY_GENERATION = "generation.security"
# The PostgreSQL notification channel of the change generations (the payload: the name).
GENERATION_CHANNEL = "contextplane_generations"
# The payload announcing a change of the live brokers (no generation counts those).
BROKERS_CHANGED = "brokers"

# Chooses a new partition's target node from its stream id (the placement function).
TargetOf = Callable[[int], int]


def bump_generation(db: Db, name: str) -> int:
    """Move a change generation on, inside the caller's transaction; returns its value."""
    (value,) = db.execute(
        "INSERT INTO counters VALUES (?, 1) ON CONFLICT (name)"
        " DO UPDATE SET value=counters.value + 1 RETURNING value",
        (name,),
    ).fetchone()
    announce(db, name)
    return int(value)


def announce(db: Db, what: str) -> None:
    """Wake every broker's registry once the caller's transaction commits (PostgreSQL
    delivers NOTIFY on commit; nothing on a rollback)."""
    if not isinstance(db, sqlite3.Connection):  # SQLite: one broker, nobody to wake
        db.execute("SELECT pg_notify(?, ?)", (GENERATION_CHANNEL, what))


def generation(db: Db, name: str) -> int:
    row = db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
    return 0 if row is None else int(row[0])


def place_partitions(db: Db, topic: str, first: int, placement: TargetOf | None) -> None:
    """Write the target of `topic`'s partitions from `first` on (just inserted) and
    announce them, in the creating transaction."""
    announced = bump_generation(db, ASSIGNMENT_GENERATION)
    rows = db.execute(
        "SELECT stream_id FROM partitions WHERE topic=? AND partition >= ?", (topic, first)
    ).fetchall()
    db.executemany(
        "UPDATE partitions SET target_node=?, assignment_generation=? WHERE stream_id=?",
        [
            (placement(int(r[0])) if placement is not None else -1, announced, int(r[0]))
            for r in rows
        ],
    )


class AssignmentRows:
    """`SqlEngine`'s controller and assignment methods (its connection, transactions,
    row-lock clause and clock)."""

    _db: Db
    _lock: str
    _now_ms: str

    def _sql(self, statement: str) -> str:
        return statement.replace("NOW_MS", self._now_ms)

    def cluster_heartbeat(
        self,
        node_id: int,
        incarnation: int,
        session_ms: int,
        controller_epoch: int,
        owed_marks: dict[int, int] | None = None,
        unmarked_acks: bool | None = None,
        load: str | None = None,
    ) -> ClusterHeartbeat | None:
        """Renew this incarnation's lease (and write its `load` unless None), renew or
        take the controller's, and read the live brokers, the controller and the change
        generations, in one transaction; None when the registration is no longer this
        incarnation's.

        The dirty marks this broker owes (`owed_marks`, stream -> epoch: records it
        acknowledged while the store was out of its reach) are written first, so no
        renewal, and no clearing of its `unmarked_acks` flag (set to `unmarked_acks`
        unless None), commits without them (RFC 0004 §5's outage path).

        `controller_epoch` is the epoch this incarnation holds the controller at (-1:
        none): it renews only that epoch. An expired controller lease is taken by
        whoever comes first, and a controller row of this node at an epoch this
        incarnation does not hold (its predecessor's) is taken at once; both bump the
        epoch, fencing the previous holder."""
        engine: Any = self  # a SqlEngine: its transactions and registry statements
        with engine._transaction():
            owed_marked = write_owed_marks(self._db, node_id, owed_marks or {})
            if not engine._renew(node_id, incarnation, session_ms, load):
                return None
            if unmarked_acks is not None:
                set_unmarked_acks(self._db, node_id, incarnation, unmarked_acks)
            self._db.execute(
                self._sql(
                    "UPDATE controller SET lease_expires_ms = NOW_MS + ?"
                    " WHERE id=1 AND node_id=? AND controller_epoch=?"
                    " AND lease_expires_ms >= NOW_MS"
                ),
                (session_ms, node_id, controller_epoch),
            )
            self._db.execute(
                self._sql(
                    "UPDATE controller SET node_id=?, controller_epoch=controller_epoch+1,"
                    " lease_expires_ms = NOW_MS + ? WHERE id=1 AND (lease_expires_ms < NOW_MS"
                    " OR (node_id=? AND controller_epoch<>?))"
                ),
                (node_id, session_ms, node_id, controller_epoch),
            )
            controller = self._controller()
            return ClusterHeartbeat(
                engine.live_brokers(),
                controller,
                generation(self._db, TOPICS_GENERATION),
                generation(self._db, ASSIGNMENT_GENERATION),
                generation(self._db, SECURITY_GENERATION),
                frozenset(owed_marked),
            )

    def _controller(self, lock: str = "") -> ControllerRecord:
        row = self._db.execute(
            "SELECT node_id, controller_epoch FROM controller WHERE id=1" + lock
        ).fetchone()
        return ControllerRecord(int(row[0]), int(row[1]))

    def controller(self) -> ControllerRecord:
        return self._controller()

    def resign_controller(self, node_id: int, controller_epoch: int) -> None:
        """A clean stop: the lease ends now, so another broker takes it at its next
        heartbeat instead of after a session timeout."""
        engine: Any = self
        with engine._transaction():
            self._db.execute(
                self._sql(
                    "UPDATE controller SET lease_expires_ms = NOW_MS - 1"
                    " WHERE id=1 AND node_id=? AND controller_epoch=?"
                ),
                (node_id, controller_epoch),
            )

    def _fenced(self, controller: ControllerRecord) -> bool:
        """In a controller write's transaction: is `controller` no longer the controller
        (the row stays locked until the transaction ends)?"""
        return self._controller(self._lock) != controller

    def move_partitions(
        self, controller: ControllerRecord, moves: dict[int, int], reason: str
    ) -> bool:
        """The controller's write of new targets (stream -> node), a `reassignments` row
        per partition whose target changes, in one fenced transaction; False (nothing
        written) when `controller` is no longer the controller."""
        engine: Any = self
        with engine._transaction():
            if self._fenced(controller):
                return False
            announced = bump_generation(self._db, ASSIGNMENT_GENERATION)
            for stream_id, target in sorted(moves.items()):
                row = self._db.execute(
                    "SELECT leader_node, target_node FROM partitions WHERE stream_id=?"
                    + self._lock,
                    (stream_id,),
                ).fetchone()
                if row is None or int(row[1]) == target:
                    continue
                self._db.execute(
                    "UPDATE partitions SET target_node=?, assignment_generation=?"
                    " WHERE stream_id=?",
                    (target, announced, stream_id),
                )
                if int(row[0]) == target:  # back to its leader: a move cancelled
                    self._db.execute("DELETE FROM reassignments WHERE stream_id=?", (stream_id,))
                    continue
                self._db.execute(
                    self._sql(
                        "INSERT INTO reassignments VALUES (?, ?, ?, NOW_MS, ?)"
                        " ON CONFLICT (stream_id) DO UPDATE SET source_node=excluded.source_node,"
                        " target_node=excluded.target_node, started_ms=excluded.started_ms,"
                        " reason=excluded.reason"
                    ),
                    (stream_id, int(row[0]), target, reason),
                )
            return True

    def assignment_changes(self, since: int) -> tuple[int, list[AssignmentRow]]:
        """The assignment generation and every partition row changed after `since`
        (every row for 0)."""
        engine: Any = self
        with engine._transaction():
            current = generation(self._db, ASSIGNMENT_GENERATION)
            # The leader's lease is read in the same statement as the rows: a row the
            # controller retargeted off a lapsed broker is never read with it still live.
            rows = self._db.execute(
                self._sql(
                    "SELECT stream_id, topic, partition, leader_node, leader_epoch, target_node,"
                    " EXISTS (SELECT 1 FROM brokers b WHERE b.node_id=partitions.leader_node"
                    f" AND b.state IN {LEASED_STATES} AND b.lease_expires_ms >= NOW_MS)"
                    " FROM partitions WHERE assignment_generation > ? ORDER BY stream_id"
                ),
                (since,),
            ).fetchall()
        return current, [
            AssignmentRow(
                int(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), bool(r[6])
            )
            for r in rows
        ]

    def release_leadership(self, stream_id: int, node_id: int, epoch: int) -> bool:
        """A handover's end: the partition has no leader (a claim may take it at once)
        if `node_id` still leads it at `epoch`; the reassignment, if any, is done."""
        engine: Any = self
        with engine._transaction():
            announced = bump_generation(self._db, ASSIGNMENT_GENERATION)
            released = self._db.execute(
                "UPDATE partitions SET leader_node=-1, wal_dirty=0, assignment_generation=?"
                " WHERE stream_id=? AND leader_node=? AND leader_epoch=?",
                (announced, stream_id, node_id, epoch),
            ).rowcount
            return released == 1

    def _claimed(self, streams: Iterable[int], node_id: int) -> None:
        """In a claim's transaction: the reassignments that end with it."""
        self._db.executemany(
            "DELETE FROM reassignments WHERE stream_id=? AND target_node=?",
            [(stream_id, node_id) for stream_id in streams],
        )


class AssignmentCalls:
    """`SqlMetadataStore`'s controller and assignment methods, run on its worker."""

    async def cluster_heartbeat(
        self,
        node_id: int,
        incarnation: int,
        session_ms: int,
        controller_epoch: int,
        owed_marks: dict[int, int] | None = None,
        unmarked_acks: bool | None = None,
        load: str | None = None,
    ) -> ClusterHeartbeat | None:
        store: Any = self  # a SqlMetadataStore
        result: ClusterHeartbeat | None = await store._call(
            store.engine.cluster_heartbeat,
            node_id,
            incarnation,
            session_ms,
            controller_epoch,
            owed_marks,
            unmarked_acks,
            load,
        )
        return result

    async def controller(self) -> ControllerRecord:
        store: Any = self
        result: ControllerRecord = await store._call(store.engine.controller)
        return result

    async def resign_controller(self, node_id: int, controller_epoch: int) -> None:
        store: Any = self
        await store._call(store.engine.resign_controller, node_id, controller_epoch)

    async def move_partitions(
        self, controller: ControllerRecord, moves: dict[int, int], reason: str
    ) -> bool:
        store: Any = self
        result: bool = await store._call(store.engine.move_partitions, controller, moves, reason)
        return result

    async def assignment_changes(self, since: int) -> tuple[int, list[AssignmentRow]]:
        store: Any = self
        result: tuple[int, list[AssignmentRow]] = await store._call(
            store.engine.assignment_changes, since
        )
        return result

    async def release_leadership(self, stream_id: int, node_id: int, epoch: int) -> bool:
        store: Any = self
        result: bool = await store._call(store.engine.release_leadership, stream_id, node_id, epoch)
        return result
