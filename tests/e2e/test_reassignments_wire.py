"""AlterPartitionReassignments and ListPartitionReassignments on one broker, twinned with
Apache Kafka 4.4 (tests/support/twins.py): the same requests get the same error codes
and messages (a move to the broker itself completes at once; another broker id, an
empty list or a broker named twice is INVALID_REPLICA_ASSIGNMENT; cancelling with no move is
NO_REASSIGNMENT_IN_PROGRESS; unknown topics and partitions UNKNOWN_TOPIC_OR_PARTITION;
nothing is listed). A request naming more partitions than one CreateTopics may create is
refused whole before any store read. Moves between brokers are in
tests/e2e/test_cluster_reassign_tool.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.limits import PARTITIONS_PER_REQUEST_MAX
from contextplane.protocol.error_codes import ErrorCode
from tests.support.inprocess import InProcessBroker
from tests.support.kafka_tools import reassign_partitions as reassign
from tests.support.rawclient import RawClient
from tests.support.twins import kafka_twin, twin_bootstrap

ALTER, LIST = 45, 46
TIMEOUT_S = 30


@pytest.fixture(params=["contextplane", kafka_twin("apache-kafka")])
def bootstrap(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with twin_bootstrap(request.param, tmp_path) as address:
        yield address


def _answers(response: Any) -> dict[tuple[str, int], tuple[int, str | None]]:
    return {
        (t.name, p.partition_index): (p.error_code, p.error_message)
        for t in response.responses
        for p in t.partitions
    }


def test_one_broker_answers_as_kafka(bootstrap: str) -> None:
    topic = f"re-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(TIMEOUT_S)
    node = admin.describe_cluster().result(TIMEOUT_S).nodes[0].id
    other = node + 1
    with RawClient(bootstrap) as client:
        response = client.request(
            ALTER,
            1,
            timeout=TIMEOUT_S * 1000,
            allow_replication_factor_change=True,
            topics=[
                {
                    "name": topic,
                    "partitions": [
                        {"partition_index": 0, "replicas": [node]},
                        {"partition_index": 1, "replicas": [other]},
                        {"partition_index": 2, "replicas": None},
                        {"partition_index": 3, "replicas": []},
                        {"partition_index": 4, "replicas": [node, node]},
                        {"partition_index": 5, "replicas": [node, other]},
                        {"partition_index": 9, "replicas": [node]},
                    ],
                },
                {"name": f"{topic}-nx", "partitions": [{"partition_index": 0, "replicas": [node]}]},
            ],
        )
        listed = client.request(LIST, 0, timeout=TIMEOUT_S * 1000, topics=None)
        named = client.request(
            LIST, 0, timeout=TIMEOUT_S * 1000, topics=[{"name": topic, "partition_indexes": [0]}]
        )
    assert (response.error_code, response.error_message) == (ErrorCode.none, None)
    answers = _answers(response)
    assert answers[(topic, 0)] == (ErrorCode.none, None)
    assert answers[(topic, 1)] == (
        ErrorCode.invalid_replica_assignment,
        f"The manual partition assignment includes broker {other}, but no such broker is"
        " registered.",
    )
    assert answers[(topic, 2)] == (ErrorCode.no_reassignment_in_progress, None)
    assert answers[(topic, 3)] == (
        ErrorCode.invalid_replica_assignment,
        "The manual partition assignment includes an empty replica list.",
    )
    assert answers[(topic, 4)] == (
        ErrorCode.invalid_replica_assignment,
        f"The manual partition assignment includes the broker {node} more than once.",
    )
    assert answers[(topic, 5)] == answers[(topic, 1)]
    assert answers[(topic, 9)] == (
        ErrorCode.unknown_topic_or_partition,
        f"Unable to find partition {topic}:9.",
    )
    assert answers[(f"{topic}-nx", 0)] == (
        ErrorCode.unknown_topic_or_partition,
        f"Unable to find a topic named {topic}-nx.",
    )
    for answer in (listed, named):
        assert (answer.error_code, list(answer.topics)) == (ErrorCode.none, [])


def test_too_many_partitions_are_refused_whole(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "broker").start()
    partitions = [
        {"partition_index": i, "replicas": [1]} for i in range(PARTITIONS_PER_REQUEST_MAX)
    ]
    try:
        with RawClient(broker.bootstrap) as client:
            response = client.request(
                ALTER, 0, timeout=1000, topics=[{"name": "t", "partitions": partitions}]
            )
            listed = client.request(
                LIST,
                0,
                timeout=1000,
                topics=[
                    {"name": "t", "partition_indexes": list(range(PARTITIONS_PER_REQUEST_MAX))}
                ],
            )
    finally:
        broker.stop()
    assert response.error_code == ErrorCode.invalid_request
    assert {p.error_code for t in response.responses for p in t.partitions} == {
        ErrorCode.invalid_request
    }
    assert (listed.error_code, list(listed.topics)) == (ErrorCode.invalid_request, [])


def test_the_tool_on_one_broker_answers_as_kafka(bootstrap: str, tmp_path: Path) -> None:
    """`kafka-reassign-partitions.sh` moving a partition to the broker it is on: started,
    completed at once, nothing listed; one to a broker that does not exist fails."""
    topic = f"re-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)
    node = admin.describe_cluster().result(TIMEOUT_S).nodes[0].id
    here = tmp_path / "here.json"
    here.write_text(
        json.dumps(
            {"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": [node]}]}
        )
    )
    executed = reassign(bootstrap, "--execute", "--reassignment-json-file", str(here))
    assert f"Successfully started partition reassignment for {topic}-0" in executed
    verified = reassign(bootstrap, "--verify", "--reassignment-json-file", str(here))
    assert f"Reassignment of partition {topic}-0 is completed." in verified
    assert "No partition reassignments found." in reassign(bootstrap, "--list")
