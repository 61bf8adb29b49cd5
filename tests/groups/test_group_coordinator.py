"""The async shell: timers on a real event loop, offsets in the metadata store, restart,
cleanup and shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from contextplane.coordinators.committed_offsets import OffsetCommitEntry
from contextplane.coordinators.group import GroupCoordinator
from contextplane.coordinators.group_state import CoordinatorConfig, JoinRequest
from contextplane.metadata.store import MetadataStoreUnavailable
from contextplane.protocol.error_codes import ErrorCode
from contextplane.repeated_log import BURST
from contextplane.settings import Settings
from tests.support.metadata import open_store
from tests.support.wait import wait_until_async


async def make_coordinator(tmp_path: Path, delay_ms: int) -> GroupCoordinator:
    store = await open_store(Settings(data_dir=tmp_path))
    return GroupCoordinator(store, CoordinatorConfig(initial_rebalance_delay_ms=delay_ms))


def join_request(member_id: str = "", group: str = "g") -> JoinRequest:
    return JoinRequest(
        group_id=group,
        member_id=member_id,
        protocol_type="consumer",
        protocols=[("range", b"")],
        session_timeout_ms=6000,
        rebalance_timeout_ms=5000,
        client_id="c",
    )


async def join_member(coordinator: GroupCoordinator, group: str = "g") -> asyncio.Future[Any]:
    first = await coordinator.join_group(join_request(group=group))
    assert first["error_code"] == ErrorCode.member_id_required
    return coordinator.join_group(join_request(first["member_id"], group))


def test_initial_rebalance_delay_on_the_event_loop(tmp_path: Path) -> None:
    delay_s = 0.5

    async def main() -> None:
        coordinator = await make_coordinator(tmp_path, int(delay_s * 1000))
        await coordinator.start()
        try:
            started = time.monotonic()
            a = await join_member(coordinator)
            # A second member within the delay extends it by another delay (Kafka's
            # InitialDelayedJoin extends when the first delay ends, whenever it joined).
            b = await join_member(coordinator)
            assert not a.done()
            ra, rb = await asyncio.wait_for(asyncio.gather(a, b), 10)
            elapsed = time.monotonic() - started
            # Neither is answered before both delays: lateness under load only makes this
            # longer; the lower bound is exact.
            assert elapsed >= 2 * delay_s - 0.05, elapsed
            assert ra["generation_id"] == rb["generation_id"] == 1
            assert len(ra["members"]) == 2
        finally:
            await coordinator.stop()

    asyncio.run(main())


def test_zero_delay_join_completes_promptly(tmp_path: Path) -> None:
    async def main() -> None:
        coordinator = await make_coordinator(tmp_path, 0)
        await coordinator.start()
        try:
            started = time.monotonic()
            response = await asyncio.wait_for(await join_member(coordinator), 5)
            assert response["error_code"] == ErrorCode.none
            assert time.monotonic() - started < 3
        finally:
            await coordinator.stop()

    asyncio.run(main())


def test_offsets_persist_and_group_reloads_as_empty(tmp_path: Path) -> None:
    async def first_life() -> None:
        coordinator = await make_coordinator(tmp_path, 0)
        await coordinator.start()
        codes = await coordinator.commit_offsets(
            "kept",
            "",
            None,
            -1,
            9,
            [
                OffsetCommitEntry("t", 0, 10, 2, "meta"),
                OffsetCommitEntry("t", 1, 20, -1, None),
                OffsetCommitEntry("t", 2, 30, -1, "x" * 5000),
            ],
        )
        assert codes == [ErrorCode.none, ErrorCode.none, ErrorCode.offset_metadata_too_large]
        await coordinator.stop()
        await coordinator._store.close()

    async def second_life() -> None:
        coordinator = await make_coordinator(tmp_path, 0)
        await coordinator.start()
        try:
            _, groups = coordinator.list_groups()
            assert groups == [
                {
                    "group_id": "kept",
                    "protocol_type": "",
                    "group_state": "Empty",
                    "group_type": "classic",
                }
            ]
            code, topics = await coordinator.fetch_offsets("kept", [("t", [0, 1, 2])])
            assert code == ErrorCode.none
            assert [
                (p["partition_index"], p["committed_offset"], p["committed_leader_epoch"])
                for p in topics[0]["partitions"]
            ] == [(0, 10, 2), (1, 20, -1), (2, -1, -1)]
            assert topics[0]["partitions"][0]["metadata"] == "meta"
            assert coordinator.describe_groups(["kept"])[0]["group_state"] == "Empty"
        finally:
            await coordinator.stop()

    asyncio.run(first_life())
    asyncio.run(second_life())


def test_cleanup_forgets_empty_groups_without_offsets(tmp_path: Path) -> None:
    async def main() -> None:
        coordinator = await make_coordinator(tmp_path, 0)
        await coordinator.start()
        try:
            response = await asyncio.wait_for(await join_member(coordinator, "transient"), 5)
            coordinator.leave_group("transient", [(response["member_id"], None)])
            await coordinator.commit_offsets(
                "simple", "", None, -1, 9, [OffsetCommitEntry("t", 0, 1, -1, None)]
            )
            states = {g["group_id"]: g["group_state"] for g in coordinator.list_groups()[1]}
            assert states == {"transient": "Empty", "simple": "Empty"}
            assert await coordinator.cleanup_groups() == ["transient"]
            assert [g["group_id"] for g in coordinator.list_groups()[1]] == ["simple"]
        finally:
            await coordinator.stop()

    asyncio.run(main())


def test_stop_answers_parked_joins(tmp_path: Path) -> None:
    async def main() -> None:
        coordinator = await make_coordinator(tmp_path, 60_000)
        await coordinator.start()
        parked = await join_member(coordinator)
        # The timer task has seen the join and sleeps until the delay's end: nothing
        # answers the join before the stop.
        await wait_until_async(
            lambda: coordinator._sleeping_until == coordinator.state.next_deadline(),
            5,
            "the timer task sleeps until the initial rebalance delay ends",
        )
        assert not parked.done()
        await coordinator.stop()
        assert parked.result()["error_code"] == ErrorCode.not_coordinator
        after = await coordinator.join_group(join_request())
        assert after["error_code"] == ErrorCode.coordinator_not_available

    asyncio.run(main())


def test_store_outage_fails_commits_retriably_without_a_traceback_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """During a metadata-store outage every commit fails; the client gets a retriable
    error and the log gets a few whole lines and a count, not a traceback per commit."""
    commits = 3 * BURST

    async def main() -> None:
        coordinator = await make_coordinator(tmp_path, 0)
        await coordinator.start()
        try:

            async def lost(*_: Any) -> None:
                raise MetadataStoreUnavailable("connection lost")

            coordinator._store.commit_offsets = lost  # type: ignore[method-assign]
            for _ in range(commits):
                codes = await coordinator.commit_offsets(
                    "g", "", None, -1, 9, [OffsetCommitEntry("t", 0, 1, -1, None)]
                )
                assert codes == [ErrorCode.coordinator_not_available]
        finally:
            await coordinator.stop()

    with caplog.at_level(logging.WARNING, logger="contextplane.coordinators.committed_offsets"):
        asyncio.run(main())
    lines = [r for r in caplog.records if r.name == "contextplane.coordinators.committed_offsets"]
    assert [r.exc_info for r in lines if r.exc_info] == []
    assert len(lines) == BURST
    assert "metadata store unavailable" in lines[0].getMessage()


# -- both protocols in one coordinator -------------------------------------------------


def _consumer_join(member: str, group: str = "g") -> Any:
    from contextplane.coordinators.consumer_group.messages import ConsumerHeartbeat

    return ConsumerHeartbeat(
        group_id=group,
        member_id=member,
        member_epoch=0,
        rebalance_timeout_ms=30_000,
        subscribed_topic_names=("t",),
        owned=frozenset(),
    )


def _partitions(topic: str) -> int:
    return 3 if topic == "t" else 0


def test_a_group_id_is_one_protocol_at_a_time(tmp_path: Path) -> None:
    """An Empty group of either protocol turns into the other; one with members refuses
    a protocol that does not fit; list, describe, commit and delete follow the group's protocol."""

    async def main() -> None:
        coordinator = await make_coordinator(tmp_path, 0)
        await coordinator.start()
        try:
            joined = await coordinator.consumer_group_heartbeat(_consumer_join("m1"), _partitions)
            assert (joined["error_code"], joined["member_epoch"]) == (ErrorCode.none, 2)
            # Classic members may join it (test_group_migration.py), but only with the
            # consumer embedded protocol.
            connect = dataclasses.replace(join_request(), protocol_type="connect")
            refused = await coordinator.join_group(connect)
            assert refused["error_code"] == ErrorCode.inconsistent_group_protocol
            _, listed = coordinator.list_groups((), ("consumer",))
            assert [(g["group_id"], g["group_type"], g["group_state"]) for g in listed] == [
                ("g", "consumer", "Stable")
            ]
            assert coordinator.list_groups((), ("classic",))[1] == []
            described = coordinator.describe_groups(["g"])[0]
            assert (described["protocol_type"], described["protocol_data"]) == (
                "consumer",
                "uniform",
            )
            entry = OffsetCommitEntry("t", 0, 5, -1, None)
            stale = await coordinator.commit_offsets("g", "m1", None, 1, 9, [entry])
            assert stale == [ErrorCode.stale_member_epoch]
            assert await coordinator.commit_offsets("g", "m1", None, 2, 9, [entry]) == [
                ErrorCode.none
            ]
            code, _ = await coordinator.fetch_offsets("g", None, "m1", 1)
            assert code == ErrorCode.stale_member_epoch
            code, topics = await coordinator.fetch_offsets("g", None, "m1", 2)
            assert code == ErrorCode.none and topics[0]["partitions"][0]["committed_offset"] == 5
            deleted = await coordinator.delete_groups(["g"])
            assert deleted == [{"group_id": "g", "error_code": ErrorCode.non_empty_group}]
            left = await coordinator.consumer_group_heartbeat(
                dataclasses.replace(_consumer_join("m1"), member_epoch=-1), _partitions
            )
            assert left["member_epoch"] == -1
            # Empty now: a classic member turns it into a classic group.
            first = await coordinator.join_group(join_request())
            assert first["error_code"] == ErrorCode.member_id_required
            assert coordinator.consumer.group("g") is None
            # A classic group with (pending) members refuses consumer-protocol members.
            busy = await coordinator.consumer_group_heartbeat(_consumer_join("m2"), _partitions)
            assert busy["error_code"] == ErrorCode.group_id_not_found
        finally:
            await coordinator.stop()

    asyncio.run(main())


def test_after_a_restart_consumer_members_keep_their_epoch_and_offsets(
    tmp_path: Path,
) -> None:
    """The group is loaded as a consumer group (not as an Empty classic one from its
    offsets): the member's next heartbeat is accepted at its epoch, the commits are
    there. (tests/groups/test_consumer_group_durability.py covers the rest.)"""

    async def main() -> None:
        coordinator = await make_coordinator(tmp_path, 0)
        await coordinator.start()
        await coordinator.consumer_group_heartbeat(_consumer_join("m1"), _partitions)
        entry = OffsetCommitEntry("t", 1, 7, -1, None)
        assert await coordinator.commit_offsets("g", "m1", None, 2, 9, [entry]) == [ErrorCode.none]
        await coordinator.stop()
        restarted = await make_coordinator(tmp_path, 0)
        await restarted.start()
        try:
            assert restarted.state.group("g") is None
            beat = dataclasses.replace(_consumer_join("m1"), member_epoch=2, owned=None)
            kept = await restarted.consumer_group_heartbeat(beat, _partitions)
            assert (kept["error_code"], kept["member_epoch"]) == (ErrorCode.none, 2)
            code, topics = await restarted.fetch_offsets("g", [("t", [1])])
            assert topics[0]["partitions"][0]["committed_offset"] == 7
        finally:
            await restarted.stop()

    asyncio.run(main())


def test_the_timer_task_expires_consumer_members(tmp_path: Path) -> None:
    """The coordinator's one timer task also fires the consumer groups' session timers."""
    from contextplane.coordinators.consumer_group.messages import ConsumerGroupConfig

    async def main() -> None:
        store = await open_store(Settings(data_dir=tmp_path))
        coordinator = GroupCoordinator(
            store,
            CoordinatorConfig(initial_rebalance_delay_ms=0),
            consumer_config=ConsumerGroupConfig(session_timeout_ms=200),
        )
        await coordinator.start()
        try:
            await coordinator.consumer_group_heartbeat(_consumer_join("m1"), _partitions)
            group = coordinator.consumer.group("g")
            assert group is not None and set(group.members) == {"m1"}

            await wait_until_async(lambda: not group.members, 10, "the session expiry")
        finally:
            await coordinator.stop()

    asyncio.run(main())
