"""KIP-848 heartbeats with hostile values: ids of Kafka's largest string, epochs and
timeouts at the int32 extremes, partitions listed on a join under a topic id no topic
has, 100,000 subscribed
topic names and owned partitions, thousands of groups from one connection. Each gets
Kafka's answer on the same connection, and the broker keeps serving."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.limits import STRING_BYTES_MAX
from contextplane.protocol.error_codes import ErrorCode
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient

HEARTBEAT = 68
DESCRIBE = 69
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)


def heartbeat(client: RawClient, **fields: Any) -> Any:
    """A join of member `m` to group `g` subscribed to `t`, with `fields` instead."""
    joining: dict[str, Any] = {
        "group_id": "g",
        "member_id": "m",
        "member_epoch": 0,
        "instance_id": None,
        "rack_id": None,
        "rebalance_timeout": 300_000,
        "subscribed_topic_names": ["t"],
        "server_assignor": None,
        "topic_partitions": [],
    }
    return client.call(HEARTBEAT, 1, **{**joining, **fields})


def answer(response: Any) -> tuple[int, str | None]:
    return response.error_code, response.error_message


def describe(client: RawClient, group_id: str) -> Any:
    return client.call(
        DESCRIBE, 1, group_ids=[group_id], include_authorized_operations=False
    ).groups[0]


def test_hostile_values_get_kafkas_answers(hostile_broker: BrokerProcess) -> None:
    prefix = uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": hostile_broker.bootstrap})
    admin.create_topics([NewTopic(f"{prefix}-t", 4)])[f"{prefix}-t"].result(30)
    with RawClient(hostile_broker.bootstrap) as client:
        # Kafka's largest string (one byte more closes the connection, as Kafka's readers
        # refuse it: tests/hostile/test_string_bounds.py).
        huge = "x" * STRING_BYTES_MAX
        for field in ("group_id", "member_id", "instance_id", "rack_id"):
            fields = {"group_id": f"{prefix}-{field}", field: huge}
            joined = heartbeat(client, **fields)
            assert (joined.error_code, joined.member_epoch) == (ErrorCode.none, 2), field
        assert heartbeat(client, group_id=f"{prefix}-a", server_assignor=huge).error_code == (
            ErrorCode.unsupported_assignor
        )

        group = f"{prefix}-epochs"
        assert answer(heartbeat(client, group_id=group, member_epoch=INT32_MAX)) == (
            ErrorCode.group_id_not_found,
            f"Group {group} not found.",
        )
        assert answer(heartbeat(client, group_id=group, member_epoch=INT32_MIN)) == (
            ErrorCode.invalid_request,
            f"MemberEpoch is invalid: {INT32_MIN}",
        )
        assert answer(heartbeat(client, group_id=group, member_epoch=-2)) == (
            ErrorCode.invalid_request,
            "InstanceId can't be null.",
        )
        for timeout in (INT32_MAX, INT32_MIN, 0):
            joined = heartbeat(client, group_id=group, rebalance_timeout=timeout)
            assert joined.error_code == ErrorCode.none, timeout
        beat = {"group_id": group, "rebalance_timeout": -1, "subscribed_topic_names": None}
        assert heartbeat(client, **beat, member_epoch=INT32_MAX).error_code == (
            ErrorCode.fenced_member_epoch
        )
        assert heartbeat(client, **beat, member_epoch=1).error_code == (
            ErrorCode.fenced_member_epoch
        )

        # A join lists no partitions, also under a topic id no topic has (Kafka checks the
        # request's TopicPartitions before resolving them).
        for partitions in ([], list(range(100_000)), [-1, INT32_MAX]):
            listed = [{"topic_id": uuid.uuid4(), "partitions": partitions}]
            assert answer(
                heartbeat(client, group_id=f"{prefix}-owned", topic_partitions=listed)
            ) == (ErrorCode.invalid_request, "TopicPartitions must be empty when (re-)joining.")
        assert describe(client, f"{prefix}-owned").error_code == ErrorCode.group_id_not_found

        # 100,000 subscribed names (the real topic among them), then heartbeats that claim
        # 100,000 partitions of topics that do not exist.
        group = f"{prefix}-wide"
        names = [f"{prefix}-nope-{i}" for i in range(100_000)] + [f"{prefix}-t"]
        joined = heartbeat(client, group_id=group, subscribed_topic_names=names)
        assert (joined.error_code, joined.member_epoch) == (ErrorCode.none, 2)
        assert sorted(p for t in joined.assignment.topic_partitions for p in t.partitions) == [
            0,
            1,
            2,
            3,
        ]
        claimed = [{"topic_id": uuid.uuid4(), "partitions": list(range(-50_000, 50_000))}]
        for _ in range(3):
            beat = heartbeat(
                client,
                group_id=group,
                member_epoch=2,
                rebalance_timeout=-1,
                subscribed_topic_names=None,
                topic_partitions=claimed,
            )
            assert (beat.error_code, beat.member_epoch) == (ErrorCode.none, 2)
        wide = describe(client, group)
        assert (wide.error_code, wide.group_state) == (ErrorCode.none, "Stable")
        assert len(wide.members[0].subscribed_topic_names) == len(names)

        # A topic created after the subscription named it is assigned at the next beat.
        later = f"{prefix}-later"
        joined = heartbeat(client, group_id=later, subscribed_topic_names=[*names, later])
        assert joined.error_code == ErrorCode.none
        admin.create_topics([NewTopic(later, 2)])[later].result(30)
        deadline = time.monotonic() + 10  # a new target waits the assignment interval (1 s)
        beat = joined
        while beat.member_epoch == joined.member_epoch and time.monotonic() < deadline:
            time.sleep(0.1)
            beat = heartbeat(
                client,
                group_id=later,
                member_epoch=joined.member_epoch,
                rebalance_timeout=-1,
                subscribed_topic_names=None,
                topic_partitions=None,
            )
            assert beat.error_code == ErrorCode.none
        assert beat.member_epoch > joined.member_epoch
        assert sorted(len(t.partitions) for t in beat.assignment.topic_partitions) == [2, 4]

        # Thousands of groups from one connection: each joined, each answered.
        for i in range(2_000):
            assert heartbeat(client, group_id=f"{prefix}-many-{i}").error_code == ErrorCode.none
        left = heartbeat(client, group_id=group, member_epoch=-1, rebalance_timeout=-1)
        assert answer(left) == (ErrorCode.none, None)

    with RawClient(hostile_broker.bootstrap) as other:
        versions = other.call(18, 3, client_software_name="probe", client_software_version="1")
        assert versions.error_code == ErrorCode.none
