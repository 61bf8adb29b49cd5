"""KIP-848 consumer groups across a coordinator restart, on SQLite and PostgreSQL: the
store keeps epochs, subscriptions and assignments, each change is saved before the
heartbeat that names it is answered, a steady heartbeat writes nothing, and a failed
save is answered retriably and saved later."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from contextplane.coordinators.committed_offsets import OffsetCommitEntry
from contextplane.coordinators.consumer_group.messages import ConsumerHeartbeat
from contextplane.coordinators.group import GroupCoordinator
from contextplane.coordinators.group_state import CoordinatorConfig
from contextplane.metadata.records import ConsumerGroupWrite
from contextplane.metadata.store import MetadataStore, MetadataStoreUnavailable
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings
from tests.support.metadata import open_store
from tests.support.wait import wait_until_async

_PARTITIONS = {"t": 6}


def _partitions(topic: str) -> int:
    return _PARTITIONS.get(topic, 0)


def _join(member: str, instance_id: str | None = None) -> ConsumerHeartbeat:
    return ConsumerHeartbeat(
        group_id="g",
        member_id=member,
        member_epoch=0,
        instance_id=instance_id,
        rack_id="rack-a",
        rebalance_timeout_ms=30_000,
        subscribed_topic_names=("t",),
        server_assignor="range",
        owned=frozenset(),
        client_id=f"client-{member}",
        client_host="/127.0.0.1",
    )


def _beat(member: str, epoch: int, owned: frozenset[tuple[str, int]]) -> ConsumerHeartbeat:
    return dataclasses.replace(
        _join(member),
        member_epoch=epoch,
        rebalance_timeout_ms=-1,
        subscribed_topic_names=None,
        server_assignor=None,
        owned=owned,
    )


class CountingStore:
    """The real store, its consumer group saves counted (and failed on demand)."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self.saves: list[list[ConsumerGroupWrite]] = []
        self.failing = False
        self._save = store.save_consumer_groups
        store.save_consumer_groups = self.save  # type: ignore[method-assign]

    async def save(
        self, writes: list[ConsumerGroupWrite], fences: Collection[tuple[int, int]] = ()
    ) -> None:
        if self.failing:
            raise MetadataStoreUnavailable("connection lost")
        self.saves.append(writes)
        await self._save(writes, fences)


async def _coordinator(url: str, tmp_path: Path) -> tuple[GroupCoordinator, CountingStore]:
    store = await open_store(Settings(data_dir=tmp_path, metadata_url=url))
    counting = CountingStore(store)
    coordinator = GroupCoordinator(store, CoordinatorConfig(initial_rebalance_delay_ms=0))
    await coordinator.start()
    return coordinator, counting


async def _settle(coordinator: GroupCoordinator, members: dict[str, Any]) -> None:
    """Heartbeat every member (reporting what it was given) until the group is Stable."""
    for _ in range(20):
        for member_id, state in members.items():
            response = await coordinator.consumer_group_heartbeat(
                _beat(member_id, state["epoch"], state["owned"]), _partitions
            )
            assert response["error_code"] == ErrorCode.none, response
            state["epoch"] = response["member_epoch"]
            if response["assignment"] is not None:
                state["owned"] = frozenset(response["assignment"])
        group = coordinator.consumer.group("g")
        assert group is not None
        if group.state().value == "Stable":
            return
        # The assignment interval (1 s) batches a new target.
        await asyncio.sleep(0.3)
    raise AssertionError("the group did not settle")


def _view(coordinator: GroupCoordinator) -> Any:
    (described,) = coordinator.consumer_group_describe(["g"])
    members = sorted(
        (
            m["member_id"],
            m["member_epoch"],
            m["instance_id"],
            m["rack_id"],
            m["client_id"],
            m["subscribed_topic_names"],
            sorted(m["assignment"]),
            sorted(m["target_assignment"]),
        )
        for m in described["members"]
    )
    return (
        described["group_state"],
        described["group_epoch"],
        described["assignment_epoch"],
        described["assignor_name"],
        members,
    )


def test_members_keep_epochs_and_partitions_across_a_restart(
    metadata_url: str, tmp_path: Path
) -> None:
    async def main() -> None:
        coordinator, counting = await _coordinator(metadata_url, tmp_path)
        members: dict[str, Any] = {}
        for member_id, instance in (("m1", None), ("m2", "static-2")):
            joined = await coordinator.consumer_group_heartbeat(
                _join(member_id, instance), _partitions
            )
            assert joined["error_code"] == ErrorCode.none
            members[member_id] = {
                "epoch": joined["member_epoch"],
                "owned": frozenset(joined["assignment"]),
            }
        await _settle(coordinator, members)
        assert {len(m["owned"]) for m in members.values()} == {3}
        epoch = members["m1"]["epoch"]
        entry = OffsetCommitEntry("t", 0, 42, -1, None)
        assert await coordinator.commit_offsets("g", "m1", None, epoch, 9, [entry]) == [
            ErrorCode.none
        ]
        # A steady heartbeat writes nothing.
        saves = len(counting.saves)
        for member_id, state in members.items():
            await coordinator.consumer_group_heartbeat(
                _beat(member_id, state["epoch"], state["owned"]), _partitions
            )
        assert len(counting.saves) == saves
        before = _view(coordinator)
        await coordinator.stop()

        restarted, counting = await _coordinator(metadata_url, tmp_path)
        try:
            assert _view(restarted) == before
            for member_id, state in members.items():
                response = await restarted.consumer_group_heartbeat(
                    _beat(member_id, state["epoch"], state["owned"]), _partitions
                )
                # Accepted at the epoch it had, nothing to change.
                assert response["error_code"] == ErrorCode.none
                assert response["member_epoch"] == state["epoch"]
                assert response["assignment"] is None
            assert _view(restarted) == before
            assert counting.saves == []  # nothing changed, nothing written
            code, topics = await restarted.fetch_offsets("g", [("t", [0])], "m1", epoch)
            assert code == ErrorCode.none
            assert topics[0]["partitions"][0]["committed_offset"] == 42
            # A leave after the restart is saved too: a second restart has one member.
            left = await restarted.consumer_group_heartbeat(
                dataclasses.replace(_beat("m1", -1, frozenset()), owned=None), _partitions
            )
            assert left["error_code"] == ErrorCode.none
        finally:
            await restarted.stop()
        again, _ = await _coordinator(metadata_url, tmp_path)
        try:
            group = again.consumer.group("g")
            assert group is not None and set(group.members) == {"m2"}
            assert group.static_members == {"static-2": "m2"}
            assert group.group_epoch == before[1] + 1
        finally:
            await again.stop()

    asyncio.run(main())


def test_a_failed_save_is_answered_retriably_and_saved_later(
    metadata_url: str, tmp_path: Path
) -> None:
    async def main() -> None:
        coordinator, counting = await _coordinator(metadata_url, tmp_path)
        try:
            counting.failing = True
            refused = await coordinator.consumer_group_heartbeat(_join("m1"), _partitions)
            assert refused["error_code"] == ErrorCode.coordinator_not_available
            counting.failing = False
            # The timer task saves it without another heartbeat.
            await wait_until_async(lambda: counting.saves != [], 10, "the retried save")
        finally:
            await coordinator.stop()
        restarted, _ = await _coordinator(metadata_url, tmp_path)
        try:
            group = restarted.consumer.group("g")
            assert group is not None and set(group.members) == {"m1"}
        finally:
            await restarted.stop()

    asyncio.run(main())


def test_expired_and_deleted_groups_leave_the_store(metadata_url: str, tmp_path: Path) -> None:
    """A session expiry (a timer) is saved by the timer task; DeleteGroups deletes the
    rows; loaded members' sessions start again at load. On a store other brokers share
    (PostgreSQL) only the expiries of groups heartbeated on this broker are saved: the
    others may be served by another broker."""
    from contextplane.coordinators.consumer_group.messages import ConsumerGroupConfig

    config = ConsumerGroupConfig(session_timeout_ms=300)

    async def main() -> None:
        store = await open_store(Settings(data_dir=tmp_path, metadata_url=metadata_url))

        def coordinator() -> GroupCoordinator:
            return GroupCoordinator(
                store, CoordinatorConfig(initial_rebalance_delay_ms=0), consumer_config=config
            )

        async def stored_members() -> dict[str, set[str]]:
            return {g.group_id: set(g.members) for g in await store.consumer_groups()}

        first = coordinator()
        await first.start()
        await first.consumer_group_heartbeat(_join("m1"), _partitions)
        await first.consumer_group_heartbeat(
            dataclasses.replace(_join("h1"), group_id="h"), _partitions
        )
        await first.stop()
        await asyncio.sleep(0.5)  # longer than the session: it restarts at load
        second = coordinator()
        await second.start()
        try:
            group = second.consumer.group("g")
            assert group is not None and set(group.members) == {"m1"}
            # "g" is served here after the restart: a member joins (and expires too).
            await second.consumer_group_heartbeat(_join("m2"), _partitions)
            other = second.consumer.group("h")
            assert other is not None
            await wait_until_async(
                lambda: not group.members and not other.members, 10, "the session expiries"
            )
            expected = {"g": set(), "h": {"h1"} if store.shared else set()}
            for _ in range(50):
                if await stored_members() == expected:
                    break
                await asyncio.sleep(0.1)
            assert await stored_members() == expected
            deleted = await second.delete_groups(["g", "h"])
            assert [d["error_code"] for d in deleted] == [ErrorCode.none] * 2
            assert await store.consumer_groups() == []
        finally:
            await second.stop()

    asyncio.run(main())


def test_a_regex_member_is_stored_with_its_matches() -> None:
    """The document round trip keeps the regex and what it matched (so a restart does
    not see a subscription change and bump the group epoch)."""
    from contextplane.coordinators.consumer_group.group import ConsumerGroup, ConsumerMember
    from contextplane.coordinators.consumer_group.stored import (
        SavedGroups,
        group_document,
        load_group,
        member_assignment_document,
        member_metadata_document,
    )
    from contextplane.metadata.records import StoredConsumerGroup

    group = ConsumerGroup("g", group_epoch=4, assignment_epoch=4, assignor_name="uniform")
    member = ConsumerMember(
        "m", subscribed_regex="orders-.*", regex_topics=frozenset({"orders-1"}), epoch=4
    )
    member.assigned = frozenset({("orders-1", 0)})
    group.members["m"] = member
    group.target["m"] = member.assigned
    group.subscription_metadata = {"orders-1": 1}
    group.resolved_regexes = {"orders-.*": member.regex_topics}
    group.regexes_resolved_ms = 1234
    stored = StoredConsumerGroup(
        "g",
        group_document(group),
        {
            "m": (
                member_metadata_document(member),
                member_assignment_document(member, member.assigned),
            )
        },
    )
    loaded = load_group(stored)
    (again,) = loaded.members.values()
    assert (again.subscribed_regex, again.regex_topics, again.assigned) == (
        "orders-.*",
        frozenset({"orders-1"}),
        frozenset({("orders-1", 0)}),
    )
    # The group's one result per regex and when it was resolved (the next refresh is an
    # interval after it, not at the first heartbeat after a restart).
    assert loaded.resolved_regexes == {"orders-.*": frozenset({"orders-1"})}
    assert loaded.regexes_resolved_ms == 1234
    saved = SavedGroups()
    saved.remember(loaded)
    assert saved.changes("g", loaded, "m") is None
    assert saved.changes("g", loaded) is None
    # A new assignment rewrites the member's assignment document, not its subscription.
    again.epoch = 5
    pending = saved.changes("g", loaded, "m")
    assert pending is not None
    (write,) = pending.write.members.values()
    assert write.metadata is None and write.assignment is not None
    assert '"epoch":5' in write.assignment


def test_concurrent_heartbeats_leave_the_store_equal_to_the_group(
    metadata_url: str, tmp_path: Path
) -> None:
    """Saves of one group overlap (each heartbeat waits for its own): whatever order they
    finish in, the store ends with the group as it is, and each response was sent only
    once the store had at least the state it names."""

    async def main() -> None:
        coordinator, counting = await _coordinator(metadata_url, tmp_path)
        save = counting.save
        told: list[tuple[str, int]] = []

        async def slow_save(
            writes: list[ConsumerGroupWrite], fences: Collection[tuple[int, int]] = ()
        ) -> None:
            await asyncio.sleep(0.01)  # overlap the next heartbeats
            await save(writes, fences)

        counting.store.save_consumer_groups = slow_save  # type: ignore[method-assign]

        async def join(member: str) -> None:
            response = await coordinator.consumer_group_heartbeat(_join(member), _partitions)
            assert response["error_code"] == ErrorCode.none
            # Once answered, the store has this member at (at least) this epoch.
            (stored,) = await counting.store.consumer_groups()
            assert member in stored.members
            told.append((member, response["member_epoch"]))

        await asyncio.gather(*(join(f"m{i}") for i in range(10)))
        before = _view(coordinator)
        await coordinator.stop()
        restarted, _ = await _coordinator(metadata_url, tmp_path)
        try:
            assert _view(restarted) == before
            epochs = {m[0]: m[1] for m in before[4]}
            assert all(epochs[member] >= epoch for member, epoch in told)
        finally:
            await restarted.stop()

    asyncio.run(main())


def test_group_configs_are_stored_and_applied(metadata_url: str, tmp_path: Path) -> None:
    """A group's consumer.session.timeout.ms and consumer.heartbeat.interval.ms survive a
    restart and apply from the group's next heartbeat; a bad value changes nothing."""
    from contextplane.errors import KafkaError

    async def main() -> None:
        coordinator, _ = await _coordinator(metadata_url, tmp_path)
        try:
            overrides = {
                "consumer.session.timeout.ms": "60000",
                "consumer.heartbeat.interval.ms": "15000",
            }
            await coordinator.configs.set("g", overrides, validate_only=False)
            with pytest.raises(KafkaError) as refused:
                await coordinator.configs.set(
                    "g", {"consumer.session.timeout.ms": "1"}, validate_only=False
                )
            assert refused.value.code == ErrorCode.invalid_config
        finally:
            await coordinator.stop()
        restarted, _ = await _coordinator(metadata_url, tmp_path)
        try:
            assert restarted.configs.get("g") == overrides
            joined = await restarted.consumer_group_heartbeat(_join("m1"), _partitions)
            assert joined["heartbeat_interval_ms"] == 15_000
            machine = restarted.consumer
            deadline = machine.timers.deadline(("consumer-session", "g", "m1"))
            assert deadline is not None and deadline - machine.now_ms() > 45_000
            await restarted.configs.set("g", {}, validate_only=False)
            beat = await restarted.consumer_group_heartbeat(
                _beat("m1", joined["member_epoch"], frozenset(joined["assignment"])), _partitions
            )
            assert beat["heartbeat_interval_ms"] == 5_000
        finally:
            await restarted.stop()
        again, _ = await _coordinator(metadata_url, tmp_path)
        try:
            assert again.configs.get("g") == {}
        finally:
            await again.stop()

    asyncio.run(main())
