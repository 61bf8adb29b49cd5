"""The share-group offsets admin APIs over the wire (KIP-932): DescribeShareGroupOffsets
(SPSO and Kafka's lag), AlterShareGroupOffsets and DeleteShareGroupOffsets, with
Kafka 4.4's errors and authorization."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from tests.groups.support import Broker, Wire
from tests.groups.test_share_group_wire import (
    ACCEPT,
    REJECT,
    _ack,
    _acquired,
    _beat,
    _fetch,
    _produce,
    _topic_ids,
)

CREATE_TOPICS, CREATE_ACLS, OFFSET_COMMIT = 19, 30, 8
DESCRIBE_OFFSETS, ALTER_OFFSETS, DELETE_OFFSETS = 90, 91, 92
TOPICS = {"ledger": 2, "spare": 1}


def _create_topics(wire: Wire) -> None:
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


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    process = Broker(tmp_path_factory.mktemp("share-offsets") / "broker").start()
    try:
        with Wire(process.port) as wire:
            _create_topics(wire)
        yield process
    finally:
        process.stop()


@pytest.fixture
def wire(broker: Broker) -> Iterator[Wire]:
    with Wire(broker.port) as connection:
        yield connection


def _describe(wire: Wire, version: int, group: str, topics: Any = None) -> Any:
    request = {"group_id": group, "topics": topics}
    [answer] = wire.call(DESCRIBE_OFFSETS, version, groups=[request]).groups
    return answer


def _offsets(described: Any) -> dict[tuple[str, int], tuple[int, int, ErrorCode]]:
    return {
        (t.topic_name, p.partition_index): (p.start_offset, getattr(p, "lag", -1), p.error_code)
        for t in described.topics
        for p in t.partitions
    }


def _alter(wire: Wire, group: str, topics: dict[str, list[tuple[int, int]]]) -> Any:
    return wire.call(
        ALTER_OFFSETS,
        0,
        group_id=group,
        topics=[
            {
                "topic_name": name,
                "partitions": [{"partition_index": i, "start_offset": o} for i, o in partitions],
            }
            for name, partitions in topics.items()
        ],
    )


def _altered(response: Any) -> dict[tuple[str, int], ErrorCode]:
    return {
        (t.topic_name, p.partition_index): p.error_code
        for t in response.responses
        for p in t.partitions
    }


def _delete(wire: Wire, group: str, topics: list[str]) -> Any:
    return wire.call(
        DELETE_OFFSETS, 0, group_id=group, topics=[{"topic_name": name} for name in topics]
    )


def _ledger_partition(topic_id: uuid.UUID, index: int, *acks: tuple[int, int, int]) -> Any:
    return {
        "topic_id": topic_id,
        "partitions": [
            {
                "partition_index": index,
                "acknowledgement_batches": [
                    {"first_offset": f, "last_offset": last, "acknowledge_types": [kind]}
                    for f, last, kind in acks
                ],
            }
        ],
    }


def test_describe_alter_and_delete_share_group_offsets(
    broker: Broker, wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="contextplane.audit")
    ledger = _topic_ids(wire)["ledger"]
    assert _beat(wire, "books", "a", 0, ["ledger"]).error_code == ErrorCode.none
    opened = _fetch(wire, "books", "a", 0, [_ledger_partition(ledger, 0)])
    assert opened.error_code == ErrorCode.none
    assert _fetch(wire, "books", "a", 1, [_ledger_partition(ledger, 1)]).error_code == 0
    _produce(broker, "ledger", 5)
    assert _acquired(_fetch(wire, "books", "a", 2, [], wait_ms=5_000)) == [(0, 4, 1)]
    acked = _ack(
        wire, "books", "a", 3, [_ledger_partition(ledger, 0, (0, 1, ACCEPT), (3, 3, REJECT))]
    )
    assert acked.responses[0].partitions[0].error_code == ErrorCode.none

    # SPSO 2 (0-1 accepted); 2 and 4 held, 3 archived: lag = 5 - 2 - 1 done in flight.
    every = _describe(wire, 1, "books")
    assert every.error_code == ErrorCode.none
    assert _offsets(every) == {
        ("ledger", 0): (2, 2, ErrorCode.none),
        ("ledger", 1): (0, 0, ErrorCode.none),
    }
    assert every.topics[0].topic_id == ledger
    # A group named again and again is answered once, not with its partitions each time.
    repeated = wire.call(
        DESCRIBE_OFFSETS, 1, groups=[{"group_id": "books", "topics": None}] * 5_000
    )
    assert [_offsets(g) for g in repeated.groups] == [_offsets(every)]
    # v0 has no lag; a partition without state, an unknown topic: -1, not an error.
    named = _describe(
        wire,
        0,
        "books",
        [
            {"topic_name": "ledger", "partitions": [0, 7]},
            {"topic_name": "absent", "partitions": [0]},
        ],
    )
    assert _offsets(named) == {
        ("ledger", 0): (2, -1, ErrorCode.none),
        ("ledger", 7): (-1, -1, ErrorCode.none),
        ("absent", 0): (-1, -1, ErrorCode.none),
    }
    assert named.topics[1].topic_id is None  # the zero id, as kio decodes it
    assert _describe(wire, 1, "books", []).topics == ()
    assert _describe(wire, 1, "nobody").topics == ()  # as Kafka: no state, no error

    # While a member is in the group, neither alter nor delete is allowed.
    busy = _alter(wire, "books", {"ledger": [(0, 4)]})
    assert (busy.error_code, busy.error_message) == (
        ErrorCode.non_empty_group,
        "The group is not empty.",
    )
    assert _delete(wire, "books", ["ledger"]).error_code == ErrorCode.non_empty_group
    assert _beat(wire, "books", "a", -1).member_epoch == -1

    altered = _alter(wire, "books", {"ledger": [(0, 4), (9, 0), (1, -5)], "absent": [(0, 0)]})
    assert altered.error_code == ErrorCode.none
    assert _altered(altered) == {
        ("ledger", 0): ErrorCode.none,
        ("ledger", 9): ErrorCode.unknown_topic_or_partition,
        ("ledger", 1): ErrorCode.invalid_request,
        ("absent", 0): ErrorCode.unknown_topic_or_partition,
    }
    # The SPSO moved and the in-flight state went: lag = 5 - 4.
    assert _offsets(_describe(wire, 1, "books"))[("ledger", 0)] == (4, 1, ErrorCode.none)
    # A new member gets offset 4 as a first delivery; 2 (held before) is behind the SPSO.
    assert _beat(wire, "books", "b", 0, ["ledger"]).error_code == ErrorCode.none
    got = _fetch(wire, "books", "b", 0, [_ledger_partition(ledger, 0)], wait_ms=5_000)
    assert _acquired(got) == [(4, 4, 1)]
    assert _beat(wire, "books", "b", -1).member_epoch == -1

    deleted = _delete(wire, "books", ["ledger", "absent", "spare"])
    assert deleted.error_code == ErrorCode.none
    assert {t.topic_name: (t.error_code, t.error_message) for t in deleted.responses} == {
        "ledger": (ErrorCode.none, None),
        "absent": (
            ErrorCode.unknown_topic_or_partition,
            "This server does not host this topic-partition.",
        ),
        "spare": (
            ErrorCode.unknown_topic_or_partition,
            "There is no offset information to delete.",
        ),
    }
    assert _describe(wire, 1, "books").topics == ()
    # The two changes are audited as the other admin changes are.
    audited = [r.getMessage() for r in caplog.records if "ShareGroupOffsets" in r.getMessage()]
    assert any(
        'audit AlterShareGroupOffsets group="books" result=NONE' in line
        and 'partitions="ledger-0=4"' in line
        for line in audited
    ), audited
    assert any(
        'audit DeleteShareGroupOffsets group="books" result=NONE' in line
        and 'topics="ledger"' in line
        for line in audited
    ), audited


def test_errors_for_groups_that_are_not_share_groups(wire: Wire) -> None:
    unknown = _delete(wire, "never-seen", ["ledger"])
    assert (unknown.error_code, unknown.error_message) == (
        ErrorCode.group_id_not_found,
        "Share group never-seen not found.",
    )
    # A classic group's id (offsets committed by an admin) is not a share group's.
    committed = wire.call(
        OFFSET_COMMIT,
        8,
        group_id="classic",
        generation_id_or_member_epoch=-1,
        member_id="",
        group_instance_id=None,
        topics=[
            {
                "name": "spare",
                "partitions": [
                    {"partition_index": 0, "committed_offset": 0, "committed_metadata": ""}
                ],
            }
        ],
    )
    assert committed.topics[0].partitions[0].error_code == ErrorCode.none
    for answer in (
        _delete(wire, "classic", ["spare"]),
        _alter(wire, "classic", {"spare": [(0, 0)]}),
    ):
        assert (answer.error_code, answer.error_message) == (
            ErrorCode.group_id_not_found,
            "Group classic is not a share group.",
        )
    assert _alter(wire, "", {"spare": [(0, 0)]}).error_code == ErrorCode.invalid_group_id


def _acl(resource_type: int, name: str, operation: int, permission: int = 2) -> dict[str, Any]:
    return {
        "resource_type": resource_type,
        "resource_name": name,
        "resource_pattern_type": 3,  # LITERAL
        "principal": "User:ANONYMOUS",
        "host": "*",
        "operation": operation,
        "permission_type": permission,  # DENY (2) or ALLOW (3)
    }


TOPIC_TYPE, GROUP_TYPE = 2, 3
READ, DELETE, DESCRIBE = 3, 6, 8


def test_authorized_as_kafka(tmp_path: Path) -> None:
    """DESCRIBE on each group and named topic for Describe; READ on the group (and
    DELETE for Delete) for the whole request, READ on each topic."""
    settings = {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "true",
    }
    process = Broker(tmp_path / "broker", settings=settings).start()
    try:
        with Wire(process.port) as wire:
            _create_topics(wire)
            created = wire.call(
                CREATE_ACLS,
                3,
                creations=[
                    _acl(GROUP_TYPE, "hidden-group", DESCRIBE),
                    _acl(TOPIC_TYPE, "spare", DESCRIBE),
                    _acl(TOPIC_TYPE, "spare", READ),
                    _acl(GROUP_TYPE, "read-only", DELETE),
                    # With an ACL on the group, READ needs its own (no "allow everyone").
                    _acl(GROUP_TYPE, "read-only", READ, permission=3),
                    _acl(GROUP_TYPE, "no-read", READ),
                ],
            )
            assert {r.error_code for r in created.results} == {ErrorCode.none}
            hidden = _describe(wire, 1, "hidden-group")
            assert hidden.error_code == ErrorCode.group_authorization_failed
            named = _describe(
                wire,
                1,
                "open",
                [
                    {"topic_name": "spare", "partitions": [0]},
                    {"topic_name": "ledger", "partitions": [0]},
                ],
            )
            assert _offsets(named) == {
                ("spare", 0): (-1, -1, ErrorCode.topic_authorization_failed),
                ("ledger", 0): (-1, -1, ErrorCode.none),
            }
            # Altering: the refused topic per partition, the other one stored.
            altered = _alter(wire, "open", {"spare": [(0, 0)], "ledger": [(1, 0)]})
            assert _altered(altered) == {
                ("spare", 0): ErrorCode.topic_authorization_failed,
                ("ledger", 1): ErrorCode.none,
            }
            # topics=null leaves out the topics the principal may not describe.
            assert set(_offsets(_describe(wire, 1, "open"))) == {("ledger", 1)}
            refused = _alter(wire, "no-read", {"ledger": [(0, 0)]})
            assert refused.error_code == ErrorCode.group_authorization_failed
            assert _alter(wire, "read-only", {"ledger": [(0, 0)]}).error_code == ErrorCode.none
            # A group never seen before exists once altered, Empty, as in Kafka.
            described = wire.call(
                77, 1, group_ids=["read-only"], include_authorized_operations=False
            )
            assert (described.groups[0].error_code, described.groups[0].group_state) == (
                ErrorCode.none,
                "Empty",
            )
            refused = _delete(wire, "read-only", ["ledger"])
            assert refused.error_code == ErrorCode.group_authorization_failed
            deleted = _delete(wire, "open", ["spare", "ledger"])
            assert {t.topic_name: t.error_code for t in deleted.responses} == {
                "spare": ErrorCode.topic_authorization_failed,
                "ledger": ErrorCode.none,
            }
    finally:
        process.stop()


def test_described_after_a_restart_before_any_fetch(tmp_path: Path) -> None:
    """A share partition is read from the store when its topic partition's leader first
    serves it; `kafka-share-groups.sh --describe --offsets` after a restart, before any
    consumer came back, said the group had no offset information, and `--delete-offsets`
    that there was none to delete."""
    broker = Broker(tmp_path / "broker").start()
    try:
        with Wire(broker.port) as wire:
            _create_topics(wire)
            ledger = _topic_ids(wire)["ledger"]
            assert _beat(wire, "kept", "a", 0, ["ledger"]).error_code == ErrorCode.none
            assert _fetch(wire, "kept", "a", 0, [_ledger_partition(ledger, 0)]).error_code == 0
            _produce(broker, "ledger", 4)
            assert _acquired(_fetch(wire, "kept", "a", 1, [], wait_ms=5_000)) == [(0, 3, 1)]
            _ack(wire, "kept", "a", 2, [_ledger_partition(ledger, 0, (0, 1, ACCEPT))])
            before = _offsets(_describe(wire, 1, "kept"))
            assert before == {("ledger", 0): (2, 2, ErrorCode.none)}
            assert _beat(wire, "kept", "a", -1, None).error_code == ErrorCode.none
        broker.restart()
        with Wire(broker.port) as wire:
            # After a clean stop the records held by the departed member were released:
            # the start offset and lag as before.
            assert _offsets(_describe(wire, 1, "kept")) == before
            named = _describe(wire, 1, "kept", [{"topic_name": "ledger", "partitions": [0]}])
            assert _offsets(named) == before
            # kafka-share-groups.sh --delete-offsets: "There is no offset information to
            # delete." before the fix, as the group's state was not in memory.
            deleted = _delete(wire, "kept", ["ledger"])
            assert [(t.topic_name, t.error_code) for t in deleted.responses] == [
                ("ledger", ErrorCode.none)
            ]
            assert _describe(wire, 1, "kept").topics == ()
    finally:
        broker.stop()
