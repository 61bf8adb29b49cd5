"""Share groups' membership in the metadata store, on SQLite and PostgreSQL: saved before
the heartbeat that changed it is answered, loaded at start with each member's session
timed from the load, so members heartbeat on at their epochs after a restart and one
that does not come back expires; a refused save answers COORDINATOR_NOT_AVAILABLE and is
written by the timer task. And a broker restarted under two members over the wire."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kio.schema.errors import ErrorCode

from contextplane.clock import ManualClock
from contextplane.coordinators.share_coordinator import ShareConfig, ShareCoordinator
from contextplane.coordinators.share_group import ShareGroupConfig, ShareHeartbeat
from contextplane.coordinators.share_stored import decode
from contextplane.metadata.store import MetadataStore, MetadataStoreUnavailable
from contextplane.settings import Settings
from tests.groups.support import Broker, Wire
from tests.support.metadata import open_store
from tests.support.wait import wait_until_async

IMMEDIATE = {"group.share.assignment.interval.ms": "0"}

SESSION_MS = 45_000  # group.share.session.timeout.ms's default


def _counts(topic: str) -> int:
    return 2 if topic == "t" else 0


async def _coordinator(store: MetadataStore, clock: ManualClock) -> ShareCoordinator:
    # Targets at every change (no assignment interval), as these epochs were written.
    config = ShareConfig(ShareGroupConfig(assignment_interval_ms=0))
    coordinator = ShareCoordinator(store, config, clock)
    await coordinator.start(_counts)
    return coordinator


async def _beat(
    coordinator: ShareCoordinator, member: str, epoch: int, topics: tuple[str, ...] | None = None
) -> dict[str, Any]:
    request = ShareHeartbeat("g", member, epoch, None, topics, "client", "/127.0.0.1")
    return await coordinator.heartbeat(request, _counts)


async def _until_stored(store: MetadataStore, wanted: Callable[[list[str]], bool]) -> None:
    """Wait (10 s at most) until the stored members of group g are as `wanted`."""

    async def members() -> list[str]:
        raw = (await store.share_groups()).get("g")
        return [] if raw is None else sorted(decode("g", raw).members)

    deadline = asyncio.get_running_loop().time() + 10
    while not wanted(await members()):
        assert asyncio.get_running_loop().time() < deadline, await members()
        await asyncio.sleep(0.05)


def test_members_heartbeat_on_after_a_restart(metadata_url: str, tmp_path: Path) -> None:
    async def run() -> None:
        clock = ManualClock()
        store = await open_store(Settings(data_dir=tmp_path, metadata_url=metadata_url))
        first = await _coordinator(store, clock)
        a = await _beat(first, "a", 0, ("t",))
        b = await _beat(first, "b", 0, ("t",))
        a = await _beat(first, "a", a["member_epoch"])
        # From epoch 1: a's join (2) is dealt nothing, t's share partitions initialized
        # after it; b's join (3) deals them, as in Kafka 4.4.
        assert (a["member_epoch"], b["member_epoch"]) == (3, 3)
        stored = decode("g", (await store.share_groups())["g"])
        assert (stored.group_epoch, sorted(stored.members)) == (3, ["a", "b"])
        await first.stop()

        clock.advance(SESSION_MS - 1_000)  # the restart takes most of a session
        restarted = await _coordinator(store, clock)
        group = restarted.describe("g")
        assert group is not None and group["group_epoch"] == 3
        assert {m["member_id"]: m["assignment"] for m in group["members"]} == {
            "a": a["assignment"],
            "b": b["assignment"],
        }
        # a heartbeats on at its epoch: not told to rejoin, nothing new to take.
        steady = await _beat(restarted, "a", 3)
        assert (steady["error_code"], steady["member_epoch"], steady["assignment"]) == (
            ErrorCode.none,
            3,
            None,
        )
        # Sessions are timed from the load: b, silent since before the restart, is still
        # a member just before its session ends, and gone after.
        clock.advance(SESSION_MS - 1)
        restarted.kick()
        await asyncio.sleep(0.05)
        assert len(restarted.describe("g")["members"]) == 2  # type: ignore[index]
        clock.advance(2)
        steady = await _beat(restarted, "a", 3)  # a keeps its session
        restarted.kick()

        def b_expired() -> bool:
            described = restarted.describe("g")
            return described is not None and [m["member_id"] for m in described["members"]] == ["a"]

        await wait_until_async(b_expired, 10, "b's session ended")
        # The expiry is stored by the timer task: a second restart has a alone.
        await _until_stored(store, lambda members: members == ["a"])
        await restarted.stop()
        again = await _coordinator(store, clock)
        assert [m["member_id"] for m in again.describe("g")["members"]] == ["a"]  # type: ignore[index]
        await again.stop()
        await store.close()

    asyncio.run(run())


def test_a_refused_save_is_retried_and_the_heartbeat_told(
    metadata_url: str, tmp_path: Path
) -> None:
    async def run() -> None:
        clock = ManualClock()
        store = await open_store(Settings(data_dir=tmp_path, metadata_url=metadata_url))
        coordinator = await _coordinator(store, clock)
        real_save = store.save_share_groups
        failing = True

        async def save(writes: dict[str, bytes | None], fences: Any = ()) -> None:
            if failing:
                raise MetadataStoreUnavailable("connection lost")
            await real_save(writes, fences)

        store.save_share_groups = save  # type: ignore[method-assign]
        refused = await _beat(coordinator, "a", 0, ("t",))
        assert refused["error_code"] == ErrorCode.coordinator_not_available
        failing = False
        coordinator.kick()

        await _until_stored(store, lambda members: members == ["a"])
        # The member's retry at epoch 0 joins it (as after a lost answer).
        retried = await _beat(coordinator, "a", 0, ("t",))
        assert retried["error_code"] == ErrorCode.none
        await coordinator.stop()
        await store.close()

    asyncio.run(run())


def test_a_restarted_broker_keeps_its_share_members(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", settings=IMMEDIATE).start()
    try:
        with Wire(broker.port) as wire:
            created = wire.call(
                19,
                7,
                topics=[{"name": "work", "num_partitions": 2, "replication_factor": 1}],
                timeout=10_000,
            )
            assert created.topics[0].error_code == ErrorCode.none
            epochs = {}
            for member in ("a", "b"):
                joined = wire.call(
                    76,
                    1,
                    group_id="workers",
                    member_id=member,
                    member_epoch=0,
                    subscribed_topic_names=["work"],
                )
                assert joined.error_code == ErrorCode.none
                epochs[member] = joined.member_epoch
        broker.restart()
        with Wire(broker.port) as wire:

            def beat(member: str, epoch: int) -> Any:
                return wire.call(
                    76,
                    1,
                    group_id="workers",
                    member_id=member,
                    member_epoch=epoch,
                    subscribed_topic_names=None,
                )

            # b heartbeats on at the epoch it had (no UNKNOWN_MEMBER_ID), a catches up.
            b = beat("b", epochs["b"])
            assert (b.error_code, b.member_epoch) == (ErrorCode.none, epochs["b"])
            a = beat("a", epochs["a"])
            assert (a.error_code, a.member_epoch) == (ErrorCode.none, epochs["b"])
            described = wire.call(77, 1, group_ids=["workers"], include_authorized_operations=False)
            assert sorted(m.member_id for m in described.groups[0].members) == ["a", "b"]
    finally:
        broker.stop()
