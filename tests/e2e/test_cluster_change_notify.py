"""A change committed through one broker reaches the others at once, woken by PostgreSQL
NOTIFY (metadata/postgres_listener.py), not at their next heartbeat: two brokers on one
PostgreSQL with a 60 s heartbeat interval, so everything broker 2 sees here before
60 s after its registration's heartbeat came by notification.

- a topic created through broker 1 is in broker 2's topic table without a store read of
  its own (the lookup of an unknown name is not what brought it);
- partitions added through broker 1 are in broker 2's Metadata answer;
- an ACL created through broker 1 is enforced by broker 2 (its Metadata answer for the
  topic the ACL denies turns into TOPIC_AUTHORIZATION_FAILED);
- broker 2's LISTEN connection, terminated on the server, is opened again, and a change
  committed after that still reaches broker 2 at once;
- a broker that registers is listed by broker 1 at once (so it is a placement candidate
  there too), and once it stops cleanly it is listed no more.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from contextplane.metadata.postgres_listener import GenerationListener
from tests.support.broker import BrokerProcess
from tests.support.inprocess import InProcessBroker
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

METADATA, CREATE_TOPICS, CREATE_PARTITIONS = 3, 19, 37
INTERVAL_S = 60
UNKNOWN_TOPIC_OR_PARTITION, TOPIC_AUTHORIZATION_FAILED = 3, 29
SETTINGS = {
    "broker.heartbeat.interval.ms": str(INTERVAL_S * 1000),
    "broker.session.timeout.ms": str(3 * INTERVAL_S * 1000),
    # ACLs enforced, everything allowed that no ACL names (the clients are anonymous).
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "true",
}


def described(bootstrap: str, topic: str) -> tuple[int, int]:
    """Metadata's answer for one topic: its error code and its partition count."""
    with RawClient(bootstrap) as raw:
        response = raw.request(
            METADATA, 12, topics=[{"name": topic}], allow_auto_topic_creation=False
        )
    (found,) = response.topics
    return found.error_code, len(found.partitions)


def listed(bootstrap: str) -> set[int]:
    """The node ids a broker's Metadata answer lists."""
    with RawClient(bootstrap) as raw:
        response = raw.request(METADATA, 12, topics=[], allow_auto_topic_creation=False)
    return {broker.node_id for broker in response.brokers}


def partitions(bootstrap: str, topic: str) -> int:
    error_code, count = described(bootstrap, topic)
    return count if error_code == 0 else 0


def deny_describe(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    binding = AclBinding(
        ResourceType.TOPIC,
        topic,
        ResourcePatternType.LITERAL,
        "User:ANONYMOUS",
        "*",
        AclOperation.DESCRIBE,
        AclPermissionType.DENY,
    )
    for future in admin.create_acls([binding]).values():
        future.result(20)


def grow(bootstrap: str, topic: str, count: int) -> None:
    with RawClient(bootstrap) as raw:
        grown = raw.request(
            CREATE_PARTITIONS,
            3,
            topics=[{"name": topic, "count": count, "assignments": None}],
            timeout_ms=30_000,
            validate_only=False,
        )
    assert [r.error_code for r in grown.results] == [0]


def test_changes_through_one_broker_reach_another_before_its_heartbeat(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    one = BrokerProcess(
        tmp_path / "one",
        metadata_url=url,
        object_store=objects,
        settings={"node.id": "1", **SETTINGS},
    )
    three = BrokerProcess(
        tmp_path / "three",
        metadata_url=url,
        object_store=objects,
        settings={"node.id": "3", **SETTINGS},
    )
    two = InProcessBroker(
        tmp_path / "two",
        {"node.id": "2", "metadata.url": url, **SETTINGS},
        object_store=objects,
    )
    try:
        one.start()
        two.start()
        # Broker 2 registered (and heartbeat) before this: its next timed heartbeat is
        # no earlier than this plus the interval.
        heartbeat_due = time.monotonic() + INTERVAL_S
        assert two.broker is not None and two.broker.registry is not None
        assert two.broker.topics is not None and two.broker.topics.lookup is not None
        listener = two.broker.registry.listener
        assert isinstance(listener, GenerationListener)
        wait_until(listener.listening.is_set, 30, "broker 2 listens for changes")
        lookups = two.broker.topics.lookup.lookups
        topics = two.broker.topics

        with RawClient(one.bootstrap) as raw:
            created = raw.request(
                CREATE_TOPICS,
                4,
                topics=[{"name": "grown", "num_partitions": 1, "replication_factor": 1,
                         "assignments": [], "configs": []}],
                timeout_ms=30_000,
                validate_only=False,
            )  # fmt: skip
        assert [t.error_code for t in created.topics] == [0]
        wait_until(lambda: "grown" in topics.topics(), 20, "broker 2 knows the new topic")
        assert topics.lookup is not None and topics.lookup.lookups == lookups

        grow(one.bootstrap, "grown", 3)
        wait_until(lambda: partitions(two.bootstrap, "grown") == 3, 20, "3 partitions on 2")

        assert described(two.bootstrap, "hidden")[0] == UNKNOWN_TOPIC_OR_PARTITION
        deny_describe(one.bootstrap, "hidden")
        wait_until(
            lambda: described(two.bootstrap, "hidden")[0] == TOPIC_AUTHORIZATION_FAILED,
            20,
            "broker 2 enforces the ACL created through broker 1",
        )

        # The LISTEN connection dropped on the server: opened again, and changes flow.
        first = listener.backend_pid
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        wait_until(
            lambda: listener.connections == 2 and listener.listening.is_set(),
            20,
            "broker 2 listens again",
        )
        assert listener.backend_pid not in (first, -1)
        # Broker 1 heartbeats woken by this change: its next timed one is an interval on.
        woken_due = time.monotonic() + INTERVAL_S
        grow(one.bootstrap, "grown", 4)
        wait_until(lambda: partitions(two.bootstrap, "grown") == 4, 20, "4 partitions on 2")
        # None of it could have come by broker 2's heartbeat.
        assert time.monotonic() < heartbeat_due

        assert listed(one.bootstrap) == {1, 2}
        three.start()
        wait_until(lambda: listed(one.bootstrap) == {1, 2, 3}, 20, "broker 1 lists broker 3")
        three.stop()
        wait_until(lambda: listed(one.bootstrap) == {1, 2}, 20, "broker 1 drops broker 3")
        assert time.monotonic() < woken_due
    finally:
        one.stop()
        two.stop()
        three.stop()
