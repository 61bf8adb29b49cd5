"""The classic group state machine, driven directly with a fake clock."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import pytest

from contextplane.coordinators.group_state import (
    CoordinatorConfig,
    GroupState,
    GroupStateMachine,
    JoinRequest,
    SyncRequest,
    Timers,
    parse_subscription_topics,
)
from contextplane.protocol.error_codes import ErrorCode

SESSION_MS = 10_000
REBALANCE_MS = 30_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


class Reply:
    """A waiter that records the single response it receives."""

    def __init__(self) -> None:
        self.responses: list[dict[str, Any]] = []

    def __call__(self, response: dict[str, Any]) -> None:
        self.responses.append(response)

    @property
    def done(self) -> bool:
        return bool(self.responses)

    @property
    def value(self) -> dict[str, Any]:
        assert len(self.responses) == 1, self.responses
        return self.responses[0]


def subscription(*topics: str) -> bytes:
    out = struct.pack(">hi", 0, len(topics))
    for topic in topics:
        raw = topic.encode()
        out += struct.pack(">h", len(raw)) + raw
    return out + struct.pack(">i", -1)


class Harness:
    def __init__(self, initial_delay_ms: int = 0) -> None:
        self.clock = Clock()
        ids = itertools.count(1)
        self.sm = GroupStateMachine(
            self.clock,
            CoordinatorConfig(
                initial_rebalance_delay_ms=initial_delay_ms,
                member_id_suffix=lambda: f"id{next(ids)}",
            ),
        )

    def advance(self, ms: int) -> None:
        """Move the clock in 100 ms steps, firing timers as a live loop would."""
        target = self.clock.now + ms
        while self.clock.now < target:
            self.clock.now = min(target, self.clock.now + 100)
            self.sm.fire_due_timers()

    def join(
        self,
        member_id: str = "",
        group: str = "g",
        *,
        protocols: list[tuple[str, bytes]] | None = None,
        protocol_type: str = "consumer",
        instance_id: str | None = None,
        version: int = 9,
        session_ms: int = SESSION_MS,
        rebalance_ms: int = REBALANCE_MS,
        client_id: str = "client",
    ) -> Reply:
        reply = Reply()
        self.sm.join(
            JoinRequest(
                group_id=group,
                member_id=member_id,
                protocol_type=protocol_type,
                protocols=protocols if protocols is not None else [("range", subscription("t"))],
                session_timeout_ms=session_ms,
                rebalance_timeout_ms=rebalance_ms,
                group_instance_id=instance_id,
                client_id=client_id,
                client_host="/127.0.0.1",
                api_version=version,
            ),
            reply,
        )
        return reply

    def new_member(self, group: str = "g", **kwargs: Any) -> tuple[str, Reply]:
        """v4+ two-step join: MEMBER_ID_REQUIRED, then the rejoin with the given id."""
        first = self.join("", group, **kwargs)
        assert first.value["error_code"] == ErrorCode.member_id_required
        member_id = first.value["member_id"]
        return member_id, self.join(member_id, group, **kwargs)

    def sync(
        self,
        member_id: str,
        generation: int,
        assignments: dict[str, bytes] | None = None,
        group: str = "g",
        instance_id: str | None = None,
    ) -> Reply:
        reply = Reply()
        self.sm.sync(
            SyncRequest(
                group_id=group,
                generation_id=generation,
                member_id=member_id,
                assignments=assignments or {},
                group_instance_id=instance_id,
            ),
            reply,
        )
        return reply

    def state(self, group: str = "g") -> GroupState:
        found = self.sm.group(group)
        assert found is not None
        return found.state

    def stable_group(self, count: int, **kwargs: Any) -> list[tuple[str, int]]:
        """`count` dynamic members joined and synced; returns (member id, generation)."""
        replies = [self.new_member(**kwargs) for _ in range(count)]
        self.advance(0 if not replies else 100)
        ids = [member_id for member_id, _ in replies]
        results = [reply.value for _, reply in replies]
        generation = results[0]["generation_id"]
        leader = results[0]["leader"]
        assert all(r["error_code"] == ErrorCode.none for r in results)
        syncs = [
            self.sync(mid, generation, {m: m.encode() for m in ids} if mid == leader else None)
            for mid in ids
        ]
        assert all(s.value["error_code"] == ErrorCode.none for s in syncs)
        assert self.state() is GroupState.STABLE
        return [(mid, generation) for mid in ids]


# -- joining -------------------------------------------------------------------------


def test_member_id_required_then_join_completes_generation_one() -> None:
    h = Harness()
    first = h.join("", client_id="app")
    assert first.value["error_code"] == ErrorCode.member_id_required
    member_id = first.value["member_id"]
    assert member_id == "app-id1"
    second = h.join(member_id)
    assert not second.done  # the join phase completes on the (zero) delay timer
    h.advance(100)
    response = second.value
    assert response["error_code"] == ErrorCode.none
    assert response["generation_id"] == 1
    assert response["leader"] == member_id
    assert response["protocol_name"] == "range"
    assert [m["member_id"] for m in response["members"]] == [member_id]
    assert h.state() is GroupState.COMPLETING_REBALANCE


def test_old_versions_join_without_member_id_round_trip() -> None:
    h = Harness()
    reply = h.join("", version=3)
    h.advance(100)
    assert reply.value["error_code"] == ErrorCode.none
    assert reply.value["member_id"] == "client-id1"


def test_leader_gets_all_members_metadata_followers_none() -> None:
    h = Harness()
    a, ra = h.new_member(protocols=[("range", b"meta-a")])
    b, rb = h.new_member(protocols=[("range", b"meta-b")])
    h.advance(100)
    leader = ra.value["leader"]
    assert leader == rb.value["leader"] == a
    assert {m["member_id"]: m["metadata"] for m in ra.value["members"]} == {
        a: b"meta-a",
        b: b"meta-b",
    }
    assert rb.value["members"] == []
    assert ra.value["generation_id"] == rb.value["generation_id"] == 1


def test_initial_rebalance_delay_waits_for_more_members() -> None:
    h = Harness(initial_delay_ms=3000)
    a, ra = h.new_member()
    h.advance(2000)
    b, rb = h.new_member()  # extends the delay by another 3000 ms
    h.advance(1500)
    assert not ra.done and not rb.done
    h.advance(3000)
    assert ra.value["generation_id"] == rb.value["generation_id"] == 1
    assert {m["member_id"] for m in ra.value["members"]} == {a, b}


def test_initial_rebalance_delay_is_bounded_by_rebalance_timeout() -> None:
    h = Harness(initial_delay_ms=3000)
    _, ra = h.new_member(rebalance_ms=5000)
    # Keep adding members every 2 s: the join must still complete within ~5 s + a delay.
    replies = [ra]
    for _ in range(5):
        h.advance(2000)
        if ra.done:
            break
        replies.append(h.new_member(rebalance_ms=5000)[1])
    assert ra.done
    assert ra.value["error_code"] == ErrorCode.none


def test_protocol_selection_by_vote_among_common_protocols() -> None:
    h = Harness()
    _, r1 = h.new_member(protocols=[("range", b""), ("roundrobin", b"")])
    _, r2 = h.new_member(protocols=[("roundrobin", b""), ("range", b"")])
    _, r3 = h.new_member(protocols=[("roundrobin", b""), ("sticky", b"")])
    h.advance(100)
    assert {r.value["protocol_name"] for r in (r1, r2, r3)} == {"roundrobin"}


def test_inconsistent_protocols_are_rejected() -> None:
    h = Harness()
    h.new_member(protocols=[("range", b"")])
    other = h.join("", protocols=[("sticky", b"")])
    assert other.value["error_code"] == ErrorCode.inconsistent_group_protocol
    wrong_type = h.join("", protocol_type="connect")
    assert wrong_type.value["error_code"] == ErrorCode.inconsistent_group_protocol
    empty = h.join("", group="fresh", protocols=[])
    assert empty.value["error_code"] == ErrorCode.inconsistent_group_protocol


@pytest.mark.parametrize("session_ms", [5_999, 1_800_001])
def test_session_timeout_out_of_bounds(session_ms: int) -> None:
    h = Harness()
    reply = h.join("", session_ms=session_ms)
    assert reply.value["error_code"] == ErrorCode.invalid_session_timeout
    assert h.sm.group("g") is None


def test_empty_group_id_is_invalid() -> None:
    h = Harness()
    assert h.join("", group="").value["error_code"] == ErrorCode.invalid_group_id


def test_join_with_unknown_member_id() -> None:
    h = Harness()
    assert h.join("nobody").value["error_code"] == ErrorCode.unknown_member_id
    h.stable_group(1)
    assert h.join("nobody").value["error_code"] == ErrorCode.unknown_member_id


# -- syncing -------------------------------------------------------------------------


def test_followers_wait_for_the_leader_assignment() -> None:
    h = Harness()
    a, ra = h.new_member()
    b, rb = h.new_member()
    h.advance(100)
    generation = ra.value["generation_id"]
    follower = h.sync(b, generation)
    assert not follower.done
    assert h.state() is GroupState.COMPLETING_REBALANCE
    leader = h.sync(a, generation, {a: b"for-a", b: b"for-b"})
    assert leader.value["assignment"] == b"for-a"
    assert follower.value["assignment"] == b"for-b"
    assert follower.value["protocol_name"] == "range"
    assert h.state() is GroupState.STABLE
    # A late SyncGroup in Stable returns the stored assignment.
    assert h.sync(b, generation).value["assignment"] == b"for-b"


def test_sync_errors() -> None:
    h = Harness()
    [(a, generation), _] = h.stable_group(2)
    assert h.sync(a, generation + 1).value["error_code"] == ErrorCode.illegal_generation
    assert h.sync("ghost", generation).value["error_code"] == ErrorCode.unknown_member_id
    assert h.sync(a, 1, group="nope").value["error_code"] == ErrorCode.unknown_member_id


def test_member_missing_from_assignment_gets_empty_bytes() -> None:
    h = Harness()
    a, ra = h.new_member()
    b, _ = h.new_member()
    h.advance(100)
    generation = ra.value["generation_id"]
    follower = h.sync(b, generation)
    h.sync(a, generation, {a: b"all"})
    assert follower.value["error_code"] == ErrorCode.none
    assert follower.value["assignment"] == b""


def test_member_that_never_syncs_is_removed_after_rebalance_timeout() -> None:
    h = Harness()
    a, ra = h.new_member()
    b, _ = h.new_member()
    h.advance(100)
    generation = ra.value["generation_id"]
    h.sync(a, generation, {a: b"x", b: b"y"})
    assert h.state() is GroupState.STABLE
    h.sm.heartbeat("g", a, generation)
    for _ in range(REBALANCE_MS // 5000 + 1):
        h.advance(5000)
        h.sm.heartbeat("g", a, generation)
    group = h.sm.group("g")
    assert group is not None and b not in group.members
    assert h.sm.heartbeat("g", a, generation) == ErrorCode.rebalance_in_progress


# -- heartbeats ----------------------------------------------------------------------


def test_heartbeat_errors_and_rebalance_signal() -> None:
    h = Harness()
    [(a, generation)] = h.stable_group(1)
    assert h.sm.heartbeat("g", a, generation) == ErrorCode.none
    assert h.sm.heartbeat("g", a, generation - 1) == ErrorCode.illegal_generation
    assert h.sm.heartbeat("g", "ghost", generation) == ErrorCode.unknown_member_id
    assert h.sm.heartbeat("nope", a, generation) == ErrorCode.unknown_member_id
    assert h.sm.heartbeat("", a, generation) == ErrorCode.invalid_group_id
    h.new_member()  # a new member starts a rebalance
    assert h.state() is GroupState.PREPARING_REBALANCE
    assert h.sm.heartbeat("g", a, generation) == ErrorCode.rebalance_in_progress


def test_rebalance_completes_when_all_members_rejoin() -> None:
    h = Harness()
    [(a, generation)] = h.stable_group(1)
    b, rb = h.new_member()
    assert not rb.done
    ra = h.join(a)
    # Everyone has joined: the join phase completes at once (not the initial rebalance).
    assert ra.value["generation_id"] == rb.value["generation_id"] == generation + 1
    assert ra.value["leader"] == a and len(ra.value["members"]) == 2


def test_session_expiry_removes_member_and_rebalances() -> None:
    h = Harness()
    [(a, generation), (b, _)] = h.stable_group(2)
    for _ in range(3):
        h.advance(3000)
        assert h.sm.heartbeat("g", a, generation) == ErrorCode.none
    h.advance(3000)  # b has been silent for 12 s > its 10 s session
    assert h.sm.heartbeat("g", a, generation) == ErrorCode.rebalance_in_progress
    group = h.sm.group("g")
    assert group is not None and set(group.members) == {a}
    ra = h.join(a)
    assert ra.value["generation_id"] == generation + 1
    assert [m["member_id"] for m in ra.value["members"]] == [a]


def test_member_that_does_not_rejoin_is_dropped_at_rebalance_timeout() -> None:
    h = Harness()
    [(a, generation), (b, _)] = h.stable_group(2, session_ms=60_000)
    rc = h.new_member(session_ms=60_000)[1]
    ra = h.join(a, session_ms=60_000)
    assert not ra.done  # b has not rejoined yet
    for _ in range(REBALANCE_MS // 5000 - 1):
        h.advance(5000)
        assert h.sm.heartbeat("g", b, generation) == ErrorCode.rebalance_in_progress
    h.advance(5100)
    assert ra.value["error_code"] == ErrorCode.none
    assert ra.value["generation_id"] == rc.value["generation_id"] == generation + 1
    assert {m["member_id"] for m in ra.value["members"]} == {a, rc.value["member_id"]}
    assert h.sm.heartbeat("g", b, generation) == ErrorCode.unknown_member_id


def test_pending_member_that_never_rejoins_expires() -> None:
    h = Harness()
    [(a, generation)] = h.stable_group(1)
    pending = h.join("")
    assert pending.value["error_code"] == ErrorCode.member_id_required
    ra = h.join(a)  # leader rejoin forces a rebalance; the pending member holds it
    assert not ra.done
    h.advance(SESSION_MS + 100)
    assert ra.value["generation_id"] == generation + 1
    assert [m["member_id"] for m in ra.value["members"]] == [a]


def test_parked_new_member_times_out_with_unknown_member_id() -> None:
    h = Harness()
    h.sm.config.new_member_join_timeout_ms = 20_000
    [(a, generation)] = h.stable_group(1, session_ms=60_000, rebalance_ms=100_000)
    _, rb = h.new_member(session_ms=60_000, rebalance_ms=100_000)
    for _ in range(5):
        h.advance(5000)
        h.sm.heartbeat("g", a, generation)
    assert rb.value["error_code"] == ErrorCode.unknown_member_id


# -- leaving -------------------------------------------------------------------------


def test_leave_triggers_rebalance_and_last_leave_empties_group() -> None:
    h = Harness()
    [(a, generation), (b, _)] = h.stable_group(2)
    top, members = h.sm.leave("g", [(b, None)])
    assert top == ErrorCode.none and members[0]["error_code"] == ErrorCode.none
    assert h.state() is GroupState.PREPARING_REBALANCE
    ra = h.join(a)
    assert ra.value["generation_id"] == generation + 1
    h.sm.leave("g", [(a, None)])
    assert h.state() is GroupState.EMPTY


def test_batched_leave_by_member_id_and_instance_id() -> None:
    h = Harness()
    a, ra = h.new_member()
    rs = h.join("", instance_id="static-1")
    h.advance(100)
    s = rs.value["member_id"]
    assert s.startswith("static-1-")
    top, members = h.sm.leave("g", [(a, None), ("", "static-1"), ("ghost", None), ("", "nope")])
    assert top == ErrorCode.none
    assert [m["error_code"] for m in members] == [
        ErrorCode.none,
        ErrorCode.none,
        ErrorCode.unknown_member_id,
        ErrorCode.unknown_member_id,
    ]
    assert h.state() is GroupState.EMPTY
    top, members = h.sm.leave("unknown-group", [("x", None)])
    assert members[0]["error_code"] == ErrorCode.unknown_member_id


def test_leave_during_join_completes_the_phase() -> None:
    h = Harness()
    [(a, generation), (b, _)] = h.stable_group(2)
    ra = h.join(a)
    assert not ra.done
    h.sm.leave("g", [(b, None)])
    assert ra.value["generation_id"] == generation + 1


# -- static membership ---------------------------------------------------------------


def _static_group(h: Harness) -> tuple[str, str, int]:
    r1 = h.join("", instance_id="i1")
    r2 = h.join("", instance_id="i2")
    h.advance(100)
    m1, m2 = r1.value["member_id"], r2.value["member_id"]
    generation = r1.value["generation_id"]
    leader = r1.value["leader"]
    follower = m2 if leader == m1 else m1
    h.sync(follower, generation, instance_id="i2" if follower == m2 else "i1")
    h.sync(leader, generation, {m1: b"a1", m2: b"a2"}, instance_id="i1" if leader == m1 else "i2")
    assert h.state() is GroupState.STABLE
    return m1, m2, generation


def test_static_member_rejoin_replaces_old_id_without_rebalance() -> None:
    h = Harness()
    m1, m2, generation = _static_group(h)
    # i2 restarts: it joins with an empty member id and the same metadata.
    rejoin = h.join("", instance_id="i2")
    new_id = rejoin.value["member_id"]
    assert new_id != m2 and rejoin.value["error_code"] == ErrorCode.none
    assert rejoin.value["generation_id"] == generation
    assert h.state() is GroupState.STABLE
    # Its assignment carries over; the old id is fenced.
    assert h.sync(new_id, generation, instance_id="i2").value["assignment"] == b"a2"
    assert h.sm.heartbeat("g", m2, generation, "i2") == ErrorCode.fenced_instance_id
    assert h.sm.heartbeat("g", new_id, generation, "i2") == ErrorCode.none
    assert h.sm.heartbeat("g", m1, generation, "i1") == ErrorCode.none
    stale = h.join(m2, instance_id="i2")
    assert stale.value["error_code"] == ErrorCode.fenced_instance_id


def test_static_leader_rejoin_v9_skips_assignment() -> None:
    h = Harness()
    m1, _, generation = _static_group(h)
    rejoin = h.join("", instance_id="i1", version=9)
    response = rejoin.value
    assert response["leader"] == response["member_id"]
    assert response["skip_assignment"] is True
    assert len(response["members"]) == 2
    assert h.state() is GroupState.STABLE
    old = h.join("", instance_id="i1", version=5)
    # Before v9 the old leader id is returned so that the client does not reassign.
    assert old.value["leader"] == response["member_id"]
    assert old.value["leader"] != old.value["member_id"]
    assert old.value["members"] == []


def test_static_member_survives_session_expiry_only_by_rejoining() -> None:
    h = Harness()
    m1, m2, generation = _static_group(h)
    for _ in range(5):
        h.advance(3000)
        h.sm.heartbeat("g", m1, generation, "i1")
    group = h.sm.group("g")
    assert group is not None and m2 not in group.members  # static members expire too
    assert "i2" not in group.static_members


def test_static_member_with_changed_protocol_triggers_rebalance() -> None:
    h = Harness()
    r1 = h.join("", instance_id="i1", protocols=[("range", b""), ("roundrobin", b"")])
    h.advance(100)
    m1 = r1.value["member_id"]
    h.sync(m1, 1, {m1: b""}, instance_id="i1")
    assert r1.value["protocol_name"] == "range"
    rejoin = h.join("", instance_id="i1", protocols=[("roundrobin", b"")])
    h.advance(100)
    assert rejoin.value["generation_id"] == 2
    assert rejoin.value["protocol_name"] == "roundrobin"


def test_waiting_duplicate_static_member_is_fenced() -> None:
    h = Harness()
    m1, m2, generation = _static_group(h)
    # i2 (old id) is parked in a rebalance when a new instance takes over.
    h.new_member()
    parked = h.join(m2, instance_id="i2")
    assert not parked.done
    h.join("", instance_id="i2")
    assert parked.value["error_code"] == ErrorCode.fenced_instance_id


# -- offsets and administration ------------------------------------------------------


def test_offset_commit_validation() -> None:
    h = Harness()
    commit = h.sm.validate_offset_commit
    # Simple consumer on an unknown group: allowed, creates an Empty group.
    assert commit("simple", "", None, -1, 9) is None
    assert h.state("simple") is GroupState.EMPTY
    # Unknown group with a generation.
    assert commit("nope", "m", None, 3, 9) == ErrorCode.group_id_not_found
    assert commit("nope", "m", None, 3, 8) == ErrorCode.illegal_generation
    [(a, generation), (b, _)] = h.stable_group(2)
    assert commit("g", a, None, generation, 9) is None
    assert commit("g", a, None, generation + 1, 9) == ErrorCode.illegal_generation
    assert commit("g", "ghost", None, generation, 9) == ErrorCode.unknown_member_id
    assert commit("g", "", None, -1, 9) == ErrorCode.unknown_member_id  # group not empty
    # In PreparingRebalance, the old generation may still commit.
    h.new_member()
    assert commit("g", a, None, generation, 9) is None
    h.join(a)
    h.join(b)
    assert h.state() is GroupState.COMPLETING_REBALANCE
    assert commit("g", a, None, generation + 1, 9) == ErrorCode.rebalance_in_progress


def test_delete_and_offset_delete_validation() -> None:
    h = Harness()
    assert h.sm.validate_delete_group("nope", False) == ErrorCode.group_id_not_found
    [(a, _)] = h.stable_group(1, protocols=[("range", subscription("orders", "users"))])
    assert h.sm.validate_delete_group("g", True) == ErrorCode.non_empty_group
    assert h.sm.validate_offset_delete("g") is None  # a consumer group may delete offsets
    assert h.sm.is_subscribed_to_topic("g", "orders")
    assert not h.sm.is_subscribed_to_topic("g", "other")
    assert h.sm.validate_offset_delete("nope") == ErrorCode.group_id_not_found
    h.sm.leave("g", [(a, None)])
    assert h.sm.validate_delete_group("g", True) is None
    assert not h.sm.is_subscribed_to_topic("g", "orders")
    h.sm.remove_group("g")
    assert h.sm.group("g") is None


def test_non_consumer_groups_refuse_offset_delete_while_active() -> None:
    h = Harness()
    h.stable_group(1, protocol_type="connect", protocols=[("default", b"")])
    assert h.sm.validate_offset_delete("g") == ErrorCode.non_empty_group


def test_list_and_describe() -> None:
    h = Harness()
    h.sm.validate_offset_commit("simple", "", None, -1, 9)
    [(a, _)] = h.stable_group(1, protocols=[("range", b"md")])
    listed = {g["group_id"]: g for g in h.sm.list_groups()}
    assert listed["g"]["group_state"] == "Stable"
    assert listed["g"]["protocol_type"] == "consumer"
    assert listed["simple"]["group_state"] == "Empty"
    assert listed["simple"]["protocol_type"] == ""
    assert [g["group_id"] for g in h.sm.list_groups(["stable"])] == ["g"]
    assert [g["group_id"] for g in h.sm.list_groups(["EMPTY"])] == ["simple"]
    assert h.sm.list_groups(types_filter=["consumer"]) == []
    assert len(h.sm.list_groups(types_filter=["Classic"])) == 2
    described = h.sm.describe_group("g")
    assert described["group_state"] == "Stable"
    assert described["protocol_data"] == "range"
    [member] = described["members"]
    assert member["member_id"] == a
    assert member["member_metadata"] == b"md"
    assert member["member_assignment"] == a.encode()
    assert member["client_host"] == "/127.0.0.1"
    assert h.sm.describe_group("missing")["group_state"] == "Dead"


def test_shutdown_answers_parked_requests() -> None:
    h = Harness(initial_delay_ms=3000)
    _, reply = h.new_member()
    h.sm.shutdown()
    assert reply.value["error_code"] == ErrorCode.not_coordinator
    assert h.sm.groups == {}
    assert h.sm.next_deadline() is None


# -- pieces --------------------------------------------------------------------------


def test_timers_replace_cancel_and_fire_in_order() -> None:
    timers = Timers()
    fired: list[str] = []
    timers.schedule(("a",), 30, lambda: fired.append("a"))
    timers.schedule(("b",), 10, lambda: fired.append("b"))
    timers.schedule(("a",), 20, lambda: fired.append("a2"))  # replaces a
    timers.schedule(("c",), 5, lambda: fired.append("c"))
    timers.cancel(("c",))
    assert timers.next_deadline() == 10
    while (action := timers.pop_due(25)) is not None:
        action()
    assert fired == ["b", "a2"]
    assert timers.next_deadline() is None
    for i in range(1000):
        timers.schedule(("x",), i, lambda: None)
    assert len(timers) == 1 and timers.next_deadline() == 999


def test_parse_subscription_topics() -> None:
    assert parse_subscription_topics(subscription("a", "bb")) == ["a", "bb"]
    assert parse_subscription_topics(b"\x00") is None
    assert parse_subscription_topics(b"\x00\x00\x7f\xff\xff\xff") is None
