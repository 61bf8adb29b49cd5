"""Share-group membership (KIP-932) as a pure machine: the simple assignor's rules,
epochs without revocation, session expiry, and a steady heartbeat that reads nothing."""

from __future__ import annotations

from typing import Any

from contextplane.coordinators.share_group import (
    ShareGroupConfig,
    ShareGroupMachine,
    ShareHeartbeat,
    simple_assignment,
)
from contextplane.protocol.error_codes import ErrorCode


def test_simple_assignment_covers_partitions_and_members() -> None:
    counts = {"a": 3, "b": 1}.get
    spread = simple_assignment({"m1": ["a"], "m2": ["a"]}, lambda t: counts(t, 0))
    assert spread["m1"] | spread["m2"] == {("a", 0), ("a", 1), ("a", 2)}
    assert not spread["m1"] & spread["m2"]
    # More members than partitions: the partition is shared, every member has one.
    shared = simple_assignment({f"m{i}": ["b"] for i in range(3)}, lambda t: counts(t, 0))
    assert all(parts == {("b", 0)} for parts in shared.values())
    # Different subscriptions: each topic among its own subscribers.
    mixed = simple_assignment({"m1": ["a", "b"], "m2": ["a"]}, lambda t: counts(t, 0))
    assert ("b", 0) in mixed["m1"] and all(t == "a" for t, _ in mixed["m2"])


def _beat(member: str, epoch: int, topics: tuple[str, ...] | None = None) -> ShareHeartbeat:
    return ShareHeartbeat("g", member, epoch, None, topics)


def test_members_move_to_the_group_epoch_and_expire() -> None:
    now = [0]
    config = ShareGroupConfig(session_timeout_ms=45_000, assignment_interval_ms=0)
    machine = ShareGroupMachine(lambda: now[0], config)
    reads: list[str] = []

    def counts(topic: str) -> int:
        reads.append(topic)
        return 4

    a, _ = machine.heartbeat(_beat("a", 0, ("t",)), counts, topics_version=1)
    assert (a["member_epoch"], a["assignment"]) == (2, frozenset())  # not initialized yet
    a, _ = machine.heartbeat(_beat("a", 2), counts, topics_version=1)
    assert (a["member_epoch"], len(a["assignment"])) == (3, 4)
    b, _ = machine.heartbeat(_beat("b", 0, ("t",)), counts, topics_version=1)
    assert b["member_epoch"] == 4
    a, _ = machine.heartbeat(_beat("a", 3), counts, topics_version=1)
    assert a["member_epoch"] == 4 and len(a["assignment"]) == 2
    reads.clear()
    steady, _ = machine.heartbeat(_beat("a", 4), counts, topics_version=1)
    assert steady["assignment"] is None and reads == []  # nothing read, nothing sent
    # The topic table moved: counts are read again (unchanged: no new epoch).
    steady, _ = machine.heartbeat(_beat("a", 4), counts, topics_version=2)
    assert reads == ["t"] and steady["member_epoch"] == 4
    fenced, _ = machine.heartbeat(_beat("a", 3), counts)
    assert fenced["error_code"] == ErrorCode.fenced_member_epoch
    now[0] = 45_000
    assert machine.expire_sessions(counts) == [("g", "a"), ("g", "b")]
    assert machine.describe("g")["group_state"] == "Empty"  # type: ignore[index]


def test_max_size_and_validation() -> None:
    machine = ShareGroupMachine(lambda: 0, ShareGroupConfig(max_size=1))
    assert machine.heartbeat(_beat("a", 0, ("t",)), lambda t: 1)[0]["error_code"] == 0
    full, _ = machine.heartbeat(_beat("b", 0, ("t",)), lambda t: 1)
    assert full["error_code"] == ErrorCode.group_max_size_reached
    bad, _ = machine.heartbeat(_beat("c", -2), lambda t: 1)
    assert bad["error_code"] == ErrorCode.invalid_request


def test_targets_wait_for_the_assignment_interval() -> None:
    """A change within the group's assignment interval of the last target bumps the group
    epoch at once; the target follows at the first heartbeat after the interval (Kafka's
    maybeUpdateTargetAssignment), the interval being the group's own when it has one."""
    now = [0]
    intervals = {"g": 1_000}
    machine = ShareGroupMachine(lambda: now[0], interval=lambda g: intervals[g])
    a, _ = machine.heartbeat(_beat("a", 0, ("t",)), lambda t: 2)
    assert (a["member_epoch"], a["assignment"]) == (2, frozenset())
    now[0] = 1_000  # t's partitions initialized since: a new epoch deals them
    a, _ = machine.heartbeat(_beat("a", 2), lambda t: 2)
    assert (a["member_epoch"], a["assignment"]) == (3, {("t", 0), ("t", 1)})
    now[0] = 1_500
    b, _ = machine.heartbeat(_beat("b", 0, ("t",)), lambda t: 2)
    assert (b["member_epoch"], b["assignment"]) == (3, frozenset())  # epoch 4 not assigned
    described = machine.describe("g")
    assert described is not None
    assert (described["group_epoch"], described["assignment_epoch"]) == (4, 3)
    now[0] = 1_999
    assert machine.heartbeat(_beat("a", 3), lambda t: 2)[0]["assignment"] is None
    now[0] = 2_000
    a, _ = machine.heartbeat(_beat("a", 3), lambda t: 2)
    assert (a["member_epoch"], a["assignment"]) == (4, {("t", 0)})
    b, _ = machine.heartbeat(_beat("b", 3), lambda t: 2)
    assert (b["member_epoch"], b["assignment"]) == (4, {("t", 1)})
    # A leave within the interval: b keeps its target until one is due; interval 0: at once.
    now[0] = 2_500
    assert machine.heartbeat(_beat("a", -1), lambda t: 2)[0]["member_epoch"] == -1
    assert machine.heartbeat(_beat("b", 4), lambda t: 2)[0]["assignment"] is None
    intervals["g"] = 0
    b, _ = machine.heartbeat(_beat("b", 4), lambda t: 2)
    assert (b["member_epoch"], b["assignment"]) == (5, {("t", 0), ("t", 1)})


def test_epochs_and_assignments_step_by_step_as_kafka() -> None:
    """Kafka 4.4's answers with no assignment interval (read from a run against it): a
    group starts at epoch 1; its share partitions are initialized after the heartbeat that
    first subscribes to them, so that one gets no partitions and the next a new epoch; a
    leave bumps the group epoch and leaves the target to the next heartbeat; the last
    leave sets both epochs; the assignment is sent when the member names its topics or
    its partitions change."""
    machine = ShareGroupMachine(lambda: 0, ShareGroupConfig(assignment_interval_ms=0))
    counts = {"two": 2, "other": 1}

    def beat(member: str, epoch: int, topics: tuple[str, ...] | None = None) -> tuple[Any, ...]:
        answer, _ = machine.heartbeat(_beat(member, epoch, topics), lambda t: counts.get(t, 0))
        sent = answer["assignment"]
        return answer["member_epoch"], None if sent is None else sorted(sent)

    def epochs() -> tuple[int, int]:
        described = machine.describe("g")
        assert described is not None
        return described["group_epoch"], described["assignment_epoch"]

    two = [("two", 0), ("two", 1)]
    assert beat("a", 0, ("two",)) == (2, []) and epochs() == (2, 2)
    assert beat("a", 2) == (3, two) and epochs() == (3, 3)
    assert beat("a", 3) == (3, None)
    assert beat("b", 0, ("two",)) == (4, [("two", 1)]) and epochs() == (4, 4)
    assert beat("a", 3) == (4, [("two", 0)])
    assert beat("b", -1) == (-1, None) and epochs() == (5, 4)
    assert beat("a", 4) == (5, two) and epochs() == (5, 5)
    assert beat("a", 5, ("two", "other")) == (6, two)  # other: not initialized yet
    assert beat("a", 6) == (7, [("other", 0), *two])
    assert beat("a", 7, ("two", "other")) == (7, [("other", 0), *two])  # names: sent
    counts["two"] = 3  # a partition added: dealt one epoch after it is seen
    assert beat("a", 7) == (8, None)
    assert beat("a", 8) == (9, [("other", 0), *two, ("two", 2)])
    assert beat("a", -1) == (-1, None) and epochs() == (10, 10)


def test_partitions_altered_or_deleted_before_a_join() -> None:
    """AlterShareGroupOffsets initializes the partitions it writes (from 0, without a
    gap, counted here): a member joining is dealt them at once, the rest an epoch later;
    DeleteShareGroupOffsets forgets them: dealt again only after a heartbeat."""
    machine = ShareGroupMachine(lambda: 0, ShareGroupConfig(assignment_interval_ms=0))
    machine.ensure_group("g")
    machine.initialize("g", [("t", 0), ("t", 2)])  # 2 is past a gap: not counted
    a, _ = machine.heartbeat(_beat("a", 0, ("t",)), lambda t: 3)
    assert (a["member_epoch"], a["assignment"]) == (2, {("t", 0)})
    a, _ = machine.heartbeat(_beat("a", 2), lambda t: 3)
    assert (a["member_epoch"], len(a["assignment"])) == (3, 3)
    assert machine.heartbeat(_beat("a", -1), lambda t: 3)[0]["member_epoch"] == -1
    machine.uninitialize("g", ["t"])
    b, _ = machine.heartbeat(_beat("b", 0, ("t",)), lambda t: 3)
    assert (b["member_epoch"], b["assignment"]) == (5, frozenset())
    b, _ = machine.heartbeat(_beat("b", 5), lambda t: 3)
    assert (b["member_epoch"], len(b["assignment"])) == (6, 3)
