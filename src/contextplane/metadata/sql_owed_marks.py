"""The statements of the dirty protocol's outage path (RFC 0004 §5), shared by the
heartbeat (`sql_assignment.py`) and the clean stop (`sql_brokers.py`): the marks a
broker owes for records it acknowledged while the metadata store was out of its reach,
and its `unmarked_acks` flag, which makes every partition it leads count as dirty while
it may owe any.
"""

from __future__ import annotations

from contextplane.metadata.sql_db import Db


def write_owed_marks(db: Db, node_id: int, owed: dict[int, int]) -> set[int]:
    """Marks acknowledged without being written (stream -> epoch), where `node_id` still
    leads the stream at that epoch; returns the streams marked."""
    marked = set()
    for stream_id, epoch in sorted(owed.items()):
        if db.execute(
            "UPDATE partitions SET wal_dirty=? WHERE stream_id=? AND leader_epoch=?"
            " AND leader_node=?",
            (epoch, stream_id, epoch, node_id),
        ).rowcount:
            marked.add(stream_id)
    return marked


def set_unmarked_acks(db: Db, node_id: int, incarnation: int, allowed: bool) -> None:
    """Whether this incarnation may acknowledge without marks (RFC 0004 §5's outage path)."""
    db.execute(
        "UPDATE brokers SET unmarked_acks=? WHERE node_id=? AND incarnation=?",
        (int(allowed), node_id, incarnation),
    )
