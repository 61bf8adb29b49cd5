"""Operator moves (RFC 0004 §6, broker/handlers/reassignments.py): which replica lists a
reassignment may name, and on both engines the moves listed, cancelled while their
source still leads, not once it handed over, and a move back to the leader ending the
move; a fenced controller cancels nothing. The wire and Kafka's tool are in
tests/e2e/test_reassignments_wire.py and tests/e2e/test_cluster_reassign_tool.py."""

from __future__ import annotations

from contextplane.broker.handlers.reassignments import check_replicas
from contextplane.metadata.records import ControllerRecord, Reassignment
from contextplane.metadata.sql_reassignments import CANCELLED, HANDED_OVER, NONE
from contextplane.protocol.error_codes import ErrorCode
from tests.support.metadata import open_engine
from tests.unit.test_controller_lease import LONG_MS, registered


def test_one_live_broker_is_the_only_valid_assignment() -> None:
    assert check_replicas((2,), {1, 2}) is None
    refused = {
        (): "The manual partition assignment includes an empty replica list.",
        (1, 2): "The replication factor is 1: name one broker, not 2.",
        (2, 2): "The manual partition assignment includes the broker 2 more than once.",
        (3,): "The manual partition assignment includes broker 3, but no such broker is"
        " registered.",
    }
    for replicas, message in refused.items():
        assert check_replicas(replicas, {1, 2}) == (ErrorCode.invalid_replica_assignment, message)


def test_moves_are_listed_and_cancelled_until_handed_over(metadata_url: str) -> None:
    engine = open_engine(metadata_url)
    try:
        registered(engine, 1, 10, LONG_MS)
        registered(engine, 2, 20, LONG_MS)
        beat = engine.cluster_heartbeat(1, 10, LONG_MS, -1)
        assert beat is not None
        controller = beat.controller
        engine.create_topic("t", 3, {}, lambda stream_id: 1)
        p0, p1, p2 = (r.stream_id for r in engine.partitions("t"))
        assert engine.claim_leadership({p0: 0, p1: 0, p2: 0}, 1).claimed == {p0: 1, p1: 1, p2: 1}
        assert engine.reassignments() == []
        assert engine.move_partitions(controller, {p0: 2, p1: 2, p2: 2}, "operator")
        listed = engine.reassignments()
        assert [(m.topic, m.partition, m.source, m.target) for m in listed] == [
            ("t", 0, 1, 2),
            ("t", 1, 1, 2),
            ("t", 2, 1, 2),
        ]
        assert all(isinstance(m, Reassignment) and m.started_ms > 0 for m in listed)
        # p0 handed over (released); p1 still led by its source; p2's move is undone by
        # a move back to its leader.
        assert engine.release_leadership(p0, 1, 1)
        assert engine.move_partitions(controller, {p2: 1}, "operator")
        generation = engine.assignment_changes(0)[0]
        # A fenced controller writes nothing.
        assert engine.cancel_reassignments(ControllerRecord(1, controller.epoch - 1), [p1]) is None
        found = engine.cancel_reassignments(controller, [p0, p1, p2])
        assert found == {p0: HANDED_OVER, p1: CANCELLED, p2: NONE}
        assert [(m.partition, m.source, m.target) for m in engine.reassignments()] == [(0, 1, 2)]
        targets = {r.stream_id: r.target_node for r in engine.partitions("t")}
        assert targets == {p0: 2, p1: 1, p2: 1}
        # The cancellation is announced: the source's reconciler reads the row again.
        after, rows = engine.assignment_changes(generation)
        assert after == generation + 1 and [r.stream_id for r in rows] == [p1]
        # The target's claim ends the handed-over move.
        assert engine.claim_leadership({p0: 1}, 2).claimed == {p0: 2}
        assert engine.reassignments() == []
    finally:
        engine.close()
