"""Classic groups stored as Kafka stores them (GroupMetadataValue) and loaded back by a
new machine, as a restarted coordinator loads them: Stable at the stored generation (or
Empty), members heartbeating on, sessions started at load, invariants intact."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path

import pytest

from contextplane.clock import ManualClock
from contextplane.coordinators.group import GroupCoordinator
from contextplane.coordinators.group_state import (
    CoordinatorConfig,
    Group,
    GroupState,
    GroupStateMachine,
    JoinRequest,
    SyncRequest,
    check_invariants,
)
from contextplane.coordinators.group_state.stored import group_metadata, loaded_group
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import (
    decode_group_metadata_value,
    group_metadata_value,
)
from contextplane.settings import Settings
from tests.groups.test_group_state import SESSION_MS, Harness, subscription
from tests.support.metadata import open_store
from tests.support.wait import wait_until_async


class Stored:
    """The last value the machine stored for each group, as the store keeps it."""

    def __init__(self, sm: GroupStateMachine) -> None:
        self.values: dict[str, bytes] = {}
        sm.set_group_stored_listener(self)

    def __call__(self, group: Group) -> None:
        self.values[group.group_id] = group_metadata_value(group_metadata(group, 0))


def restarted(h: Harness, stored: Stored, *, later_ms: int = 60_000) -> Harness:
    """A new machine (another coordinator) that loads what `h` stored."""
    after = Harness()
    after.clock.now = h.clock.now + later_ms
    for group_id, value in stored.values.items():
        group = loaded_group(group_id, decode_group_metadata_value(value), after.clock.now)
        after.sm.load_group(group)
    assert check_invariants(after.sm.groups, after.sm.timers) == []
    return after


def _static_and_dynamic(h: Harness) -> tuple[str, str, int]:
    """A Stable group of a static member (i1) and a dynamic one, with assignments."""
    static = h.join("", instance_id="i1", protocols=[("range", subscription("a", "b"))])
    dynamic_id, dynamic = h.new_member(protocols=[("range", subscription("b"))])
    h.advance(100)
    static_id = static.value["member_id"]
    generation = static.value["generation_id"]
    leader = static.value["leader"]
    assignments = {static_id: b"to-static", dynamic_id: b"to-dynamic"}
    for member_id, instance in ((static_id, "i1"), (dynamic_id, None)):
        reply = h.sync(
            member_id, generation, assignments if member_id == leader else None,
            instance_id=instance,
        )  # fmt: skip
        assert reply.value["error_code"] == ErrorCode.none
    assert h.state() is GroupState.STABLE
    return static_id, dynamic_id, generation


def test_a_stable_group_comes_back_stable_with_its_members_and_assignments() -> None:
    h = Harness()
    stored = Stored(h.sm)
    static_id, dynamic_id, generation = _static_and_dynamic(h)
    before = h.sm.group("g")
    assert before is not None
    after = restarted(h, stored)
    group = after.sm.group("g")
    assert group is not None
    assert (group.state, group.generation_id, group.protocol_type, group.protocol_name) == (
        GroupState.STABLE, generation, "consumer", "range",
    )  # fmt: skip
    assert group.leader_id == before.leader_id
    assert group.static_members == {"i1": static_id}
    assert group.subscribed_topics == {"a", "b"}
    assert {m.member_id: m.assignment for m in group.members.values()} == {
        static_id: b"to-static",
        dynamic_id: b"to-dynamic",
    }
    # Members heartbeat on at the same generation, no rejoin; a SyncGroup at the stored
    # generation gets the stored assignment.
    assert after.sm.heartbeat("g", static_id, generation, "i1") == ErrorCode.none
    assert after.sm.heartbeat("g", dynamic_id, generation) == ErrorCode.none
    sync = after.sync(dynamic_id, generation)
    assert sync.value["assignment"] == b"to-dynamic"
    described = after.sm.describe_group("g")
    assert described["group_state"] == "Stable"
    assert {m["member_id"] for m in described["members"]} == {static_id, dynamic_id}


def test_sessions_start_at_load_and_a_member_that_does_not_come_back_expires() -> None:
    h = Harness()
    stored = Stored(h.sm)
    static_id, dynamic_id, generation = _static_and_dynamic(h)
    # Long after the members' last heartbeat: their sessions count from the load.
    after = restarted(h, stored, later_ms=10 * SESSION_MS)
    after.advance(SESSION_MS - 1_000)
    assert after.sm.heartbeat("g", static_id, generation, "i1") == ErrorCode.none
    after.advance(1_100)  # the dynamic member's session, started at load, is over
    group = after.sm.group("g")
    assert group is not None and dynamic_id not in group.members
    assert group.state is GroupState.PREPARING_REBALANCE
    assert after.sm.heartbeat("g", static_id, generation, "i1") == ErrorCode.rebalance_in_progress
    assert check_invariants(after.sm.groups, after.sm.timers) == []


def test_a_static_member_keeps_its_identity_and_a_fenced_one_stays_fenced() -> None:
    h = Harness()
    stored = Stored(h.sm)
    static_id, _, generation = _static_and_dynamic(h)
    # A new process takes instance i1 before the restart: the group is stored with it.
    taken = h.join("", instance_id="i1", protocols=[("range", subscription("a", "b"))])
    new_id = taken.value["member_id"]
    assert new_id != static_id
    after = restarted(h, stored)
    assert after.sm.heartbeat("g", new_id, generation, "i1") == ErrorCode.none
    # The zombie with the old member id cannot take the instance back.
    assert after.sm.heartbeat("g", static_id, generation, "i1") == ErrorCode.fenced_instance_id
    zombie = after.join(static_id, instance_id="i1", protocols=[("range", subscription("a"))])
    assert zombie.value["error_code"] == ErrorCode.fenced_instance_id


def test_an_emptied_group_comes_back_empty_at_its_generation() -> None:
    h = Harness()
    stored = Stored(h.sm)
    [(member_id, generation)] = h.stable_group(1)
    code, _ = h.sm.leave("g", [(member_id, None)])
    assert code == ErrorCode.none and h.state() is GroupState.EMPTY
    after = restarted(h, stored)
    group = after.sm.group("g")
    assert group is not None
    assert (group.state, group.generation_id, group.members) == (
        GroupState.EMPTY, generation + 1, {},
    )  # fmt: skip
    assert after.sm.heartbeat("g", member_id, generation + 1) == ErrorCode.unknown_member_id
    _, rejoined = after.new_member()
    after.advance(100)
    assert rejoined.value["generation_id"] == generation + 2


def test_a_group_mid_rebalance_comes_back_as_its_last_generation() -> None:
    """Kafka writes nothing when a rebalance starts: the stored generation is loaded."""
    h = Harness()
    stored = Stored(h.sm)
    [(a, generation), (b, _)] = h.stable_group(2)
    h.join(a)  # a rejoins: the group prepares a rebalance, b has not rejoined yet
    assert h.state() is GroupState.PREPARING_REBALANCE
    after = restarted(h, stored)
    group = after.sm.group("g")
    assert group is not None and group.state is GroupState.STABLE
    assert group.generation_id == generation and set(group.members) == {a, b}


def test_a_loaded_group_over_the_size_limit_rebalances() -> None:
    h = Harness()
    stored = Stored(h.sm)
    h.stable_group(2)
    after = Harness()
    after.sm = GroupStateMachine(after.clock, CoordinatorConfig(max_group_size=1))
    value = decode_group_metadata_value(stored.values["g"])
    after.sm.load_group(loaded_group("g", value, after.clock.now))
    assert after.state() is GroupState.PREPARING_REBALANCE
    assert check_invariants(after.sm.groups, after.sm.timers) == []


def test_a_value_that_contradicts_itself_is_refused() -> None:
    h = Harness()
    stored = Stored(h.sm)
    h.stable_group(2)
    value = decode_group_metadata_value(stored.values["g"])
    value.leader = "nobody"
    with pytest.raises(ValueError, match="leader 'nobody' is not a member"):
        loaded_group("g", value, 0)
    value = decode_group_metadata_value(stored.values["g"])
    value.members.append(value.members[0])
    with pytest.raises(ValueError, match="stored twice"):
        loaded_group("g", value, 0)


def _join(group: str, member_id: str, instance: str | None) -> JoinRequest:
    return JoinRequest(
        group_id=group,
        member_id=member_id,
        protocol_type="consumer",
        protocols=[("range", subscription("t"))],
        session_timeout_ms=SESSION_MS,
        rebalance_timeout_ms=5_000,
        group_instance_id=instance,
        client_id="c",
    )


def test_a_coordinator_on_the_same_store_loads_the_group(metadata_url: str, tmp_path: Path) -> None:
    """Through the metadata store (SQLite and PostgreSQL): a second coordinator, started
    without the first one stopping (as after kill -9), has the group; deleting it deletes
    the row."""

    async def main() -> None:
        store = await open_store(Settings(data_dir=tmp_path, metadata_url=metadata_url))
        first = GroupCoordinator(store, CoordinatorConfig(initial_rebalance_delay_ms=0))
        await first.start()
        join = await first.join_group(_join("g", "", "i1"))
        assert join["error_code"] == ErrorCode.none
        member_id, generation = join["member_id"], join["generation_id"]
        sync = await first.sync_group(
            SyncRequest("g", generation, member_id, {member_id: b"plan"}, "i1")
        )
        # Answered once the store has the generation.
        assert sync["assignment"] == b"plan"
        assert set(await store.classic_groups()) == {"g"}
        second = GroupCoordinator(store, CoordinatorConfig(initial_rebalance_delay_ms=0))
        await second.start()
        try:
            assert second.heartbeat("g", member_id, generation, "i1") == ErrorCode.none
            [described] = second.describe_groups(["g"])
            assert described["group_state"] == "Stable"
            assert [m["member_assignment"] for m in described["members"]] == [b"plan"]
            assert second.leave_group("g", [(member_id, "i1")])[0] == ErrorCode.none
            [deleted] = await second.delete_groups(["g"])
            assert deleted["error_code"] == ErrorCode.none
            assert await store.classic_groups() == {}
        finally:
            await second.stop()
            await first.stop()
            await store.close()

    asyncio.run(main())


def test_a_write_the_store_refuses_is_retried_by_the_timer_task(tmp_path: Path) -> None:
    async def main() -> None:
        store = await open_store(Settings(data_dir=tmp_path))
        coordinator = GroupCoordinator(store, CoordinatorConfig(initial_rebalance_delay_ms=0))
        await coordinator.start()
        real_save = store.save_classic_groups
        refusals = []

        async def refuse_once(
            writes: dict[str, bytes | None], fences: Collection[tuple[int, int]] = ()
        ) -> None:
            if not refusals:
                refusals.append(sorted(writes))
                raise OSError("disk unplugged")
            await real_save(writes, fences)

        store.save_classic_groups = refuse_once  # type: ignore[method-assign]
        try:
            join = await coordinator.join_group(_join("g", "", "i1"))
            member_id, generation = join["member_id"], join["generation_id"]
            sync = await coordinator.sync_group(
                SyncRequest("g", generation, member_id, {member_id: b"plan"}, "i1")
            )
            # Answered after the first try; the timer task writes it once the store takes it.
            assert sync["error_code"] == ErrorCode.none and refusals == [["g"]]
            await wait_until_async(
                lambda: coordinator.classic.next_save_ms() is None, 10, "the retry is written"
            )
            assert set(await store.classic_groups()) == {"g"}
        finally:
            await coordinator.stop()
            await store.close()

    asyncio.run(main())


def test_an_expiry_is_written_only_by_a_broker_that_serves_the_group(
    metadata_url: str, tmp_path: Path
) -> None:
    """A second coordinator loads the group; its members (talking to the first) expire
    there. On a store brokers share (PostgreSQL) it must not write that over the live
    coordinator's row; on its own store (SQLite) it is the coordinator, and writes it."""

    async def main() -> None:
        store = await open_store(Settings(data_dir=tmp_path, metadata_url=metadata_url))
        first = GroupCoordinator(store, CoordinatorConfig(initial_rebalance_delay_ms=0))
        await first.start()
        join = await first.join_group(_join("g", "", "i1"))
        member_id, generation = join["member_id"], join["generation_id"]
        await first.sync_group(SyncRequest("g", generation, member_id, {member_id: b"plan"}, "i1"))
        clock = ManualClock()
        second = GroupCoordinator(
            store, CoordinatorConfig(initial_rebalance_delay_ms=0), clock=clock
        )
        await second.start()
        try:
            clock.advance(SESSION_MS + 1)
            second.state.fire_due_timers()
            assert second.state.describe_group("g")["group_state"] == "Empty"
            await second.classic.flush()
            stored = decode_group_metadata_value((await store.classic_groups())["g"])
            if store.shared:
                assert [m.member_id for m in stored.members] == [member_id]
            else:
                assert (stored.members, stored.generation) == ([], generation + 1)
        finally:
            await second.stop()
            await first.stop()
            await store.close()

    asyncio.run(main())
