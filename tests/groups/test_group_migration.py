"""A group with members moving between the classic and the consumer protocol (KIP-848's
online upgrade and downgrade), through the coordinator on a real metadata store: the
embedded consumer protocol codec, Kafka's refusals with their texts, classic members
inside a consumer group, the downgrade when the last consumer-protocol member leaves,
and both conversions surviving a restart."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from contextplane.coordinators.committed_offsets import OffsetCommitEntry
from contextplane.coordinators.consumer_group.consumer_protocol import (
    MalformedProtocol,
    Subscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from contextplane.coordinators.consumer_group.messages import (
    ConsumerGroupConfig,
    ConsumerHeartbeat,
)
from contextplane.coordinators.group import GroupCoordinator
from contextplane.coordinators.group_state import CoordinatorConfig, JoinRequest, SyncRequest
from contextplane.coordinators.group_state.states import GroupState
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings
from tests.support.metadata import open_store
from tests.support.wait import wait_until_async

UPGRADE = "Cannot upgrade classic group g to consumer group because"


def _partitions(topic: str) -> int:
    return 3 if topic == "t" else 0


def _subscription(owned: frozenset[tuple[str, int]] = frozenset()) -> bytes:
    return encode_subscription(Subscription(3, ("t",), None, owned, -1, None))


def _join(member_id: str, metadata: bytes | None = None, **changes: Any) -> JoinRequest:
    request = JoinRequest(
        group_id="g",
        member_id=member_id,
        protocol_type="consumer",
        protocols=[("range", _subscription() if metadata is None else metadata)],
        session_timeout_ms=6000,
        rebalance_timeout_ms=5000,
        client_id="c",
    )
    return dataclasses.replace(request, **changes)


def _consumer_join(member_id: str = "m3") -> ConsumerHeartbeat:
    return ConsumerHeartbeat(
        group_id="g",
        member_id=member_id,
        member_epoch=0,
        rebalance_timeout_ms=30_000,
        subscribed_topic_names=("t",),
        owned=frozenset(),
    )


async def _coordinator(tmp_path: Path, **consumer: Any) -> GroupCoordinator:
    store = await open_store(Settings(data_dir=tmp_path))
    coordinator = GroupCoordinator(
        store,
        CoordinatorConfig(initial_rebalance_delay_ms=100),
        consumer_config=ConsumerGroupConfig(**consumer),
    )
    await coordinator.start()
    return coordinator


async def _classic_group(
    coordinator: GroupCoordinator, count: int = 2, user_data: bytes | None = None, **join: Any
) -> tuple[list[str], int]:
    """`count` classic members, member i assigned t-i by the leader: (ids, generation)."""
    ids = []
    for _ in range(count):
        first = await coordinator.join_group(_join("", **join))
        assert first["error_code"] == ErrorCode.member_id_required
        ids.append(first["member_id"])
    joined = await asyncio.wait_for(
        asyncio.gather(*(coordinator.join_group(_join(m, **join)) for m in ids)), 10
    )
    leader, generation = joined[0]["leader"], joined[0]["generation_id"]
    plan = {m: encode_assignment({("t", i)}, 3, user_data) for i, m in enumerate(ids)}
    synced = await asyncio.wait_for(
        asyncio.gather(
            *(
                coordinator.sync_group(SyncRequest("g", generation, m, plan if m == leader else {}))
                for m in ids
            )
        ),
        10,
    )
    assert [s["error_code"] for s in synced] == [ErrorCode.none] * count
    return ids, generation


# -- the codec ---------------------------------------------------------------------------


def test_the_embedded_protocol_round_trips_at_every_version() -> None:
    owned = frozenset({("t", 0), ("t", 2), ("u", 1)})
    for version in range(4):
        subscription = Subscription(version, ("t", "u"), b"ud", owned, 7, "rack")
        decoded = decode_subscription(encode_subscription(subscription))
        assert decoded.topics == ("t", "u") and decoded.user_data == b"ud"
        assert decoded.owned == (owned if version >= 1 else frozenset())
        assert decoded.generation_id == (7 if version >= 2 else -1)
        assert decoded.rack_id == ("rack" if version >= 3 else None)
        assignment = decode_assignment(encode_assignment(owned, version, b"x"))
        assert (assignment.version, assignment.partitions, assignment.user_data) == (
            version,
            owned,
            b"x",
        )
    # Kafka's bytes for a v1 assignment of t-0 and t-1 without user data.
    kafka = bytes.fromhex("000100000001000174000000020000000000000001ffffffff")
    assert encode_assignment({("t", 0), ("t", 1)}, 1) == kafka
    # A newer client's subscription is read as v3, its extra fields ignored.
    newer = b"\x00\x04" + encode_subscription(Subscription(3, ("t",)))[2:] + b"\x01\x02"
    assert decode_subscription(newer).topics == ("t",)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x00\x00\x00\x00\x00\x05", b"\xff\xff", b"\x00\x00\x7f\xff\xff\xff"],
)
def test_malformed_embedded_protocol_is_refused(data: bytes) -> None:
    with pytest.raises(MalformedProtocol):
        decode_subscription(data)
    with pytest.raises(MalformedProtocol):
        decode_assignment(data)


# -- the upgrade -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consumer", "join", "user_data", "message"),
    [
        ({"migration_policy": "downgrade"}, {}, None, "online upgrade is disabled."),
        ({"migration_policy": "disabled"}, {}, None, "online upgrade is disabled."),
        (
            {},
            {"protocol_type": "connect"},
            None,
            "the group does not use the consumer embedded protocol.",
        ),
        ({"max_size": 1}, {}, None, "the group size exceeds the consumer group maximum size."),
        ({}, {"metadata": b"\x00\x00\x00"}, None, "the embedded consumer protocol is malformed."),
        ({}, {}, b"custom", "an unsupported custom assignor is in use."),
    ],
)
def test_an_upgrade_kafka_refuses_leaves_the_group_classic(
    tmp_path: Path, consumer: dict[str, Any], join: dict[str, Any], user_data: Any, message: str
) -> None:
    async def main() -> None:
        coordinator = await _coordinator(tmp_path, **consumer)
        try:
            _, generation = await _classic_group(coordinator, user_data=user_data, **join)
            refused = await coordinator.consumer_group_heartbeat(_consumer_join(), _partitions)
            assert refused["error_code"] == ErrorCode.group_id_not_found
            assert refused["error_message"].startswith(f"{UPGRADE} {message}")
            classic = coordinator.state.group("g")
            assert classic is not None and classic.generation_id == generation
            assert coordinator.consumer.group("g") is None
            # A member of the consumer protocol that is not joining is not converted.
            beat = dataclasses.replace(_consumer_join(), member_epoch=3)
            other = await coordinator.consumer_group_heartbeat(beat, _partitions)
            assert other["error_message"] == "Group g is not a consumer group."
        finally:
            await coordinator.stop()

    asyncio.run(main())


def test_an_upgrade_to_a_full_group_refuses_the_joiner(tmp_path: Path) -> None:
    async def main() -> None:
        coordinator = await _coordinator(tmp_path, max_size=2)
        try:
            await _classic_group(coordinator)
            refused = await coordinator.consumer_group_heartbeat(_consumer_join(), _partitions)
            assert refused["error_code"] == ErrorCode.group_max_size_reached
            assert coordinator.state.group("g") is not None
        finally:
            await coordinator.stop()

    asyncio.run(main())


def test_classic_members_live_on_in_the_upgraded_group_and_it_downgrades(
    tmp_path: Path,
) -> None:
    """Upgrade at the classic generation; the classic members keep their partitions, are
    told to rejoin by Heartbeat, rejoin without a leader and sync what they hold; offsets
    commit with the generation; the conversion survives a restart; when the consumer
    member leaves the group is classic again, rebalancing, and that survives a restart."""

    async def main() -> None:
        coordinator = await _coordinator(tmp_path)
        try:
            (m0, m1), generation = await _classic_group(coordinator)
            joined = await coordinator.consumer_group_heartbeat(_consumer_join(), _partitions)
            assert (joined["error_code"], joined["member_epoch"]) == (
                ErrorCode.none,
                generation + 1,
            )
            assert not joined["assignment"] & {("t", 0), ("t", 1)}
            assert coordinator.state.group("g") is None
            group = coordinator.consumer.group("g")
            assert group is not None and group.members[m0].assigned == {("t", 0)}
            assert group.members[m0].epoch == generation
            types = {
                m["member_id"]: m["member_type"]
                for m in coordinator.consumer_group_describe(["g"])[0]["members"]
            }
            assert types == {m0: 0, m1: 0, "m3": 1}

            entry = OffsetCommitEntry("t", 0, 5, -1, None)
            assert await coordinator.commit_offsets("g", m0, None, generation, 8, [entry]) == [
                ErrorCode.none
            ]
            beat = coordinator.heartbeat("g", m0, generation, None)
            assert beat == ErrorCode.rebalance_in_progress
            rejoined = await coordinator.join_group(_join(m0))
            assert rejoined["error_code"] == ErrorCode.none
            assert (rejoined["generation_id"], rejoined["leader"], rejoined["members"]) == (
                generation + 1,
                "",
                [],
            )
            assert rejoined["protocol_name"] == "range"
            stale = await coordinator.commit_offsets("g", m0, None, generation, 8, [entry])
            assert stale == [ErrorCode.illegal_generation]
            synced = await coordinator.sync_group(
                SyncRequest("g", generation + 1, m0, {}, None, "consumer", "range")
            )
            assert synced["error_code"] == ErrorCode.none
            held = decode_assignment(synced["assignment"])
            assert held.version == 3 and held.partitions == group.members[m0].assigned
            assert coordinator.heartbeat("g", m0, generation + 1, None) == ErrorCode.none
        finally:
            await coordinator.stop()

        restarted = await _coordinator(tmp_path)
        try:
            group = restarted.consumer.group("g")
            assert group is not None and restarted.state.group("g") is None
            classic = group.members[m1].classic
            assert classic is not None and classic.session_timeout_ms == 6000
            assert classic.protocols == (("range", _subscription()),)
            left = await restarted.consumer_group_heartbeat(
                dataclasses.replace(_consumer_join(), member_epoch=-1), _partitions
            )
            assert left["error_code"] == ErrorCode.none
            assert restarted.consumer.group("g") is None
            downgraded = restarted.state.group("g")
            assert downgraded is not None and set(downgraded.members) == {m0, m1}
            assert downgraded.is_in(GroupState.PREPARING_REBALANCE)
            epoch = downgraded.generation_id
            assert epoch > generation + 1
            # The classic members rejoin and agree with a client-side leader again.
            answers = await asyncio.wait_for(
                asyncio.gather(*(restarted.join_group(_join(m)) for m in (m0, m1))), 10
            )
            assert {a["generation_id"] for a in answers} == {epoch + 1}
            assert answers[0]["leader"] in (m0, m1)
        finally:
            await restarted.stop()

        again = await _coordinator(tmp_path)
        try:
            assert again.consumer.group("g") is None
            classic_again = again.state.group("g")
            assert classic_again is not None and set(classic_again.members) == {m0, m1}
        finally:
            await again.stop()

    asyncio.run(main())


def test_parked_classic_requests_are_told_to_rejoin_by_the_upgrade(tmp_path: Path) -> None:
    async def main() -> None:
        coordinator = await _coordinator(tmp_path)
        try:
            await _classic_group(coordinator)
            first = await coordinator.join_group(_join(""))
            parked = coordinator.join_group(_join(first["member_id"]))
            await asyncio.sleep(0)
            assert not parked.done()
            joined = await coordinator.consumer_group_heartbeat(_consumer_join(), _partitions)
            assert joined["error_code"] == ErrorCode.none
            answer = await asyncio.wait_for(parked, 10)
            assert answer["error_code"] == ErrorCode.rebalance_in_progress
        finally:
            await coordinator.stop()

    asyncio.run(main())


@pytest.mark.parametrize(("policy", "downgrades"), [("upgrade", False), ("bidirectional", True)])
def test_the_policy_decides_the_downgrade(tmp_path: Path, policy: str, downgrades: bool) -> None:
    async def main() -> None:
        coordinator = await _coordinator(tmp_path, migration_policy=policy)
        try:
            await _classic_group(coordinator)
            await coordinator.consumer_group_heartbeat(_consumer_join(), _partitions)
            await coordinator.consumer_group_heartbeat(
                dataclasses.replace(_consumer_join(), member_epoch=-1), _partitions
            )
            assert (coordinator.state.group("g") is not None) is downgrades
            assert (coordinator.consumer.group("g") is None) is downgrades
        finally:
            await coordinator.stop()

    asyncio.run(main())


def test_a_classic_join_to_a_consumer_group_under_disabled_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        coordinator = await _coordinator(tmp_path, migration_policy="disabled")
        try:
            await coordinator.consumer_group_heartbeat(_consumer_join(), _partitions)
            refused = await coordinator.join_group(_join(""))
            assert refused["error_code"] == ErrorCode.inconsistent_group_protocol
        finally:
            await coordinator.stop()

    asyncio.run(main())


def test_the_last_consumer_member_expiring_downgrades_the_group(tmp_path: Path) -> None:
    """The timer task fences a consumer-protocol member whose session ran out; the classic
    members' own (longer) sessions keep them, and the group is classic again."""

    async def main() -> None:
        coordinator = await _coordinator(tmp_path, session_timeout_ms=300)
        try:
            ids, _ = await _classic_group(coordinator)
            joined = await coordinator.consumer_group_heartbeat(_consumer_join(), _partitions)
            assert joined["error_code"] == ErrorCode.none
            await wait_until_async(
                lambda: coordinator.state.group("g") is not None, 10, "the downgrade"
            )
            downgraded = coordinator.state.group("g")
            assert downgraded is not None and set(downgraded.members) == set(ids)
            assert coordinator.consumer.group("g") is None
        finally:
            await coordinator.stop()

    asyncio.run(main())
