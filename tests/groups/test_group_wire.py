"""Group APIs over the wire, version by version, with a raw client against a broker
subprocess.

With CONTEXTPLANE_GROUPS_REFERENCE=1 the module runs against real Apache Kafka from the
reference harness instead (harness/install.sh), to check that these expectations are
Kafka's own; the tests about contextplane specifics are skipped then.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode

from contextplane.coordinators.consumer_group.consumer_protocol import (
    decode_assignment,
    encode_assignment,
)
from tests.groups.support import Broker, Wire, subscription
from tests.support.wait import wait_until

FIND_COORDINATOR, JOIN, HEARTBEAT, LEAVE, SYNC = 10, 11, 12, 13, 14
OFFSET_COMMIT, OFFSET_FETCH, DESCRIBE, LIST, DELETE_GROUPS, OFFSET_DELETE = 8, 9, 15, 16, 42, 47
CONSUMER_GROUP_HEARTBEAT, CONSUMER_GROUP_DESCRIBE = 68, 69
CREATE_TOPICS, API_VERSIONS = 19, 18

SESSION_MS = 6000
REFERENCE = os.environ.get("CONTEXTPLANE_GROUPS_REFERENCE") == "1"
contextplane_only = pytest.mark.skipif(REFERENCE, reason="contextplane-specific")


def _start_reference(data_dir: Path) -> object:
    repo = str(Path(__file__).resolve().parents[2])
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from harness import kafka_reference

    return kafka_reference.start(
        data_dir=data_dir, extra_props={"offsets.topic.num.partitions": 1}, timeout=120
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    data_dir = tmp_path_factory.mktemp("wire") / "broker"
    process: Broker = _start_reference(data_dir) if REFERENCE else Broker(data_dir).start()  # type: ignore[assignment]
    try:
        with Wire(process.port) as wire:
            response = wire.call(
                CREATE_TOPICS,
                7,
                topics=[
                    {"name": name, "num_partitions": 3, "replication_factor": 1}
                    for name in ("orders", "users")
                ],
                timeout=10_000,
            )
            assert all(t.error_code == ErrorCode.none for t in response.topics)
            # Kafka creates __consumer_offsets on the first FindCoordinator: wait for it.
            wait_until(
                lambda: (
                    wire.call(FIND_COORDINATOR, 3, key="g").error_code == ErrorCode.none
                    and wire.call(OFFSET_FETCH, 7, group_id="g", topics=None).error_code
                    == ErrorCode.none
                ),
                60,
                "the group coordinator is available",
                poll_s=0.2,
            )
        yield process
    finally:
        process.stop()


@pytest.fixture
def wire(broker: Broker) -> Iterator[Wire]:
    with Wire(broker.port) as connection:
        yield connection


def join(wire: Wire, group: str, member_id: str = "", version: int = 9, **extra: object):
    fields = {
        "group_id": group,
        "session_timeout": SESSION_MS,
        "rebalance_timeout": 10_000,
        "member_id": member_id,
        "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": subscription("orders")}],
    }
    fields.update(extra)
    return wire.call(JOIN, version, **fields)


def join_stable(wire: Wire, group: str) -> tuple[str, int]:
    first = join(wire, group)
    assert first.error_code == ErrorCode.member_id_required
    response = join(wire, group, first.member_id)
    assert response.error_code == ErrorCode.none
    sync = wire.call(
        SYNC,
        5,
        group_id=group,
        generation_id=response.generation_id,
        member_id=response.member_id,
        protocol_type="consumer",
        protocol_name="range",
        assignments=[{"member_id": response.member_id, "assignment": b"plan"}],
    )
    assert sync.error_code == ErrorCode.none and sync.assignment == b"plan"
    return response.member_id, response.generation_id


@contextplane_only
def test_api_versions_advertise_group_apis(wire: Wire) -> None:
    response = wire.call(API_VERSIONS, 3, client_software_name="t", client_software_version="1")
    ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    assert ranges[FIND_COORDINATOR] == (0, 6)
    assert ranges[JOIN] == (0, 9)
    assert ranges[SYNC] == (0, 5)
    assert ranges[HEARTBEAT] == (0, 4)
    assert ranges[LEAVE] == (0, 5)
    assert ranges[OFFSET_COMMIT] == (2, 10)
    assert ranges[OFFSET_FETCH] == (1, 10)
    assert ranges[LIST] == (0, 5)
    assert ranges[DESCRIBE] == (0, 6)
    assert ranges[DELETE_GROUPS] == (0, 3)
    assert ranges[OFFSET_DELETE] == (0, 0)
    assert ranges[CONSUMER_GROUP_HEARTBEAT] == (0, 1)
    assert ranges[CONSUMER_GROUP_DESCRIBE] == (0, 1)


def _consumer_heartbeat(wire: Wire, version: int, group: str, member_id: str, epoch: int):
    joining = epoch == 0
    return wire.call(
        CONSUMER_GROUP_HEARTBEAT,
        version,
        group_id=group,
        member_id=member_id,
        member_epoch=epoch,
        instance_id=None,
        rack_id=None,
        rebalance_timeout=300000 if joining else -1,
        subscribed_topic_names=["t"] if joining else None,
        server_assignor=None,
        topic_partitions=[] if joining else None,
    )


@contextplane_only
@pytest.mark.parametrize("version", [0, 1])
def test_consumer_group_heartbeat_joins_describes_and_leaves(wire: Wire, version: int) -> None:
    """KIP-848 on the wire: a member joins (v0: the coordinator names it), the group is
    described with its epochs, a classic JoinGroup of another protocol type is refused
    while the group has a member, and after the member leaves the empty group takes
    classic members."""
    group = f"kip848-wire-{version}"
    member = "" if version == 0 else "m-1"
    joined = _consumer_heartbeat(wire, version, group, member, 0)
    assert joined.error_code == ErrorCode.none
    assert joined.member_id and (version == 0 or joined.member_id == member)
    assert joined.member_epoch == 2  # a new group is at 1, the subscription bumps it
    assert joined.heartbeat_interval.total_seconds() == 5
    assert joined.assignment is not None and joined.assignment.topic_partitions == ()
    described = wire.call(
        CONSUMER_GROUP_DESCRIBE, 1, group_ids=[group, "nobody"], include_authorized_operations=False
    )
    mine, unknown = described.groups
    assert (mine.error_code, mine.group_state, mine.group_epoch, mine.assignment_epoch) == (
        ErrorCode.none,
        "Stable",
        2,
        2,
    )
    assert mine.assignor_name == "uniform"
    assert [(m.member_id, m.member_epoch, m.subscribed_topic_names) for m in mine.members] == [
        (joined.member_id, 2, ("t",))
    ]
    assert mine.members[0].member_type == 1
    assert unknown.error_code == ErrorCode.group_id_not_found
    assert unknown.error_message == "Group nobody not found."
    # A classic member may join through Kafka's compatible path, with the consumer
    # embedded protocol only.
    assert join(wire, group).error_code == ErrorCode.member_id_required
    classic = join(wire, group, protocol_type="connect")
    assert classic.error_code == ErrorCode.inconsistent_group_protocol
    stale = _consumer_heartbeat(wire, version, group, joined.member_id, 7)
    assert stale.error_code == ErrorCode.fenced_member_epoch
    left = _consumer_heartbeat(wire, version, group, joined.member_id, -1)
    assert (left.error_code, left.member_epoch) == (ErrorCode.none, -1)
    assert join(wire, group).error_code == ErrorCode.member_id_required  # classic now
    described = wire.call(
        CONSUMER_GROUP_DESCRIBE, 0, group_ids=[group], include_authorized_operations=False
    )
    assert described.groups[0].error_code == ErrorCode.group_id_not_found
    assert described.groups[0].error_message == f"Group {group} is not a consumer group."


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_find_coordinator_single_key(broker: Broker, wire: Wire, version: int) -> None:
    response = wire.call(FIND_COORDINATOR, version, key="g", key_type=0)
    assert response.error_code == ErrorCode.none
    assert (response.host, response.port, response.node_id) == ("127.0.0.1", broker.port, 1)
    if version >= 1 and not REFERENCE:  # Kafka may answer COORDINATOR_NOT_AVAILABLE first
        # This broker coordinates every transactional id.
        txn = wire.call(FIND_COORDINATOR, version, key="t", key_type=1)
        assert txn.error_code == ErrorCode.none
        assert (txn.host, txn.port, txn.node_id) == ("127.0.0.1", broker.port, 1)


@pytest.mark.parametrize("version", [4, 5, 6])
def test_find_coordinator_batched(broker: Broker, wire: Wire, version: int) -> None:
    response = wire.call(FIND_COORDINATOR, version, key_type=0, coordinator_keys=["a", "b"])
    assert [(c.key, c.error_code, c.port) for c in response.coordinators] == [
        ("a", ErrorCode.none, broker.port),
        ("b", ErrorCode.none, broker.port),
    ]
    if not REFERENCE:  # Kafka may answer COORDINATOR_NOT_AVAILABLE while it loads
        txn = wire.call(FIND_COORDINATOR, version, key_type=1, coordinator_keys=["t"])
        assert (txn.coordinators[0].error_code, txn.coordinators[0].port) == (
            ErrorCode.none,
            broker.port,
        )
    share = wire.call(FIND_COORDINATOR, version, key_type=2, coordinator_keys=["s"])
    assert share.coordinators[0].error_code == ErrorCode.invalid_request


def test_join_sync_heartbeat_leave_v9(wire: Wire) -> None:
    member_id, generation = join_stable(wire, "wire-basic")
    ok = wire.call(
        HEARTBEAT, 4, group_id="wire-basic", generation_id=generation, member_id=member_id
    )
    assert ok.error_code == ErrorCode.none
    stale = wire.call(
        HEARTBEAT, 4, group_id="wire-basic", generation_id=generation + 5, member_id=member_id
    )
    assert stale.error_code == ErrorCode.illegal_generation
    leave = wire.call(
        LEAVE,
        5,
        group_id="wire-basic",
        members=[{"member_id": member_id}, {"member_id": "ghost"}],
    )
    assert [m.error_code for m in leave.members] == [
        ErrorCode.none,
        ErrorCode.unknown_member_id,
    ]
    gone = wire.call(
        HEARTBEAT, 4, group_id="wire-basic", generation_id=generation, member_id=member_id
    )
    assert gone.error_code == ErrorCode.unknown_member_id


def test_join_v0_and_leave_v0(wire: Wire) -> None:
    response = join(wire, "wire-v0", version=0)
    assert response.error_code == ErrorCode.none  # no MEMBER_ID_REQUIRED before v4
    assert response.member_id.startswith("wire-test-")
    assert response.leader == response.member_id
    assert len(response.members) == 1
    leave = wire.call(LEAVE, 0, group_id="wire-v0", member_id=response.member_id)
    assert leave.error_code == ErrorCode.none
    again = wire.call(LEAVE, 0, group_id="wire-v0", member_id=response.member_id)
    assert again.error_code == ErrorCode.unknown_member_id


def test_join_errors(wire: Wire) -> None:
    assert join(wire, "wire-err", session_timeout=1000).error_code == (
        ErrorCode.invalid_session_timeout
    )
    assert join(wire, "").error_code == ErrorCode.invalid_group_id
    assert join(wire, "wire-err", "bogus").error_code == ErrorCode.unknown_member_id
    assert join(wire, "wire-err", protocols=[]).error_code == (
        ErrorCode.inconsistent_group_protocol
    )


def test_sync_v5_requires_protocol_fields(wire: Wire) -> None:
    member_id, generation = join_stable(wire, "wire-sync5")
    response = wire.call(
        SYNC, 5, group_id="wire-sync5", generation_id=generation, member_id=member_id
    )
    assert response.error_code == ErrorCode.inconsistent_group_protocol


def test_parked_join_does_not_block_the_connection_order(broker: Broker) -> None:
    """Two members on two connections; the second member's join completes the first's."""
    with Wire(broker.port) as first, Wire(broker.port) as second:
        a, generation = join_stable(first, "wire-park")
        pending = join(second, "wire-park")
        assert pending.error_code == ErrorCode.member_id_required
        second.send(
            JOIN,
            9,
            group_id="wire-park",
            session_timeout=SESSION_MS,
            rebalance_timeout=10_000,
            member_id=pending.member_id,
            protocol_type="consumer",
            protocols=[{"name": "range", "metadata": subscription("orders")}],
        )
        # The parked join has started a rebalance once the broker has read it.
        code = wait_until(
            lambda: (
                first.call(
                    HEARTBEAT, 4, group_id="wire-park", generation_id=generation, member_id=a
                ).error_code
            ),
            10,
            "the parked join starts a rebalance",
        )
        assert code == ErrorCode.rebalance_in_progress
        rejoin = join(first, "wire-park", a)
        parked = second.receive()
        assert rejoin.generation_id == parked.generation_id == generation + 1
        assert {m.member_id for m in rejoin.members} == {a, parked.member_id}
        assert parked.members == ()


def test_static_member_replacement_over_the_wire(broker: Broker) -> None:
    with Wire(broker.port) as wire:
        first = join(wire, "wire-static", group_instance_id="pod-0")
        assert first.error_code == ErrorCode.none
        old_id, generation = first.member_id, first.generation_id
        wire.call(
            SYNC,
            5,
            group_id="wire-static",
            generation_id=generation,
            member_id=old_id,
            group_instance_id="pod-0",
            protocol_type="consumer",
            protocol_name="range",
            assignments=[{"member_id": old_id, "assignment": b"p0"}],
        )
        again = join(wire, "wire-static", group_instance_id="pod-0")
        assert again.member_id != old_id and again.generation_id == generation
        assert again.skip_assignment is True  # it is the leader; v9 lets it skip
        fenced = wire.call(
            HEARTBEAT,
            4,
            group_id="wire-static",
            generation_id=generation,
            member_id=old_id,
            group_instance_id="pod-0",
        )
        assert fenced.error_code == ErrorCode.fenced_instance_id
        leave = wire.call(
            LEAVE,
            5,
            group_id="wire-static",
            members=[{"member_id": "", "group_instance_id": "pod-0"}],
        )
        assert leave.members[0].error_code == ErrorCode.none


@pytest.mark.parametrize("version", [2, 5, 7, 8, 9])
def test_offset_commit_and_fetch_versions(wire: Wire, version: int) -> None:
    group = f"wire-offsets-v{version}"
    partition = {"partition_index": 1, "committed_offset": 42, "committed_metadata": "m"}
    if version >= 6:
        partition["committed_leader_epoch"] = 3
    commit = wire.call(
        OFFSET_COMMIT,
        version,
        group_id=group,
        generation_id_or_member_epoch=-1,
        member_id="",
        topics=[
            {"name": "orders", "partitions": [partition]},
            {
                "name": "missing-topic",
                "partitions": [{"partition_index": 0, "committed_offset": 1}],
            },
            {"name": "users", "partitions": [{"partition_index": 9, "committed_offset": 1}]},
        ],
    )
    codes = {(t.name, p.partition_index): p.error_code for t in commit.topics for p in t.partitions}
    assert codes == {
        ("orders", 1): ErrorCode.none,
        ("missing-topic", 0): ErrorCode.unknown_topic_or_partition,
        ("users", 9): ErrorCode.unknown_topic_or_partition,
    }
    fetch_version = min(version, 7)
    fetch = wire.call(
        OFFSET_FETCH,
        fetch_version,
        group_id=group,
        topics=[{"name": "orders", "partition_indexes": [0, 1]}],
    )
    found = {p.partition_index: p for p in fetch.topics[0].partitions}
    assert found[0].committed_offset == -1
    assert found[1].committed_offset == 42 and found[1].metadata == "m"
    if version >= 6:
        assert found[1].committed_leader_epoch == 3


def test_offset_fetch_v8_batched_and_all_topics(wire: Wire) -> None:
    wire.call(
        OFFSET_COMMIT,
        9,
        group_id="wire-batch-a",
        generation_id_or_member_epoch=-1,
        member_id="",
        topics=[{"name": "users", "partitions": [{"partition_index": 2, "committed_offset": 7}]}],
    )
    response = wire.call(
        OFFSET_FETCH,
        9,
        groups=[
            {"group_id": "wire-batch-a", "topics": None},
            {
                "group_id": "wire-batch-none",
                "topics": [{"name": "users", "partition_indexes": [2]}],
            },
        ],
        require_stable=True,
    )
    a, none = response.groups
    assert [
        (t.name, [(p.partition_index, p.committed_offset) for p in t.partitions]) for t in a.topics
    ] == [("users", [(2, 7)])]
    assert none.topics[0].partitions[0].committed_offset == -1
    assert none.error_code == ErrorCode.none


def test_member_commits_are_checked(wire: Wire) -> None:
    member_id, generation = join_stable(wire, "wire-member-commit")

    def commit(generation_id: int, member: str, version: int = 9) -> ErrorCode:
        response = wire.call(
            OFFSET_COMMIT,
            version,
            group_id="wire-member-commit",
            generation_id_or_member_epoch=generation_id,
            member_id=member,
            topics=[
                {"name": "orders", "partitions": [{"partition_index": 0, "committed_offset": 5}]}
            ],
        )
        return response.topics[0].partitions[0].error_code

    assert commit(generation, member_id) == ErrorCode.none
    assert commit(generation + 1, member_id) == ErrorCode.illegal_generation
    assert commit(generation, "ghost") == ErrorCode.unknown_member_id
    assert commit(-1, "") == ErrorCode.unknown_member_id  # a non-member on an active group
    wire.call(LEAVE, 5, group_id="wire-member-commit", members=[{"member_id": member_id}])
    assert commit(-1, "") == ErrorCode.none  # Empty now: admin commits are allowed


def test_list_describe_delete(wire: Wire) -> None:
    member_id, _ = join_stable(wire, "wire-admin-live")
    wire.call(
        OFFSET_COMMIT,
        9,
        group_id="wire-admin-empty",
        generation_id_or_member_epoch=-1,
        member_id="",
        topics=[{"name": "orders", "partitions": [{"partition_index": 0, "committed_offset": 1}]}],
    )
    listed = {g.group_id: g for g in wire.call(LIST, 5).groups}
    assert listed["wire-admin-live"].group_state == "Stable"
    assert listed["wire-admin-live"].protocol_type == "consumer"
    assert listed["wire-admin-empty"].group_state == "Empty"
    assert listed["wire-admin-empty"].group_type == "classic"
    stable = {g.group_id for g in wire.call(LIST, 4, states_filter=["Stable"]).groups}
    assert "wire-admin-live" in stable and "wire-admin-empty" not in stable
    assert {g.group_id for g in wire.call(LIST, 0).groups} >= {
        "wire-admin-live",
        "wire-admin-empty",
    }

    described = wire.call(
        DESCRIBE,
        5,
        groups=["wire-admin-live", "wire-admin-empty", "wire-admin-nope"],
        include_authorized_operations=True,
    ).groups
    live, empty, nope = described
    assert live.group_state == "Stable" and live.protocol_data == "range"
    assert [m.member_id for m in live.members] == [member_id]
    assert live.members[0].member_assignment == b"plan"
    assert live.members[0].client_id == "wire-test"
    assert live.authorized_operations > 0
    assert empty.group_state == "Empty" and empty.members == ()
    assert nope.group_state == "Dead" and nope.error_code == ErrorCode.none
    old = wire.call(DESCRIBE, 0, groups=["wire-admin-live"]).groups[0]
    assert old.group_state == "Stable"

    deleted = wire.call(
        DELETE_GROUPS, 2, groups_names=["wire-admin-live", "wire-admin-empty", "wire-admin-nope"]
    )
    assert {r.group_id: r.error_code for r in deleted.results} == {
        "wire-admin-live": ErrorCode.non_empty_group,
        "wire-admin-empty": ErrorCode.none,
        "wire-admin-nope": ErrorCode.group_id_not_found,
    }
    fetch = wire.call(OFFSET_FETCH, 9, groups=[{"group_id": "wire-admin-empty", "topics": None}])
    assert fetch.groups[0].topics == ()
    assert "wire-admin-empty" not in {g.group_id for g in wire.call(LIST, 5).groups}


def test_offset_delete(wire: Wire) -> None:
    member_id, generation = join_stable(wire, "wire-odel")  # subscribed to "orders"
    wire.call(
        OFFSET_COMMIT,
        9,
        group_id="wire-odel",
        generation_id_or_member_epoch=generation,
        member_id=member_id,
        topics=[
            {"name": "orders", "partitions": [{"partition_index": 0, "committed_offset": 3}]},
            {"name": "users", "partitions": [{"partition_index": 0, "committed_offset": 4}]},
        ],
    )
    response = wire.call(
        OFFSET_DELETE,
        0,
        group_id="wire-odel",
        topics=[
            {"name": "orders", "partitions": [{"partition_index": 0}]},
            {"name": "users", "partitions": [{"partition_index": 0}]},
        ],
    )
    assert response.error_code == ErrorCode.none
    codes = {t.name: t.partitions[0].error_code for t in response.topics}
    assert codes == {"orders": ErrorCode.group_subscribed_to_topic, "users": ErrorCode.none}
    fetch = wire.call(OFFSET_FETCH, 9, groups=[{"group_id": "wire-odel", "topics": None}])
    assert [t.name for t in fetch.groups[0].topics] == ["orders"]
    missing = wire.call(OFFSET_DELETE, 0, group_id="wire-odel-nope", topics=[])
    assert missing.error_code == ErrorCode.group_id_not_found


def test_session_expiry_over_the_wire(broker: Broker) -> None:
    """A member that stops heartbeating is removed after its session timeout."""
    with Wire(broker.port) as a_wire, Wire(broker.port) as b_wire:
        a, generation = join_stable(a_wire, "wire-expiry")
        pending = join(b_wire, "wire-expiry")
        b_wire.send(
            JOIN,
            9,
            group_id="wire-expiry",
            session_timeout=SESSION_MS,
            rebalance_timeout=10_000,
            member_id=pending.member_id,
            protocol_type="consumer",
            protocols=[{"name": "range", "metadata": subscription("orders")}],
        )
        joined_a = join(a_wire, "wire-expiry", a)
        joined_b = b_wire.receive()
        assert joined_a.generation_id == joined_b.generation_id == generation + 1
        for connection, member in ((a_wire, a), (b_wire, joined_b.member_id)):
            connection.call(
                SYNC,
                5,
                group_id="wire-expiry",
                generation_id=generation + 1,
                member_id=member,
                protocol_type="consumer",
                protocol_name="range",
                assignments=[],
            )
        # b goes silent; a keeps heartbeating (its session must stay alive) until it is
        # told to rebalance.
        code = wait_until(
            lambda: (
                a_wire.call(
                    HEARTBEAT, 4, group_id="wire-expiry", generation_id=generation + 1, member_id=a
                ).error_code
            ),
            SESSION_MS / 1000 + 5,
            "b's session expires and a is told to rebalance",
            poll_s=0.5,
        )
        assert code == ErrorCode.rebalance_in_progress
        rejoined = join(a_wire, "wire-expiry", a)
        assert rejoined.generation_id == generation + 2
        assert [m.member_id for m in rejoined.members] == [a]


@contextplane_only
def test_restart_keeps_offsets_and_the_group(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "restart").start()
    try:
        with Wire(broker.port) as wire:
            wire.call(
                CREATE_TOPICS,
                7,
                topics=[{"name": "events", "num_partitions": 2, "replication_factor": 1}],
                timeout=10_000,
            )
            member_id, generation = join_stable(wire, "wire-restart")
            commit = wire.call(
                OFFSET_COMMIT,
                9,
                group_id="wire-restart",
                generation_id_or_member_epoch=generation,
                member_id=member_id,
                topics=[
                    {
                        "name": "events",
                        "partitions": [
                            {
                                "partition_index": 0,
                                "committed_offset": 11,
                                "committed_metadata": "x",
                            },
                            {"partition_index": 1, "committed_offset": 22},
                        ],
                    }
                ],
            )
            assert all(p.error_code == ErrorCode.none for p in commit.topics[0].partitions)
        broker.stop()
        broker.start()
        with Wire(broker.port) as wire:
            fetch = wire.call(
                OFFSET_FETCH, 7, group_id="wire-restart", topics=None, require_stable=True
            )
            assert {
                (p.partition_index, p.committed_offset, p.metadata)
                for p in fetch.topics[0].partitions
            } == {
                (0, 11, "x"),
                (1, 22, ""),
            }
            # The group comes back as its last generation left it (Kafka loads its
            # GroupMetadataValue): Stable, the member heartbeating on without a rejoin.
            listed = {g.group_id: g.group_state for g in wire.call(LIST, 5).groups}
            assert listed == {"wire-restart": "Stable"}
            described = wire.call(
                DESCRIBE, 5, groups=["wire-restart"], include_authorized_operations=False
            ).groups[0]
            assert (described.group_state, described.protocol_data) == ("Stable", "range")
            assert [(m.member_id, m.member_assignment) for m in described.members] == [
                (member_id, b"plan")
            ]
            hb = wire.call(
                HEARTBEAT, 4, group_id="wire-restart", generation_id=generation, member_id=member_id
            )
            assert hb.error_code == ErrorCode.none
            leave = wire.call(LEAVE, 5, group_id="wire-restart", members=[{"member_id": member_id}])
            assert leave.members[0].error_code == ErrorCode.none
        broker.stop()
        broker.start()
        with Wire(broker.port) as wire:
            # Emptied, the group is stored Empty: the member that left stays gone.
            listed = {g.group_id: g.group_state for g in wire.call(LIST, 5).groups}
            assert listed == {"wire-restart": "Empty"}
            hb = wire.call(
                HEARTBEAT, 4, group_id="wire-restart", generation_id=generation, member_id=member_id
            )
            assert hb.error_code == ErrorCode.unknown_member_id
            # The next generation follows the stored one (the emptied generation + 1).
            assert join_stable(wire, "wire-restart")[1] == generation + 2
    finally:
        broker.stop()


def test_metadata_finds_a_topic_by_id_whatever_its_name_field(wire: Wire) -> None:
    """A consumer given partitions by topic id (ConsumerGroupHeartbeat) asks Metadata by
    id; the Java client leaves the name at "" then, and the id decides."""
    metadata = 3
    by_name = wire.call(metadata, 12, topics=[{"name": "orders", "topic_id": None}])
    (orders,) = by_name.topics
    for name in (None, ""):
        by_id = wire.call(metadata, 12, topics=[{"name": name, "topic_id": orders.topic_id}])
        (found,) = by_id.topics
        assert (found.error_code, found.name, found.topic_id) == (
            ErrorCode.none,
            "orders",
            orders.topic_id,
        )
        assert len(found.partitions) == 3


DESCRIBE_CONFIGS, INCREMENTAL_ALTER_CONFIGS, GROUP_RESOURCE = 32, 44, 32
GROUP_CONFIG_NAMES = ["consumer.heartbeat.interval.ms", "consumer.session.timeout.ms"]


def _group_configs(
    wire: Wire, group: str, names: list[str] = GROUP_CONFIG_NAMES
) -> dict[str, tuple[str, int, list[tuple[str, str, int]]]]:
    response = wire.call(
        DESCRIBE_CONFIGS,
        4,
        resources=[
            {
                "resource_type": GROUP_RESOURCE,
                "resource_name": group,
                "configuration_keys": names,
            }
        ],
        include_synonyms=True,
        include_documentation=False,
    )
    (result,) = response.results
    assert result.error_code == ErrorCode.none, result
    assert all(c.config_type == 3 and not c.read_only for c in result.configs)
    return {
        c.name: (c.value, c.config_source, [(s.name, s.value, s.source) for s in c.synonyms])
        for c in result.configs
    }


def _alter_group(wire: Wire, group: str, *changes: tuple[str, int, str | None]) -> tuple:
    response = wire.call(
        INCREMENTAL_ALTER_CONFIGS,
        1,
        resources=[
            {
                "resource_type": GROUP_RESOURCE,
                "resource_name": group,
                "configs": [
                    {"name": n, "config_operation": op, "value": v} for n, op, v in changes
                ],
            }
        ],
        validate_only=False,
    )
    (result,) = response.responses
    return result.error_code, result.error_message


def test_group_configs_as_kafka_describes_and_alters_them(wire: Wire) -> None:
    """GROUP config resources (Kafka 4.x): a group's configs exist before the group does;
    an override is source GROUP_CONFIG (8) with the broker setting as DEFAULT_CONFIG
    synonym; values are checked against the broker's bounds with Kafka's messages; the
    heartbeat interval a member is told is the group's."""
    group = "configured-group"
    assert _group_configs(wire, group) == {
        "consumer.heartbeat.interval.ms": (
            "5000", 5, [("group.consumer.heartbeat.interval.ms", "5000", 5)]
        ),
        "consumer.session.timeout.ms": (
            "45000", 5, [("group.consumer.session.timeout.ms", "45000", 5)]
        ),
    }  # fmt: skip
    set_both = (
        ("consumer.session.timeout.ms", 0, "50000"),
        ("consumer.heartbeat.interval.ms", 0, "6000"),
    )
    assert _alter_group(wire, group, *set_both) == (ErrorCode.none, None)
    assert _group_configs(wire, group) == {
        "consumer.heartbeat.interval.ms": ("6000", 8, [
            ("consumer.heartbeat.interval.ms", "6000", 8),
            ("group.consumer.heartbeat.interval.ms", "5000", 5),
        ]),
        "consumer.session.timeout.ms": ("50000", 8, [
            ("consumer.session.timeout.ms", "50000", 8),
            ("group.consumer.session.timeout.ms", "45000", 5),
        ]),
    }  # fmt: skip
    refusals = {
        ("consumer.session.timeout.ms", 0, "1000"): (
            "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive."
        ),
        ("consumer.heartbeat.interval.ms", 0, "60000"): (
            "consumer.heartbeat.interval.ms must be in the range 5000 to 15000 inclusive."
        ),
        ("consumer.session.timeout.ms", 0, "abc"): (
            "Invalid value abc for configuration consumer.session.timeout.ms: Not a number "
            "of type INT"
        ),
        ("bogus.x", 0, "1"): "Unknown group config name: bogus.x",
        ("consumer.assignment.interval.ms", 0, "15001"): (
            "consumer.assignment.interval.ms must be in the range 0 to 15000 inclusive."
        ),
        ("consumer.assignor.offload.enable", 0, "maybe"): (
            "Invalid value maybe for configuration consumer.assignor.offload.enable: Expected "
            "value to be either true or false"
        ),
        ("streams.session.timeout.ms", 0, "50000"): (
            "Unknown group config name: streams.session.timeout.ms"
        ),
        ("consumer.session.timeout.ms", 2, "1"): (
            "Can't APPEND to key consumer.session.timeout.ms because its type is not LIST."
        ),
    }
    for change, message in refusals.items():
        assert _alter_group(wire, group, change) == (ErrorCode.invalid_config, message)
    assert _group_configs(wire, group)["consumer.session.timeout.ms"][0] == "50000"
    joined = _consumer_heartbeat(wire, 1, group, "configured-member", 0)
    assert joined.error_code == ErrorCode.none
    assert joined.heartbeat_interval.total_seconds() == 6
    left = _consumer_heartbeat(wire, 1, group, "configured-member", -1)
    assert left.error_code == ErrorCode.none
    deleted = _alter_group(
        wire,
        group,
        ("consumer.session.timeout.ms", 1, None),
        ("consumer.heartbeat.interval.ms", 1, None),
    )
    assert deleted == (ErrorCode.none, None)
    assert {n: v[:2] for n, v in _group_configs(wire, group).items()} == {
        "consumer.heartbeat.interval.ms": ("5000", 5),
        "consumer.session.timeout.ms": ("45000", 5),
    }
    interval = ("consumer.assignment.interval.ms", 0, " 0 ")
    assert _alter_group(wire, group, interval) == (ErrorCode.none, None)
    assert _group_configs(wire, group, [interval[0]]) == {
        interval[0]: ("0", 8, [
            (interval[0], "0", 8),
            ("group.consumer.assignment.interval.ms", "1000", 5),
        ]),
    }  # fmt: skip


def test_a_classic_group_with_a_member_upgrades_online(wire: Wire) -> None:
    """Kafka 4.4's online upgrade on the wire: a ConsumerGroupHeartbeat joining a classic
    group of another protocol type is refused with Kafka's text; one joining a consumer
    protocol group converts it at the classic generation; the classic member is told to
    rejoin, rejoins without a leader at the new epoch and syncs its partitions; when the
    consumer-protocol member leaves the group is classic again, rebalancing."""
    connect = join(wire, "upgrade-connect", protocol_type="connect")
    connect = join(wire, "upgrade-connect", connect.member_id, protocol_type="connect")
    assert connect.error_code == ErrorCode.none
    refused = _consumer_heartbeat(wire, 1, "upgrade-connect", "cm-0", 0)
    assert (refused.error_code, refused.error_message) == (
        ErrorCode.group_id_not_found,
        "Cannot upgrade classic group upgrade-connect to consumer group because the group "
        "does not use the consumer embedded protocol.",
    )

    group = "upgrade-wire"
    first = join(wire, group)
    joined = join(wire, group, first.member_id)
    member, generation = joined.member_id, joined.generation_id
    plan = encode_assignment({("orders", 0), ("orders", 1), ("orders", 2)}, 0)
    synced = wire.call(
        SYNC, 5, group_id=group, generation_id=generation, member_id=member,
        protocol_type="consumer", protocol_name="range",
        assignments=[{"member_id": member, "assignment": plan}],
    )  # fmt: skip
    assert synced.error_code == ErrorCode.none
    upgraded = _consumer_heartbeat(wire, 1, group, "cm-1", 0)
    assert (upgraded.error_code, upgraded.member_epoch) == (ErrorCode.none, generation + 1)
    beat = wire.call(HEARTBEAT, 4, group_id=group, generation_id=generation, member_id=member)
    assert beat.error_code == ErrorCode.rebalance_in_progress
    rejoined = join(wire, group, member)
    assert (rejoined.error_code, rejoined.generation_id, rejoined.leader, rejoined.members) == (
        ErrorCode.none,
        generation + 1,
        "",
        (),
    )
    assert (rejoined.protocol_type, rejoined.protocol_name) == ("consumer", "range")
    held = wire.call(
        SYNC, 5, group_id=group, generation_id=rejoined.generation_id, member_id=member,
        protocol_type="consumer", protocol_name="range", assignments=[],
    )  # fmt: skip
    assert held.error_code == ErrorCode.none
    assert decode_assignment(held.assignment).partitions <= {("orders", p) for p in range(3)}
    left = _consumer_heartbeat(wire, 1, group, "cm-1", -1)
    assert left.error_code == ErrorCode.none
    described = wire.call(DESCRIBE, 5, groups=[group], include_authorized_operations=False)
    (classic,) = described.groups
    assert (classic.group_state, classic.protocol_type) == ("PreparingRebalance", "consumer")


@pytest.mark.parametrize(
    ("metadata", "user_data", "reason"),
    [
        (b"\x00\x00\x00", None, "the embedded consumer protocol is malformed."),
        (
            None,
            b"custom",
            "an unsupported custom assignor is in use. Please refer to the documentation or "
            "switch to a default assignor before re-attempting the upgrade.",
        ),
    ],
)
def test_an_upgrade_kafka_refuses_on_the_wire(
    wire: Wire, metadata: bytes | None, user_data: bytes | None, reason: str
) -> None:
    group = f"upgrade-refused-{len(reason)}"
    protocols = [{"name": "range", "metadata": metadata or subscription("orders")}]
    first = join(wire, group, protocols=protocols)
    joined = join(wire, group, first.member_id, protocols=protocols)
    plan = encode_assignment({("orders", 0)}, 0, user_data)
    synced = wire.call(
        SYNC, 5, group_id=group, generation_id=joined.generation_id, member_id=joined.member_id,
        protocol_type="consumer", protocol_name="range",
        assignments=[{"member_id": joined.member_id, "assignment": plan}],
    )  # fmt: skip
    assert synced.error_code == ErrorCode.none
    refused = _consumer_heartbeat(wire, 1, group, "cm-1", 0)
    assert (refused.error_code, refused.error_message) == (
        ErrorCode.group_id_not_found,
        f"Cannot upgrade classic group {group} to consumer group because {reason}",
    )
    # Still the classic group, at its generation.
    beat = wire.call(
        HEARTBEAT, 4, group_id=group, generation_id=joined.generation_id,
        member_id=joined.member_id,
    )  # fmt: skip
    assert beat.error_code == ErrorCode.none
