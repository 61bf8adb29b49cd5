"""Share groups (KIP-932) over the wire with a raw client against a broker: membership
(ShareGroupHeartbeat, ShareGroupDescribe, ListGroups, FindCoordinator key type 2) and
the queue (ShareFetch, ShareAcknowledge, share sessions), with Kafka's errors."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from kio.schema.errors import ErrorCode

from tests.groups.support import Broker, Wire
from tests.support.share_requests import acquired, share_fetch

FIND_COORDINATOR, LIST_GROUPS, CREATE_TOPICS, METADATA, DELETE_GROUPS = 10, 16, 19, 3, 42
SHARE_HEARTBEAT, SHARE_DESCRIBE, SHARE_FETCH, SHARE_ACK = 76, 77, 78, 79
CONSUMER_GROUP_DESCRIBE = 69
ACCEPT, RELEASE, REJECT, RENEW = 1, 2, 3, 4
# Each test's own topic (a share group starts at the end of what is there).
TOPICS = {
    "jobs": 3,
    "tasks": 1,
    "leaving": 1,
    "renewed": 1,
    "dropped": 1,
    "backlog": 1,
    "removed": 1,
    "trimmed": 1,
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    # Targets at every change (no assignment interval): the epochs below are Kafka's
    # when its interval has passed.
    process = Broker(
        tmp_path_factory.mktemp("share") / "broker",
        settings={"group.share.assignment.interval.ms": "0"},
    ).start()
    try:
        with Wire(process.port) as wire:
            response = wire.call(
                CREATE_TOPICS,
                7,
                topics=[
                    {"name": name, "num_partitions": count, "replication_factor": 1}
                    for name, count in TOPICS.items()
                ],
                timeout=10_000,
            )
            assert all(t.error_code == ErrorCode.none for t in response.topics)
        yield process
    finally:
        process.stop()


@pytest.fixture
def wire(broker: Broker) -> Iterator[Wire]:
    with Wire(broker.port) as connection:
        yield connection


def _topic_ids(wire: Wire) -> dict[str, uuid.UUID]:
    response = wire.call(METADATA, 12, topics=None, allow_auto_topic_creation=False)
    return {t.name: t.topic_id for t in response.topics}


def _beat(wire: Wire, group: str, member: str, epoch: int, topics: Any = None) -> Any:
    return wire.call(
        SHARE_HEARTBEAT,
        1,
        group_id=group,
        member_id=member,
        member_epoch=epoch,
        subscribed_topic_names=topics,
    )


def _partitions(response: Any) -> set[int]:
    return {p for t in response.assignment.topic_partitions for p in t.partitions}


def test_members_share_the_partitions_and_see_kafkas_errors(wire: Wire) -> None:
    # Kafka 4.4: from epoch 1, a's join (2) is dealt nothing, the share partitions being
    # initialized after it; its next heartbeat is dealt them at a new epoch.
    a = _beat(wire, "work", "member-a", 0, ["jobs"])
    assert a.error_code == ErrorCode.none and a.member_epoch == 2
    assert _partitions(a) == set()
    a = _beat(wire, "work", "member-a", 2)
    assert (a.member_epoch, _partitions(a)) == (3, {0, 1, 2})
    b = _beat(wire, "work", "member-b", 0, ["jobs"])
    assert b.member_epoch == 4
    a = _beat(wire, "work", "member-a", 3)
    assert a.member_epoch == 4
    # The simple assignor: every partition has a member and every member partitions.
    assert _partitions(a) | _partitions(b) == {0, 1, 2}
    assert _partitions(a) and _partitions(b) and not _partitions(a) & _partitions(b)
    assert _beat(wire, "work", "member-a", 4).assignment is None  # steady: nothing sent

    described = wire.call(
        SHARE_DESCRIBE, 1, group_ids=["work", "nope"], include_authorized_operations=False
    )
    work, nope = described.groups
    assert (work.group_state, work.group_epoch, work.assignor_name) == ("Stable", 4, "simple")
    assert {m.member_id for m in work.members} == {"member-a", "member-b"}
    assert nope.error_code == ErrorCode.group_id_not_found
    assert nope.error_message == "Group nope not found."
    # kafka-consumer-groups.sh --describe of a share group: Kafka 4.4's answer.
    as_consumer = wire.call(
        CONSUMER_GROUP_DESCRIBE, 0, group_ids=["work"], include_authorized_operations=False
    )
    assert (as_consumer.groups[0].error_code, as_consumer.groups[0].error_message) == (
        ErrorCode.group_id_not_found,
        "Group work is not a consumer group.",
    )

    listed = wire.call(LIST_GROUPS, 5, states_filter=[], types_filter=["share"])
    assert [(g.group_id, g.group_type, g.group_state) for g in listed.groups] == [
        ("work", "share", "Stable")
    ]
    # Key type 2 (the share-partition state's coordinator): "group:topic id:partition".
    found = wire.call(
        FIND_COORDINATOR, 6, key_type=2, coordinator_keys=["work:AAAAAAAAAAAAAAAAAAAAAA:0", "s"]
    )
    assert [c.error_code for c in found.coordinators] == [
        ErrorCode.none,
        ErrorCode.invalid_request,
    ]

    assert _beat(wire, "work", "", 0, ["jobs"]).error_code == ErrorCode.invalid_request
    assert _beat(wire, "work", "member-c", 0, None).error_message == (
        "SubscribedTopicNames must be set in first request."
    )
    assert _beat(wire, "work", "ghost", 3).error_code == ErrorCode.unknown_member_id
    assert _beat(wire, "work", "member-a", 7).error_code == ErrorCode.fenced_member_epoch
    left = _beat(wire, "work", "member-b", -1)
    assert (left.error_code, left.member_epoch) == (ErrorCode.none, -1)
    a = _beat(wire, "work", "member-a", 4)
    assert (a.member_epoch, _partitions(a)) == (5, {0, 1, 2})


def _fetch(
    wire: Wire,
    group: str,
    member: str,
    epoch: int,
    topics: Any,
    wait_ms: int = 0,
    max_records: int = 100,
) -> Any:
    return share_fetch(wire, group, member, epoch, topics, wait_ms, max_records)


def _ack(wire: Wire, group: str, member: str, epoch: int, topics: Any) -> Any:
    return wire.call(
        SHARE_ACK, 1, group_id=group, member_id=member, share_session_epoch=epoch, topics=topics
    )


def _one(topic_id: uuid.UUID, *batches: tuple[int, int, int]) -> list[dict[str, Any]]:
    return [
        {
            "topic_id": topic_id,
            "partitions": [
                {
                    "partition_index": 0,
                    "acknowledgement_batches": [
                        {"first_offset": f, "last_offset": last, "acknowledge_types": [kind]}
                        for f, last, kind in batches
                    ],
                }
            ],
        }
    ]


_acquired = acquired


def _produce(broker: Broker, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for index in range(count):
        producer.produce(topic, value=f"job-{index}".encode(), partition=0)
    assert producer.flush(10) == 0


def test_records_are_acquired_once_and_acknowledged_or_redelivered(
    broker: Broker, wire: Wire
) -> None:
    tasks = _topic_ids(wire)["tasks"]
    for member in ("a", "b"):
        assert _beat(wire, "queue", member, 0, ["tasks"]).error_code == ErrorCode.none
    # share.auto.offset.reset=latest: the first fetch places the partition at the end.
    first = _fetch(wire, "queue", "a", 0, _one(tasks))
    assert first.error_code == ErrorCode.none and _acquired(first) == []
    assert first.acquisition_lock_timeout.total_seconds() == 30
    assert _fetch(wire, "queue", "b", 0, _one(tasks)).error_code == ErrorCode.none
    _produce(broker, "tasks", 5)

    got = _fetch(wire, "queue", "a", 1, [], wait_ms=5_000)
    assert _acquired(got) == [(0, 4, 1)]
    assert got.responses[0].partitions[0].records  # the batches the ranges point into
    assert _acquired(_fetch(wire, "queue", "b", 1, [])) == []  # all held by a

    acked = _ack(
        wire, "queue", "a", 2, _one(tasks, (0, 1, ACCEPT), (2, 2, RELEASE), (3, 3, REJECT))
    )
    assert acked.error_code == ErrorCode.none
    assert acked.responses[0].partitions[0].error_code == ErrorCode.none
    # b gets the released record, delivered a second time; 4 is still a's.
    assert _acquired(_fetch(wire, "queue", "b", 2, [])) == [(2, 2, 2)]
    # Acknowledging what another member holds, or what is done, is refused.
    refused = _ack(wire, "queue", "a", 3, _one(tasks, (2, 2, ACCEPT)))
    assert refused.responses[0].partitions[0].error_code == ErrorCode.invalid_record_state
    # Piggybacked on a fetch, with its own error field.
    piggy = _fetch(wire, "queue", "b", 3, _one(tasks, (2, 2, ACCEPT)))
    assert piggy.responses[0].partitions[0].acknowledge_error_code == ErrorCode.none

    # Share sessions: the wrong epoch, an unknown session, acknowledgements in a new one.
    assert _fetch(wire, "queue", "a", 9, []).error_code == ErrorCode.invalid_share_session_epoch
    assert _fetch(wire, "queue", "x", 1, []).error_code == ErrorCode.share_session_not_found
    assert _ack(wire, "queue", "a", 0, []).error_code == ErrorCode.invalid_share_session_epoch
    opened = _fetch(wire, "queue", "c", 0, _one(tasks, (4, 4, ACCEPT)))
    assert opened.error_code == ErrorCode.invalid_request
    # A partition the topic does not have is refused and never joins the session.
    bogus = [
        {
            "topic_id": tasks,
            "partitions": [{"partition_index": 10**9, "acknowledgement_batches": []}],
        }
    ]
    opened = _fetch(wire, "queue", "c", 0, bogus)
    assert opened.responses[0].partitions[0].error_code == ErrorCode.unknown_topic_or_partition
    # Closing a's session (epoch -1) gives back what it held: b gets offset 4 now.
    assert _ack(wire, "queue", "a", -1, []).error_code == ErrorCode.none
    assert _acquired(_fetch(wire, "queue", "b", 4, [])) == [(4, 4, 2)]


def test_a_leave_keeps_the_share_session_and_its_records(broker: Broker, wire: Wire) -> None:
    """As in Kafka 4.4 (`test_share_leave_vs_kafka.py` runs this against both): a leave
    closes no share session, so the member's records stay acquired and its session keeps
    working; closing the session (epoch -1) gives them back at once."""
    leaving = _topic_ids(wire)["leaving"]
    with Wire(broker.port) as other:
        for member, connection in (("a", other), ("b", wire)):
            assert _beat(wire, "leavers", member, 0, ["leaving"]).error_code == ErrorCode.none
            assert _fetch(connection, "leavers", member, 0, _one(leaving)).error_code == 0
        _produce(broker, "leaving", 2)
        assert _acquired(_fetch(other, "leavers", "a", 1, [], wait_ms=5_000)) == [(0, 1, 1)]
        assert _beat(wire, "leavers", "a", -1).member_epoch == -1
        # Still a's: b's fetch waits its whole 500 ms for nothing.
        assert _acquired(_fetch(wire, "leavers", "b", 1, [], wait_ms=500)) == []
        accepted = _ack(other, "leavers", "a", 2, _one(leaving, (0, 0, ACCEPT)))
        assert accepted.responses[0].partitions[0].error_code == ErrorCode.none
        assert _ack(other, "leavers", "a", -1, []).error_code == ErrorCode.none
        assert _acquired(_fetch(wire, "leavers", "b", 2, [], wait_ms=5_000)) == [(1, 1, 2)]


def test_renew_is_v2s(broker: Broker, wire: Wire) -> None:
    """ShareAcknowledge v2 (KIP-1222) renews a lock; v1 refuses the type."""
    renewed = _topic_ids(wire)["renewed"]
    assert _beat(wire, "renewers", "a", 0, ["renewed"]).error_code == ErrorCode.none
    assert _fetch(wire, "renewers", "a", 0, _one(renewed)).error_code == ErrorCode.none
    _produce(broker, "renewed", 1)
    assert _acquired(_fetch(wire, "renewers", "a", 1, [], wait_ms=5_000)) == [(0, 0, 1)]
    v1 = _ack(wire, "renewers", "a", 2, _one(renewed, (0, 0, RENEW)))
    assert v1.responses[0].partitions[0].error_code == ErrorCode.invalid_request
    v2 = wire.call(
        SHARE_ACK,
        2,
        group_id="renewers",
        member_id="a",
        share_session_epoch=3,
        is_renew_ack=True,
        topics=_one(renewed, (0, 0, RENEW)),
    )
    assert v2.responses[0].partitions[0].error_code == ErrorCode.none
    assert v2.acquisition_lock_timeout.total_seconds() == 30
    # Still a's: accepted by it, never offered to anyone else.
    assert _ack(wire, "renewers", "a", 4, _one(renewed, (0, 0, ACCEPT))).error_code == 0
    assert _beat(wire, "renewers", "b", 0, ["renewed"]).error_code == ErrorCode.none
    assert _acquired(_fetch(wire, "renewers", "b", 0, _one(renewed))) == []


def test_a_closed_connections_session_gives_its_records_back(broker: Broker, wire: Wire) -> None:
    """Kafka closes a share session with its connection and releases what it held at
    once, well before the lock (30 s) would expire."""
    dropped = _topic_ids(wire)["dropped"]
    with Wire(broker.port) as other:
        for member, connection in (("a", other), ("b", wire)):
            assert _beat(wire, "droppers", member, 0, ["dropped"]).error_code == ErrorCode.none
            assert _fetch(connection, "droppers", member, 0, _one(dropped)).error_code == 0
        _produce(broker, "dropped", 2)
        assert _acquired(_fetch(other, "droppers", "a", 1, [], wait_ms=5_000)) == [(0, 1, 1)]
    # a's connection is closed; it never acknowledged and is still a member.
    assert _acquired(_fetch(wire, "droppers", "b", 1, [], wait_ms=25_000)) == [(0, 1, 2)]


def _alter_group(wire: Wire, group: str, value: str) -> Any:
    response = wire.call(
        44,
        1,
        resources=[
            {
                "resource_type": 32,
                "resource_name": group,
                "configs": [
                    {"name": "share.auto.offset.reset", "config_operation": 0, "value": value}
                ],
            }
        ],
        validate_only=False,
    )
    return response.responses[0]


def test_share_auto_offset_reset_earliest_reads_the_backlog(broker: Broker, wire: Wire) -> None:
    backlog = _topic_ids(wire)["backlog"]
    _produce(broker, "backlog", 3)
    described = wire.call(
        32,
        4,
        resources=[
            {
                "resource_type": 32,
                "resource_name": "early",
                "configuration_keys": ["share.auto.offset.reset"],
            }
        ],
        include_synonyms=True,
        include_documentation=False,
    )
    (config,) = described.results[0].configs
    assert (config.value, config.config_type) == ("latest", 2)
    # Kafka 4.4 lists a config without a broker setting as its own default synonym.
    assert [(s.name, s.value, s.source) for s in config.synonyms] == [
        ("share.auto.offset.reset", "latest", 5)
    ]
    refused = _alter_group(wire, "early", "sometimes")
    assert refused.error_code == ErrorCode.invalid_config
    assert refused.error_message.startswith(
        "Invalid value sometimes for configuration share.auto.offset.reset"
    )
    assert _alter_group(wire, "early", "earliest").error_code == ErrorCode.none
    assert _beat(wire, "early", "a", 0, ["backlog"]).error_code == ErrorCode.none
    assert _acquired(_fetch(wire, "early", "a", 0, _one(backlog))) == [(0, 2, 1)]
    # Another group, at the default: the backlog is behind it.
    assert _beat(wire, "late", "a", 0, ["backlog"]).error_code == ErrorCode.none
    assert _acquired(_fetch(wire, "late", "a", 0, _one(backlog))) == []


def _delete(wire: Wire, group: str) -> ErrorCode:
    [result] = wire.call(DELETE_GROUPS, 2, groups_names=[group]).results
    return result.error_code


def test_a_share_group_is_deleted_once_empty_with_its_state(broker: Broker, wire: Wire) -> None:
    """DeleteGroups (Kafka's Admin.deleteShareGroups sends it): NON_EMPTY_GROUP while a
    member is in the group; once it left, the group and its share partitions go, so the
    group starts afresh (share.auto.offset.reset: at the end) and held records are gone."""
    removed = _topic_ids(wire)["removed"]
    assert _beat(wire, "doomed", "a", 0, ["removed"]).error_code == ErrorCode.none
    assert _fetch(wire, "doomed", "a", 0, _one(removed)).error_code == ErrorCode.none
    _produce(broker, "removed", 3)
    assert _acquired(_fetch(wire, "doomed", "a", 1, [], wait_ms=5_000)) == [(0, 2, 1)]
    assert _delete(wire, "doomed") == ErrorCode.non_empty_group
    assert _beat(wire, "doomed", "a", -1).member_epoch == -1
    assert _delete(wire, "doomed") == ErrorCode.none
    listed = wire.call(LIST_GROUPS, 5, states_filter=[], types_filter=["share"])
    assert "doomed" not in {g.group_id for g in listed.groups}
    described = wire.call(
        SHARE_DESCRIBE, 1, group_ids=["doomed"], include_authorized_operations=False
    )
    assert described.groups[0].error_code == ErrorCode.group_id_not_found
    assert _delete(wire, "doomed") == ErrorCode.group_id_not_found
    # Joined again: the held records 0-2 are not redelivered; it starts at the end.
    assert _beat(wire, "doomed", "b", 0, ["removed"]).error_code == ErrorCode.none
    assert _fetch(wire, "doomed", "b", 0, _one(removed)).error_code == ErrorCode.none
    _produce(broker, "removed", 1)
    assert _acquired(_fetch(wire, "doomed", "b", 1, [], wait_ms=5_000)) == [(3, 3, 1)]


def _batches(records: bytes) -> list[tuple[int, int]]:
    """The (first, last) offsets of each RecordBatch in a response's records."""
    out, position = [], 0
    while position + 27 <= len(records):
        base, length = struct.unpack_from(">qi", records, position)
        (delta,) = struct.unpack_from(">i", records, position + 23)
        out.append((base, base + delta))
        position += 12 + length
    assert position == len(records)  # whole batches only
    return out


def test_a_fetch_sends_only_the_batches_holding_acquired_records(
    broker: Broker, wire: Wire
) -> None:
    """Kafka 4.4 slices a ShareFetch's records to the batches with acquired ones
    (`ShareFetchUtils.maybeSliceFetchRecords`): a small max_records over a large backlog
    gets a few batches, not all it could read."""
    trimmed = _topic_ids(wire)["trimmed"]
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for index in range(400):
        producer.produce("trimmed", value=b"x" * 200, partition=0)
        if index % 10 == 9:
            assert producer.flush(10) == 0  # one batch (or a few) per flush
    assert _alter_group(wire, "trim", "earliest").error_code == ErrorCode.none
    for member in ("a", "b"):
        assert _beat(wire, "trim", member, 0, ["trimmed"]).error_code == ErrorCode.none
    for member, first in (("a", 0), ("b", 15), ("a", 30)):
        epoch = 0 if first < 30 else 1
        got = _fetch(wire, "trim", member, epoch, _one(trimmed), max_records=15)
        assert [(f, last) for f, last, _ in _acquired(got)] == [(first, first + 14)]
        batches = _batches(bytes(got.responses[0].partitions[0].records))
        # Every batch sent holds an acquired record; together they hold all 15.
        assert all(f <= first + 14 and last >= first for f, last in batches)
        assert batches[0][0] <= first and batches[-1][1] >= first + 14
        assert len(batches) < 10  # of the ~40 in the backlog
