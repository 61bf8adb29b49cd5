"""The operators' admin APIs on the wire (RFC 0008 §3): DescribeLogDirs sizes from the
object index plus the WAL tail; ListConfigResources as Kafka 4.4 answers (what it
answered to the same requests is written beside each); the tools that call them are in
tests/e2e/test_operator_tools.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from contextplane.limits import PARTITIONS_PER_REQUEST_MAX
from contextplane.protocol.error_codes import ErrorCode
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient

TIMEOUT_S = 30
DESCRIBE_LOG_DIRS = 35
LIST_CONFIG_RESOURCES = 74
INCREMENTAL_ALTER_CONFIGS = 44
DESCRIBE_CONFIGS = 32
ELECT_LEADERS = 43
DESCRIBE_QUORUM = 55
ALTER_REASSIGNMENTS, LIST_REASSIGNMENTS = 45, 46
NOT_NEEDED = "Leader election not needed for topic partition."


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    running = InProcessBroker(tmp_path_factory.mktemp("opadmin") / "broker").start()
    yield running
    running.stop()


def _topic(bootstrap: str, partitions: int) -> str:
    name = f"opa-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)
    return name


def _sizes(bootstrap: str, topics: list[dict[str, object]] | None) -> dict[tuple[str, int], int]:
    with RawClient(bootstrap) as client:
        response = client.request(DESCRIBE_LOG_DIRS, 4, topics=topics)
    assert response.error_code == ErrorCode.none
    (result,) = response.results
    assert result.error_code == ErrorCode.none
    assert result.total_bytes >= result.usable_bytes > 0
    return {
        (t.name, p.partition_index): p.partition_size for t in result.topics for p in t.partitions
    }


def test_sizes_count_the_wal_tail_and_stay_once_uploaded(broker: InProcessBroker) -> None:
    topic = _topic(broker.bootstrap, 2)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for _ in range(20):
        producer.produce(topic, b"x" * 1000, partition=0)
        producer.flush(TIMEOUT_S)  # one batch each
    sizes = _sizes(broker.bootstrap, None)
    # 20 batches of one 1000-byte record: their headers on top.
    assert 20_000 < sizes[(topic, 0)] < 25_000
    assert sizes[(topic, 1)] == 0
    assert broker.broker is not None and broker.broker.storage is not None
    broker.call(broker.broker.storage.upload_once())
    assert _sizes(broker.bootstrap, None)[(topic, 0)] == sizes[(topic, 0)]


def test_only_the_partitions_asked_for(broker: InProcessBroker) -> None:
    topic = _topic(broker.bootstrap, 3)
    asked = [{"topic": topic, "partitions": [1, 7]}, {"topic": "no-such-topic", "partitions": [0]}]
    assert set(_sizes(broker.bootstrap, asked)) == {(topic, 1)}
    assert _sizes(broker.bootstrap, []) == {}


def test_too_many_partitions_are_refused(broker: InProcessBroker) -> None:
    asked = [{"topic": "t", "partitions": list(range(PARTITIONS_PER_REQUEST_MAX + 1))}]
    with RawClient(broker.bootstrap) as client:
        response = client.request(DESCRIBE_LOG_DIRS, 4, topics=asked)
    assert response.error_code == ErrorCode.invalid_request
    assert response.results == ()


def test_log_dir_is_the_data_dir(broker: InProcessBroker, tmp_path: Path) -> None:
    with RawClient(broker.bootstrap) as client:
        response = client.request(DESCRIBE_LOG_DIRS, 1, topics=None)
    (result,) = response.results
    assert result.log_dir == str(broker.data_dir.resolve())


def _listed(client: RawClient, version: int, types: list[int]) -> set[tuple[int, str]]:
    response = client.request(LIST_CONFIG_RESOURCES, version, resource_types=types)
    assert response.error_code == ErrorCode.none
    return {(r.resource_type, r.resource_name) for r in response.config_resources}


def test_list_config_resources(broker: InProcessBroker) -> None:
    topic = _topic(broker.bootstrap, 1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    with RawClient(broker.bootstrap) as client:
        altered = client.request(
            INCREMENTAL_ALTER_CONFIGS,
            1,
            resources=[
                {
                    "resource_type": 32,
                    "resource_name": group,
                    "configs": [
                        {"name": "consumer.session.timeout.ms", "config_operation": 0,
                         "value": "50000"}
                    ],
                }
            ],
            validate_only=False,
        )  # fmt: skip
        assert altered.responses[0].error_code == ErrorCode.none
        # No types: brokers (as BROKER and BROKER_LOGGER), topics, client metrics (none);
        # groups only when asked for.
        every = _listed(client, 1, [])
        assert {(4, "1"), (8, "1"), (2, topic)} <= every
        assert {t for t, _ in every} == {2, 4, 8}
        assert _listed(client, 1, [32]) == {(32, group)}
        assert _listed(client, 1, [4, 4]) == {(4, "1")}
        assert _listed(client, 1, [16]) == set()
        assert _listed(client, 0, []) == set()  # v0: client metrics only
        refused = client.request(LIST_CONFIG_RESOURCES, 1, resource_types=[1])
        assert refused.error_code == ErrorCode.unsupported_version
        assert refused.config_resources == ()


def test_elect_leaders_answers_as_kafka(broker: InProcessBroker) -> None:
    """Kafka 4.4 answered these same requests with these codes and messages."""
    topic = _topic(broker.bootstrap, 1)
    asked = [{"topic": topic, "partitions": [0, 5]}, {"topic": "nope", "partitions": [0]}]
    with RawClient(broker.bootstrap) as client:
        response = client.request(ELECT_LEADERS, 2, election_type=0, topic_partitions=asked,
                                  timeout=30_000)  # fmt: skip
        assert response.error_code == ErrorCode.none
        answered = {
            (r.topic, p.partition_id): (p.error_code, p.error_message)
            for r in response.replica_election_results
            for p in r.partition_result
        }
        assert answered == {
            (topic, 0): (ErrorCode.election_not_needed, NOT_NEEDED),
            (topic, 5): (ErrorCode.unknown_topic_or_partition, f"No such partition as {topic}-5"),
            ("nope", 0): (ErrorCode.unknown_topic_or_partition, "No such topic as nope"),
        }
        every = client.request(ELECT_LEADERS, 2, election_type=1, topic_partitions=None,
                               timeout=30_000)  # fmt: skip
        assert every.error_code == ErrorCode.none
        assert all(r.partition_result == () for r in every.replica_election_results)
        assert topic in {r.topic for r in every.replica_election_results}
        too_many = [{"topic": topic, "partitions": list(range(PARTITIONS_PER_REQUEST_MAX + 1))}]
        refused = client.request(ELECT_LEADERS, 2, election_type=0, topic_partitions=too_many,
                                 timeout=30_000)  # fmt: skip
        assert refused.error_code == ErrorCode.invalid_request


def test_describe_quorum_only_the_metadata_partition(broker: InProcessBroker) -> None:
    with RawClient(broker.bootstrap) as client:
        quorum = client.request(DESCRIBE_QUORUM, 2, topics=[
            {"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}
        ])  # fmt: skip
        (partition,) = quorum.topics[0].partitions
        assert (partition.error_code, partition.leader_id) == (ErrorCode.none, 1)
        assert [v.replica_id for v in partition.current_voters] == [1]
        assert partition.observers == ()
        assert [n.node_id for n in quorum.nodes] == [1]
        other = client.request(DESCRIBE_QUORUM, 2, topics=[
            {"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 1}]}
        ])  # fmt: skip
        assert other.topics[0].partitions[0].error_code == ErrorCode.unknown_topic_or_partition


def test_authorized_on_the_cluster_as_kafka(tmp_path: Path) -> None:
    """With an authorizer: DescribeLogDirs and DescribeQuorum need DESCRIBE on the
    cluster, ElectLeaders ALTER, ListConfigResources DESCRIBE_CONFIGS,
    AlterPartitionReassignments ALTER and ListPartitionReassignments DESCRIBE; each refused as a
    whole with CLUSTER_AUTHORIZATION_FAILED; the balancer's broker configs DESCRIBE_CONFIGS
    and ALTER_CONFIGS."""
    settings = {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "true",
    }
    running = InProcessBroker(tmp_path / "broker", settings=settings).start()
    try:
        denied = [
            AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL,
                       "User:ANONYMOUS", "*", operation, AclPermissionType.DENY)
            for operation in (
                AclOperation.DESCRIBE, AclOperation.ALTER, AclOperation.DESCRIBE_CONFIGS,
                AclOperation.ALTER_CONFIGS,
            )
        ]  # fmt: skip
        admin = AdminClient({"bootstrap.servers": running.bootstrap})
        for future in admin.create_acls(denied).values():
            future.result(TIMEOUT_S)
        refused = ErrorCode.cluster_authorization_failed
        with RawClient(running.bootstrap) as client:
            log_dirs = client.request(DESCRIBE_LOG_DIRS, 4, topics=None)
            assert (log_dirs.error_code, log_dirs.results) == (refused, ())
            listed = client.request(LIST_CONFIG_RESOURCES, 1, resource_types=[])
            assert (listed.error_code, listed.config_resources) == (refused, ())
            quorum = client.request(DESCRIBE_QUORUM, 2, topics=[
                {"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}
            ])  # fmt: skip
            assert (quorum.error_code, quorum.topics) == (refused, ())
            asked = [{"topic": "t", "partitions": [0, 1]}]
            elected = client.request(ELECT_LEADERS, 2, election_type=0,
                                     topic_partitions=asked, timeout=30_000)  # fmt: skip
            assert elected.error_code == refused
            assert [
                (p.partition_id, p.error_code)
                for p in elected.replica_election_results[0].partition_result
            ] == [(0, refused), (1, refused)]
            moved = client.request(ALTER_REASSIGNMENTS, 1, timeout=30_000, topics=[
                {"name": "t", "partitions": [{"partition_index": 0, "replicas": [1]}]}
            ])  # fmt: skip
            assert moved.error_code == refused
            assert [(p.partition_index, p.error_code) for p in moved.responses[0].partitions] == [
                (0, refused)
            ]
            moves = client.request(LIST_REASSIGNMENTS, 0, timeout=30_000, topics=None)
            assert (moves.error_code, moves.topics) == (refused, ())
            # The balancer's broker configs (`contextplane cluster rebalance | drain`):
            # DESCRIBE_CONFIGS and ALTER_CONFIGS on the cluster, as any BROKER resource.
            load = client.request(DESCRIBE_CONFIGS, 4, resources=[
                {"resource_type": 4, "resource_name": "1",
                 "configuration_keys": ["contextplane.broker.load"]}
            ], include_synonyms=False, include_documentation=False)  # fmt: skip
            assert [(r.error_code, r.configs) for r in load.results] == [(refused, ())]
            drain = client.request(INCREMENTAL_ALTER_CONFIGS, 1, resources=[
                {"resource_type": 4, "resource_name": "1", "configs": [
                    {"name": "contextplane.broker.state", "config_operation": 0,
                     "value": "draining"}
                ]}
            ], validate_only=False)  # fmt: skip
            assert [r.error_code for r in drain.responses] == [refused]
    finally:
        running.stop()
