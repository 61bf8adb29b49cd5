"""The statements of `partitions.wal_dirty` and of the controller's failover (RFC 0004
§5), and the engine and store methods over them (mixed into `SqlEngine` and
`SqlMetadataStore`).

`wal_dirty` is the leader epoch at which a leader's WAL came to hold acknowledged
records that are in no committed object (0: none). The leader marks it before the
first acknowledgement after the partition was clean, only where it still leads at that
epoch (so a deposed leader's mark matches no row and it acknowledges nothing); an object
commit that publishes every record the leader had appended clears it
(`SqlEngine.commit_object`); a claim by another node refuses a dirty partition
(`SqlEngine.claim_leadership`) unless the dead leader's WAL is an object WAL
(`brokers.wal_url`), which the claimer recovers. The controller's failover therefore
moves a dead broker's clean partitions, and its dirty ones only to one recoverer when its
WAL is in the object store: otherwise they wait for it to return and replay its WAL.

The outage path: a broker whose row has `unmarked_acks` set (its heartbeat sets it only
while it is the only live broker) may acknowledge records of a clean partition without
its mark when the store is out of its reach, and owes the mark: every partition it leads
counts as dirty (`dirty_sql`) until a heartbeat or clean stop of its writes the owed
marks and clears the flag in one transaction (`write_owed_marks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from contextplane.metadata.records import ControllerRecord, Expiry, WalSource
from contextplane.metadata.sql_assignment import (
    ASSIGNMENT_GENERATION,
    LEASED_STATES,
    TargetOf,
    bump_generation,
)
from contextplane.metadata.sql_db import Db

# The controller's placement over the live brokers but those given (None: none left).
Placing = Callable[[frozenset[int]], TargetOf | None]


def dirty_sql(partition: str) -> str:
    """Whether the row `partition` (a table name or alias) is dirty: marked, or led by a
    broker that may have acknowledged records of it without marking it."""
    return (
        f"({partition}.wal_dirty<>0 OR EXISTS (SELECT 1 FROM brokers u"
        f" WHERE u.node_id={partition}.leader_node AND u.unmarked_acks<>0))"
    )


def clear_dirty(db: Db, streams: Iterable[int]) -> None:
    """In a commit's transaction that checked these streams' epochs: clean again."""
    db.executemany(
        "UPDATE partitions SET wal_dirty=0 WHERE stream_id=? AND wal_dirty<>0",
        [(stream_id,) for stream_id in sorted(streams)],
    )


def wal_source(db: Db, stream_id: int, claimer: int, lock: str) -> WalSource | None:
    """The object WAL a claim by `claimer` recovers `stream_id` from: its leader's, when
    that is another broker whose registration names an object WAL and the stream is
    dirty (RFC 0004 §4); None otherwise. Locks the partition row for the claim."""
    row = db.execute(
        f"SELECT b.node_id, b.incarnation, b.wal_url FROM partitions p JOIN brokers b"
        f" ON b.node_id=p.leader_node WHERE p.stream_id=? AND p.leader_node<>?"
        f" AND b.wal_url IS NOT NULL AND {dirty_sql('p')}" + lock,
        (stream_id, claimer),
    ).fetchone()
    return None if row is None else WalSource(int(row[0]), int(row[1]), str(row[2]))


def unrecovered_wals(db: Db, claimer: int) -> list[WalSource]:
    """Every expired broker's object WAL not yet marked recovered (not `claimer`'s)."""
    rows = db.execute(
        "SELECT node_id, incarnation, wal_url FROM brokers WHERE state='expired'"
        " AND wal_url IS NOT NULL AND node_id<>? ORDER BY incarnation",
        (claimer,),
    ).fetchall()
    return [WalSource(int(r[0]), int(r[1]), str(r[2])) for r in rows]


def dirty_leader(db: Db, stream_id: int) -> tuple[int, int] | None:
    """A dirty stream's (leader node, object end offset); None when it is clean."""
    row = db.execute(
        f"SELECT p.leader_node, {dirty_sql('p')}, (SELECT MAX(r.end_offset) FROM ranges r"
        " WHERE r.stream_id=p.stream_id), p.log_start_offset FROM partitions p"
        " WHERE p.stream_id=?",
        (stream_id,),
    ).fetchone()
    if row is None or not row[1]:
        return None
    return int(row[0]), max(int(row[2] or 0), int(row[3]))


class WalDirtyRows:
    """`SqlEngine`'s dirty marks and failover (its connection, transactions and clock)."""

    _db: Db
    _lock: str
    _now_ms: str

    def mark_wal_dirty(self, epochs: dict[int, int]) -> set[int]:
        engine: Any = self  # a SqlEngine: its transactions and writes
        return engine._run_write(lambda: self._mark(epochs))  # type: ignore[no-any-return]

    def _mark(self, epochs: dict[int, int]) -> set[int]:
        engine: Any = self
        marked = set()
        with engine._transaction():
            for stream_id, epoch in sorted(epochs.items()):
                if self._db.execute(
                    "UPDATE partitions SET wal_dirty=? WHERE stream_id=? AND leader_epoch=?",
                    (epoch, stream_id, epoch),
                ).rowcount:
                    marked.add(stream_id)
        return marked

    def settle_wal_dirty(self, dirty: dict[int, int], clean: dict[int, int]) -> None:
        engine: Any = self
        with engine._transaction():
            self._db.executemany(
                "UPDATE partitions SET wal_dirty=? WHERE stream_id=? AND leader_epoch=?",
                [(epoch, stream_id, epoch) for stream_id, epoch in sorted(dirty.items())]
                + [(0, stream_id, epoch) for stream_id, epoch in sorted(clean.items())],
            )

    def expire_brokers(
        self,
        controller: ControllerRecord,
        placement: Placing,
        unclean_topics: frozenset[str] = frozenset(),
    ) -> list[Expiry]:
        """Mark every broker whose lease lapsed (database clock) expired and retarget its
        partitions, in one transaction fenced by the controller epoch (nothing written
        when `controller` no longer holds it). A partition it leads or is targeted at
        goes where `placement(dead nodes)` says (reason `failover`), unless it is dirty
        and led by it: that one stays targeted at it, offline until it returns, except in
        `unclean_topics` (unclean.leader.election.enable: moved all the same, its
        un-uploaded records given up by the claim), or when its registration names an
        object WAL: then every such partition goes to one live broker, the recoverer,
        which claims them and replays that WAL. An offline partition's move to a live
        broker stays in flight, completed once its leader returns. With no placement
        (no live broker to move to) the brokers are only marked. The controller's own
        node is never expired here."""
        engine: Any = self
        expiries: list[Expiry] = []
        with engine._transaction():
            if engine._fenced(controller):
                return []
            # node -> whether it may have acknowledged without marks (all its
            # partitions then count as dirty), and whether its WAL is an object WAL
            # Never its own node: the controller runs this pass, so it is alive; its lease
            # lapsing only means its heartbeat was late (a stalled loop), and expiring it
            # would stop a single broker. A controller that is truly gone loses the
            # controller lease to another broker, which then expires it.
            brokers = self._db.execute(
                engine._sql(
                    "SELECT node_id, unmarked_acks, wal_url FROM brokers"
                    f" WHERE state IN {LEASED_STATES} AND lease_expires_ms < NOW_MS"
                    " AND node_id <> ? ORDER BY node_id" + self._lock
                ),
                (controller.node_id,),
            ).fetchall()
            unmarked = {int(row[0]): int(row[1]) != 0 for row in brokers}
            object_wal = {int(row[0]) for row in brokers if row[2] is not None}
            dead = list(unmarked)
            if not dead:
                return []
            announced = bump_generation(self._db, ASSIGNMENT_GENERATION)
            target_of = placement(frozenset(dead))
            for node_id in dead:
                self._db.execute("UPDATE brokers SET state='expired' WHERE node_id=?", (node_id,))
                rows = self._db.execute(
                    "SELECT stream_id, leader_node, target_node, wal_dirty, topic FROM partitions"
                    " WHERE leader_node=? OR target_node=? ORDER BY stream_id" + self._lock,
                    (node_id, node_id),
                ).fetchall()
                moved: dict[int, int] = {}
                offline: list[int] = []
                recoverer = -1
                for stream_id, leader, target, wal_dirty, topic in rows:
                    stream_id, leader, target = int(stream_id), int(leader), int(target)
                    dirty = int(wal_dirty) != 0 or unmarked[node_id]
                    if dirty and leader == node_id and node_id in object_wal and target_of:
                        # Its WAL is in the object store: one broker reads it once and
                        # recovers every dirty partition (RFC 0004 §4).
                        if recoverer == -1:
                            recoverer = target_of(stream_id)
                        moved[stream_id] = recoverer
                        self._retarget(announced, stream_id, leader, recoverer)
                        continue
                    if dirty and leader == node_id and topic not in unclean_topics:
                        # Offline until it returns. A move of it in flight to a live
                        # broker waits, listed, as a Kafka reassignment of an offline
                        # replica does: the target's claim is refused while it is dirty,
                        # and the returning broker reopens it (it led it), replays its
                        # WAL and then hands it over. One to a dead broker is called off.
                        offline.append(stream_id)
                        if target != node_id and target in dead:
                            self._db.execute(
                                "UPDATE partitions SET target_node=?, assignment_generation=?"
                                " WHERE stream_id=?",
                                (node_id, announced, stream_id),
                            )
                            self._db.execute(
                                "DELETE FROM reassignments WHERE stream_id=?", (stream_id,)
                            )
                        continue
                    if target != node_id and target not in dead:
                        # A move in flight to a live broker: announced again, so its
                        # target reads it with the leader's lease lapsed and claims it.
                        self._db.execute(
                            "UPDATE partitions SET assignment_generation=? WHERE stream_id=?",
                            (announced, stream_id),
                        )
                        continue
                    if target_of is None:
                        continue
                    moved[stream_id] = target_of(stream_id)
                    self._retarget(announced, stream_id, leader, moved[stream_id])
                expiries.append(Expiry(node_id, moved, offline, recoverer))
        return expiries

    def _retarget(self, announced: int, stream_id: int, leader: int, target: int) -> None:
        """In the failover's transaction: `stream_id` moves to `target`."""
        engine: Any = self
        self._db.execute(
            "UPDATE partitions SET target_node=?, assignment_generation=? WHERE stream_id=?",
            (target, announced, stream_id),
        )
        self._db.execute(
            engine._sql(
                "INSERT INTO reassignments VALUES (?, ?, ?, NOW_MS, 'failover')"
                " ON CONFLICT (stream_id) DO UPDATE SET source_node=excluded.source_node,"
                " target_node=excluded.target_node, started_ms=excluded.started_ms,"
                " reason=excluded.reason"
            ),
            (stream_id, leader, target),
        )

    def leader_epochs(self, stream_ids: list[int]) -> dict[int, int]:
        """The stored leader epochs of `stream_ids` (deleted ones are absent), in one
        plain read: READ COMMITTED orders it after every claim committed before it."""
        engine: Any = self
        marks = ", ".join("?" * len(stream_ids))
        with engine._transaction():
            rows = self._db.execute(
                f"SELECT stream_id, leader_epoch FROM partitions WHERE stream_id IN ({marks})",
                tuple(stream_ids),
            ).fetchall()
        return {int(r[0]): int(r[1]) for r in rows}

    def finish_wal_recovery(self, node_id: int, incarnation: int) -> bool:
        """`MetadataStore.finish_wal_recovery`: one transaction, the broker row locked."""
        engine: Any = self
        with engine._transaction():
            row = self._db.execute(
                "SELECT wal_url FROM brokers WHERE node_id=? AND incarnation=?" + self._lock,
                (node_id, incarnation),
            ).fetchone()
            if row is None or row[0] is None:
                return False
            left = self._db.execute(
                f"SELECT COUNT(*) FROM partitions p WHERE p.leader_node=? AND {dirty_sql('p')}",
                (node_id,),
            ).fetchone()
            if int(left[0]):
                return False
            self._db.execute(
                "UPDATE brokers SET wal_url=NULL WHERE node_id=? AND incarnation=?",
                (node_id, incarnation),
            )
            return True


class WalDirtyCalls:
    """`SqlMetadataStore`'s dirty marks and failover, run on its worker."""

    async def mark_wal_dirty(self, epochs: dict[int, int]) -> set[int]:
        store: Any = self  # a SqlMetadataStore
        result: set[int] = await store._call(store.engine.mark_wal_dirty, epochs)
        return result

    async def settle_wal_dirty(self, dirty: dict[int, int], clean: dict[int, int]) -> None:
        store: Any = self
        await store._call(store.engine.settle_wal_dirty, dirty, clean)

    async def leader_epochs(self, stream_ids: list[int]) -> dict[int, int]:
        store: Any = self
        result: dict[int, int] = await store._call(store.engine.leader_epochs, stream_ids)
        return result

    async def finish_wal_recovery(self, node_id: int, incarnation: int) -> bool:
        store: Any = self
        result: bool = await store._call(store.engine.finish_wal_recovery, node_id, incarnation)
        return result

    async def expire_brokers(
        self,
        controller: ControllerRecord,
        placement: Placing,
        unclean_topics: frozenset[str] = frozenset(),
    ) -> list[Expiry]:
        store: Any = self
        result: list[Expiry] = await store._call(
            store.engine.expire_brokers, controller, placement, unclean_topics
        )
        return result
