"""The partition reassignments an operator sees and cancels (RFC 0004 §6): the
`reassignments` rows the controller's moves write (`sql_assignment.move_partitions`)
and a claim ends, listed with their topic and partition, and the controller's fenced
cancellation of a move its source has not handed over yet."""

from __future__ import annotations

from typing import Any

from contextplane.metadata.records import ControllerRecord, Reassignment
from contextplane.metadata.sql_assignment import ASSIGNMENT_GENERATION, bump_generation
from contextplane.metadata.sql_db import Db

# What a cancellation found, per stream.
CANCELLED, NONE, HANDED_OVER = "cancelled", "none", "handed-over"


class ReassignmentRows:
    """`SqlEngine`'s reassignment statements (its connection, transactions, row lock)."""

    _db: Db
    _lock: str

    def reassignments(self) -> list[Reassignment]:
        """Every move in progress, by topic and partition."""
        rows = self._db.execute(
            "SELECT p.topic, p.partition, r.source_node, r.target_node, r.started_ms"
            " FROM reassignments r JOIN partitions p ON p.stream_id = r.stream_id"
            " ORDER BY p.topic, p.partition"
        ).fetchall()
        return [Reassignment(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]

    def cancel_reassignments(
        self, controller: ControllerRecord, streams: list[int]
    ) -> dict[int, str] | None:
        """Target each stream back at the leader its move started from, if that leader
        still leads it (the handover not begun on the store: it may be flushing, then it
        claims the partition back); None (nothing written) when `controller` is fenced.
        Per stream: CANCELLED, NONE (no move in progress) or HANDED_OVER (too late: the
        source released it, the target claims it)."""
        engine: Any = self
        with engine._transaction():
            if engine._fenced(controller):
                return None
            found: dict[int, str] = {}
            announced = 0
            for stream_id in sorted(set(streams)):
                row = self._db.execute(
                    "SELECT r.source_node, p.leader_node FROM reassignments r JOIN partitions p"
                    " ON p.stream_id = r.stream_id WHERE r.stream_id=?" + self._lock,
                    (stream_id,),
                ).fetchone()
                if row is None:
                    found[stream_id] = NONE
                    continue
                source, leader = int(row[0]), int(row[1])
                if leader != source or source == -1:
                    found[stream_id] = HANDED_OVER
                    continue
                announced = announced or bump_generation(self._db, ASSIGNMENT_GENERATION)
                self._db.execute(
                    "UPDATE partitions SET target_node=?, assignment_generation=?"
                    " WHERE stream_id=?",
                    (source, announced, stream_id),
                )
                self._db.execute("DELETE FROM reassignments WHERE stream_id=?", (stream_id,))
                found[stream_id] = CANCELLED
            return found


class ReassignmentCalls:
    """`SqlMetadataStore`'s reassignment methods, run on its worker."""

    async def reassignments(self) -> list[Reassignment]:
        store: Any = self
        result: list[Reassignment] = await store._call(store.engine.reassignments)
        return result

    async def cancel_reassignments(
        self, controller: ControllerRecord, streams: list[int]
    ) -> dict[int, str] | None:
        store: Any = self
        result: dict[int, str] | None = await store._call(
            store.engine.cancel_reassignments, controller, streams
        )
        return result
