"""ACLs and ShareGroupHeartbeat, as Kafka 4.4's KafkaApis applies them (as it does to
ConsumerGroupHeartbeat): READ on the group first, then DESCRIBE on every topic the member
names; one it may not describe, existing or not, refuses the whole heartbeat with
TOPIC_AUTHORIZATION_FAILED and nothing else (no message, no member id, epoch 0), the
group untouched. Every client is User:ANONYMOUS (PLAINTEXT); a topic or group is closed
to it by an ACL naming someone else (User:alice)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from tests.e2e.test_consumer_protocol_acls import AUTHORIZER
from tests.support.acl_setup import allow_alice
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient

SHARE_GROUP_HEARTBEAT, SHARE_GROUP_DESCRIBE, SHARE_FETCH, SHARE_ACKNOWLEDGE = 76, 77, 78, 79
TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, GROUP_ID_NOT_FOUND = 29, 30, 69
INVALID_REQUEST = 42


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "broker", settings=AUTHORIZER).start()
    yield process
    process.stop()


def _close_to_anonymous(bootstrap: str) -> None:
    """Two topics, `closed` and the never created `ghost` closed to ANONYMOUS, and the
    group `closed-g` too: ACLs give them to alice."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic("open", 2, 1), NewTopic("closed", 2, 1)]).values():
        future.result(30)
    allow_alice(
        admin,
        [
            (ResourceType.TOPIC, "closed", AclOperation.DESCRIBE),
            (ResourceType.TOPIC, "ghost", AclOperation.DESCRIBE),
            (ResourceType.GROUP, "closed-g", AclOperation.READ),
        ],
    )


def _beat(client: RawClient, group: str, names: list[str] | None, epoch: int = 0) -> Any:
    return client.request(
        SHARE_GROUP_HEARTBEAT,
        1,
        group_id=group,
        member_id="member-one",
        member_epoch=epoch,
        rack_id=None,
        subscribed_topic_names=names,
    )


def _answer(response: Any) -> tuple[Any, ...]:
    return (
        response.error_code,
        response.error_message,
        response.member_id,
        response.member_epoch,
        response.heartbeat_interval,
        response.assignment,
    )


def test_a_share_member_naming_a_topic_it_may_not_describe_is_refused(
    secured: BrokerProcess,
) -> None:
    _close_to_anonymous(secured.bootstrap)
    refused = (TOPIC_AUTHORIZATION_FAILED, None, None, 0, datetime.timedelta(0), None)
    with RawClient(secured.bootstrap) as client:
        assert _answer(_beat(client, "g", ["open", "closed"])) == refused
        assert _answer(_beat(client, "g", ["ghost"])) == refused  # existing or not
        # Kafka's member id check (at most 36 UTF-16 code units) comes before the topics'.
        long_id = client.request(
            SHARE_GROUP_HEARTBEAT,
            1,
            group_id="g",
            member_id="m" * 37,
            member_epoch=0,
            rack_id=None,
            subscribed_topic_names=["closed"],
        )
        assert (long_id.error_code, long_id.error_message) == (INVALID_REQUEST, None)
        # READ on the group is checked first.
        assert _beat(client, "closed-g", ["closed"]).error_code == GROUP_AUTHORIZATION_FAILED
        described = client.request(
            SHARE_GROUP_DESCRIBE, 1, group_ids=["g"], include_authorized_operations=False
        )
        assert described.groups[0].error_code == GROUP_ID_NOT_FOUND  # nothing was created
        joined = _beat(client, "g", ["open"])
        assert joined.error_code == 0 and joined.member_epoch > 0
        # A member of the group changing its subscription to a closed topic: refused,
        # its subscription and epoch kept.
        assert _answer(_beat(client, "g", ["open", "closed"], joined.member_epoch)) == refused
        kept = _beat(client, "g", None, joined.member_epoch)
        assert (kept.error_code, kept.member_epoch) == (0, joined.member_epoch)
        described = client.request(
            SHARE_GROUP_DESCRIBE, 1, group_ids=["g"], include_authorized_operations=False
        )
        assert [list(m.subscribed_topic_names) for m in described.groups[0].members] == [["open"]]


def test_a_share_fetch_needs_read_on_each_topic(secured: BrokerProcess) -> None:
    """Kafka 4.4's KafkaApis answers ShareFetch and ShareAcknowledge partitions of a topic
    the principal may not READ with TOPIC_AUTHORIZATION_FAILED: here ANONYMOUS may
    describe `described` (so it may subscribe) but only alice may read it."""
    admin = AdminClient({"bootstrap.servers": secured.bootstrap})
    admin.create_topics([NewTopic("described", 1, 1)])["described"].result(30)
    allow_alice(admin, [(ResourceType.TOPIC, "described", AclOperation.READ)])
    describe = AclBinding(
        ResourceType.TOPIC,
        "described",
        ResourcePatternType.LITERAL,
        "User:ANONYMOUS",
        "*",
        AclOperation.DESCRIBE,
        AclPermissionType.ALLOW,
    )
    for future in admin.create_acls([describe]).values():
        future.result(20)
    with RawClient(secured.bootstrap) as client:
        listed = client.request(3, 12, topics=None, allow_auto_topic_creation=False)
        topic_id = next(t.topic_id for t in listed.topics if t.name == "described")
        joined = _beat(client, "readers-g", ["described"])
        assert joined.error_code == 0
        partition = {"partition_index": 0, "acknowledgement_batches": []}
        fetched = client.request(
            SHARE_FETCH,
            1,
            group_id="readers-g",
            member_id="member-one",
            share_session_epoch=0,
            max_wait=0,
            min_bytes=1,
            max_bytes=1 << 20,
            max_records=10,
            batch_size=10,
            topics=[{"topic_id": topic_id, "partitions": [partition]}],
            forgotten_topics_data=[],
        )
        assert fetched.error_code == 0
        assert [(t.topic_id, [p.error_code for p in t.partitions]) for t in fetched.responses] == [
            (topic_id, [TOPIC_AUTHORIZATION_FAILED])
        ]
        acknowledged = client.request(
            SHARE_ACKNOWLEDGE,
            1,
            group_id="readers-g",
            member_id="member-one",
            share_session_epoch=1,
            topics=[{"topic_id": topic_id, "partitions": [
                {"partition_index": 0, "acknowledgement_batches": [
                    {"first_offset": 0, "last_offset": 0, "acknowledge_types": [1]}]}]}],
        )  # fmt: skip
        assert [[p.error_code for p in t.partitions] for t in acknowledged.responses] == [
            [TOPIC_AUTHORIZATION_FAILED]
        ]
