"""DescribeTopicPartitions (API 75, KIP-966) through real clients: kafka-python's
`describe_topic_partitions` (pages, cursors, unknown, invalid and refused topics, the
broker's max.request.partition.size.limit) and Kafka's own TopicCommand, whose Java admin
client describes topics with it when the broker advertises it."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kafka.admin import KafkaAdminClient

from contextplane import limits
from tests.support.inprocess import InProcessBroker

UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC, INVALID_REQUEST = 3, 17, 42
TOPIC_AUTHORIZATION_FAILED = 29
DESCRIBE_BIT = 1 << 8  # AclOperation.DESCRIBE's code


def _create(bootstrap: str, **topics: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, count, 1) for name, count in topics.items()])
    for future in futures.values():
        future.result(20)


def _pages(admin: KafkaAdminClient, topics: list[str], limit: int) -> list[dict[str, Any]]:
    """Every page of one description, following the cursor to the end."""
    pages = [admin.describe_topic_partitions(topics, response_partition_limit=limit)]
    while pages[-1]["next_cursor"] is not None:
        assert len(pages) < 20, pages
        cursor = pages[-1]["next_cursor"]
        pages.append(admin.describe_topic_partitions(topics, limit, cursor))
    return pages


def _listed(page: dict[str, Any]) -> list[tuple[str, list[int]]]:
    return [(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in page["topics"]]


def test_pages_follow_the_cursor_in_name_order(start: Callable[..., InProcessBroker]) -> None:
    broker = start()
    _create(broker.bootstrap, beta=2, alpha=3)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        pages = _pages(admin, ["beta", "alpha", "nope", "beta"], limit=2)
        assert [_listed(page) for page in pages] == [
            [("alpha", [0, 1])],
            [("alpha", [2]), ("beta", [0])],
            # The page ended inside beta; an unknown topic after it is named at the end.
            [("beta", [1]), ("nope", [])],
        ]
        assert [page["next_cursor"] for page in pages] == [
            {"topic_name": "alpha", "partition_index": 2},
            {"topic_name": "beta", "partition_index": 1},
            None,
        ]
        first = pages[0]["topics"][0]
        assert first["error_code"] == 0 and first["is_internal"] is False
        assert first["topic_id"] is not None
        partition = first["partitions"][0]
        assert partition["leader_id"] == 1 and partition["leader_epoch"] >= 0
        assert (partition["replica_nodes"], partition["isr_nodes"]) == ([1], [1])
        assert partition["offline_replicas"] == []
        assert pages[2]["topics"][1]["error_code"] == UNKNOWN_TOPIC_OR_PARTITION
        # A full page ends with a cursor to the next topic's partition 0.
        full = admin.describe_topic_partitions(["alpha", "beta"], response_partition_limit=3)
        assert _listed(full) == [("alpha", [0, 1, 2])]
        assert full["next_cursor"] == {"topic_name": "beta", "partition_index": 0}
    finally:
        admin.close()


def test_all_topics_invalid_names_and_invalid_cursors(
    start: Callable[..., InProcessBroker],
) -> None:
    broker = start()
    _create(broker.bootstrap, alpha=3, beta=2)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        every = admin.describe_topic_partitions([], response_partition_limit=1000)
        names = [t["name"] for t in every["topics"]]
        assert names == sorted(names) and {"alpha", "beta"} <= set(names)
        assert every["next_cursor"] is None
        # From a cursor: that topic's partitions from the cursor's index, then the rest.
        rest = admin.describe_topic_partitions(
            [], 100, {"topic_name": "alpha", "partition_index": 1}
        )
        assert _listed(rest)[:2] == [("alpha", [1, 2]), ("beta", [0, 1])]
        invalid = admin.describe_topic_partitions(["no way!"])
        assert [t["error_code"] for t in invalid["topics"]] == [INVALID_TOPIC]
        # The cursor's topic must be among those named, its partition not negative.
        for topics, cursor in (
            (["alpha"], {"topic_name": "beta", "partition_index": 0}),
            (["alpha"], {"topic_name": "alpha", "partition_index": -1}),
        ):
            answer = admin.describe_topic_partitions(topics, 10, cursor)
            assert [(t["name"], t["error_code"]) for t in answer["topics"]] == [
                ("alpha", INVALID_REQUEST)
            ]
            assert answer["next_cursor"] is None
    finally:
        admin.close()


def test_broker_limit_caps_the_request_limit(start: Callable[..., InProcessBroker]) -> None:
    broker = start(**{"max.request.partition.size.limit": "2"})
    _create(broker.bootstrap, alpha=3)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        page = admin.describe_topic_partitions(["alpha"], response_partition_limit=2000)
        assert _listed(page) == [("alpha", [0, 1])]
        assert page["next_cursor"] == {"topic_name": "alpha", "partition_index": 2}
        # A limit below 1 still lists one partition, as Kafka's Math.max(..., 1).
        assert _listed(admin.describe_topic_partitions(["alpha"], 0)) == [("alpha", [0])]
    finally:
        admin.close()


def test_refused_topics_named_last_and_left_out_of_all(
    start: Callable[..., InProcessBroker],
) -> None:
    broker = start(
        **{
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "true",
        }
    )
    _create(broker.bootstrap, secret=1, open=1, limited=1)
    confluent = AdminClient({"bootstrap.servers": broker.bootstrap})
    acls = [
        # An ACL on `secret` for someone else: User:ANONYMOUS may no longer describe it.
        _allow("secret", "User:someone", AclOperation.DESCRIBE),
        _allow("limited", "User:ANONYMOUS", AclOperation.DESCRIBE),
    ]
    for future in confluent.create_acls(acls).values():
        future.result(20)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        named = admin.describe_topic_partitions(["secret", "open", "limited", "nope"])
        assert [(t["name"], t["error_code"]) for t in named["topics"]] == [
            ("limited", 0),
            ("nope", UNKNOWN_TOPIC_OR_PARTITION),
            ("open", 0),
            ("secret", TOPIC_AUTHORIZATION_FAILED),
        ]
        by_name = {t["name"]: t for t in named["topics"]}
        assert by_name["secret"]["topic_id"] is None and by_name["secret"]["partitions"] == []
        assert by_name["limited"]["topic_authorized_operations"] == DESCRIBE_BIT
        assert by_name["open"]["topic_authorized_operations"] & DESCRIBE_BIT
        assert by_name["open"]["topic_authorized_operations"] != DESCRIBE_BIT
        # Not reported for a refused topic: Kafka's INT_MIN default.
        assert by_name["secret"]["topic_authorized_operations"] == -(2**31)
        every = admin.describe_topic_partitions([])
        names = {t["name"] for t in every["topics"]}
        assert {"open", "limited"} <= names and "secret" not in names
    finally:
        admin.close()


def _allow(topic: str, principal: str, operation: AclOperation) -> AclBinding:
    return AclBinding(
        ResourceType.TOPIC,
        topic,
        ResourcePatternType.LITERAL,
        principal,
        "*",
        operation,
        AclPermissionType.ALLOW,
    )


def test_java_topic_command_describes_through_the_api_in_pages(
    start: Callable[..., InProcessBroker],
) -> None:
    """TopicCommand's admin client pages through DescribeTopicPartitions (one partition
    a response here) and prints the eligible leader replicas only that API reports:
    "Elr: N/A" would mean it fell back to Metadata."""
    from conformance.suites.librdkafka.suite import fetch_kafka_tools

    broker = start()
    _create(broker.bootstrap, paged=3)
    java = shutil.which("java")
    assert java is not None, "java is installed by harness/install.sh"
    command = [java, "-cp", f"{fetch_kafka_tools()}/*", "org.apache.kafka.tools.TopicCommand"]
    command += ["--bootstrap-server", broker.bootstrap, "--describe", "--topic", "paged"]
    command += ["--partition-size-limit-per-response", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if "\tPartition: " in line]
    assert [re.search(r"Partition: (\d+)", row)[1] for row in rows] == ["0", "1", "2"]  # type: ignore[index]
    for row in rows:
        assert "\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: \tLastKnownElr: " in row, row


def test_more_names_than_the_bound_are_an_invalid_request(
    start: Callable[..., InProcessBroker],
) -> None:
    broker = start()
    _create(broker.bootstrap, alpha=1)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        at_bound = [f"t{index}" for index in range(limits.DESCRIBE_TOPICS_PER_REQUEST_MAX - 1)]
        answered = admin.describe_topic_partitions(["alpha", *at_bound], 10)
        assert answered["topics"][0]["name"] == "alpha"
        assert answered["topics"][0]["error_code"] == 0
        over = admin.describe_topic_partitions(["alpha", *at_bound, "one-more"], 10)
        assert len(over["topics"]) == limits.DESCRIBE_TOPICS_PER_REQUEST_MAX + 1
        assert {t["error_code"] for t in over["topics"]} == {INVALID_REQUEST}
        assert over["next_cursor"] is None
    finally:
        admin.close()
