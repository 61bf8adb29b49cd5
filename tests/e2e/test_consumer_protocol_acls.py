"""ACLs and the consumer group protocol, as Kafka 4.4 applies them to ConsumerGroupHeartbeat:
a member subscribing by name to a topic it may not DESCRIBE is refused with
TOPIC_AUTHORIZATION_FAILED (the whole heartbeat, the group untouched), and a regex
subscription is resolved against every topic, internal ones included, less the ones the
member may not DESCRIBE. Every client is User:ANONYMOUS (PLAINTEXT); a topic is closed
to it by an ACL naming someone else (User:alice)."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "true",
}
CONSUMER_GROUP_HEARTBEAT = 68
CONSUMER_GROUP_DESCRIBE = 69
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_ID_NOT_FOUND = 69
# Liveness bound, well above the protocol's pace.
SETTLE_S = 60


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "broker", settings=AUTHORIZER).start()
    yield process
    process.stop()


def _setup(bootstrap: str, open_topic: str, closed_topic: str) -> None:
    """Both topics, the second closed to ANONYMOUS: an ACL gives DESCRIBE to alice."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(open_topic, 2, 1), NewTopic(closed_topic, 2, 1)]
    ).values():
        future.result(30)
    acl = AclBinding(
        ResourceType.TOPIC,
        closed_topic,
        ResourcePatternType.LITERAL,
        "User:alice",
        "*",
        AclOperation.DESCRIBE,
        AclPermissionType.ALLOW,
    )
    for future in admin.create_acls([acl]).values():
        future.result(10)


def _consumer(bootstrap: str, group: str, *subscription: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(list(subscription))
    return consumer


def _heartbeat(client: RawClient, group: str, names: list[str]) -> object:
    return client.request(
        CONSUMER_GROUP_HEARTBEAT,
        1,
        group_id=group,
        member_id=str(uuid.uuid4()),
        member_epoch=0,
        instance_id=None,
        rack_id=None,
        rebalance_timeout=30000,
        subscribed_topic_names=names,
        subscribed_topic_regex=None,
        server_assignor=None,
        topic_partitions=[],
    )


def test_a_member_naming_a_topic_it_may_not_describe_is_refused(
    secured: BrokerProcess,
) -> None:
    _setup(secured.bootstrap, "names-open", "names-closed")
    with RawClient(secured.bootstrap) as client:
        refused = _heartbeat(client, "names-g", ["names-open", "names-closed"])
        # Kafka 4.4's KafkaApis answers with the code alone, before the coordinator.
        assert refused.error_code == TOPIC_AUTHORIZATION_FAILED
        assert refused.error_message is None
        assert refused.member_id is None
        assert refused.member_epoch == 0
        assert refused.heartbeat_interval == datetime.timedelta(0)
        assert refused.assignment is None
        described = client.request(
            CONSUMER_GROUP_DESCRIBE, 1, group_ids=["names-g"], include_authorized_operations=False
        )
        assert described.groups[0].error_code == GROUP_ID_NOT_FOUND  # nothing was created
        joined = _heartbeat(client, "names-g", ["names-open"])
        assert joined.error_code == 0 and joined.member_epoch > 0
    # A real client sees the error, heartbeat after heartbeat, and is assigned nothing.
    consumer = _consumer(secured.bootstrap, "names-client", "names-open", "names-closed")
    try:
        errors: list[KafkaError] = []

        def refused_twice() -> bool:
            message = consumer.poll(0.2)
            if message is not None and message.error() is not None:
                errors.append(message.error())
            return len(errors) >= 2

        wait_until(refused_twice, SETTLE_S, "TOPIC_AUTHORIZATION_FAILED reported")
        assert {e.code() for e in errors} == {KafkaError.TOPIC_AUTHORIZATION_FAILED}, errors
        assert consumer.assignment() == []
    finally:
        consumer.close()


def test_a_regex_matches_internal_topics_and_only_describable_ones(
    secured: BrokerProcess,
) -> None:
    _setup(secured.bootstrap, "rx-open", "rx-closed")
    consumer = _consumer(secured.bootstrap, "rx-client", "^(__consumer_offsets|rx-.*)$")
    expected = {"__consumer_offsets", "rx-open"}
    try:
        with RawClient(secured.bootstrap) as client:

            def target() -> set[str]:
                """The topics of the member's target assignment, computed in one step
                from everything its regex resolved to."""
                consumer.poll(0.2)
                described = client.request(
                    CONSUMER_GROUP_DESCRIBE,
                    1,
                    group_ids=["rx-client"],
                    include_authorized_operations=False,
                )
                members = described.groups[0].members
                if not members:
                    return set()
                return {t.topic_name for t in members[0].target_assignment.topic_partitions}

            assert wait_until(target, SETTLE_S, "a target") == expected

        def assigned() -> bool:
            consumer.poll(0.2)
            return {tp.topic for tp in consumer.assignment()} == expected

        wait_until(assigned, SETTLE_S, "the client's assignment")
    finally:
        consumer.close()
