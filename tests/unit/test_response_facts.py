"""Kafka's RequestMetrics ErrorsPerSec and ThrottleTimeMs as a response gives them
(broker/response_facts.py, protocol/encoded.py): every error code of a response counted
as Kafka's `errorCounts()` counts it, NONE included, with Kafka's exceptions; the counts
summed per request type and error and exported under the JMX exporter's name."""

from __future__ import annotations

import uuid

from contextplane.broker.response_facts import entity_errors, entity_throttle_ms, response_facts
from contextplane.broker.stats import BrokerStats, TopicCounters
from contextplane.console.metrics import Snapshot, error_name, families
from contextplane.protocol.build import build
from contextplane.protocol.codec import response_schema
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.fetch_response import encode_fetch_response
from contextplane.protocol.produce_response import encode_produce_response

NONE = ErrorCode.none
UNKNOWN = ErrorCode.unknown_topic_or_partition
NOT_LEADER = ErrorCode.not_leader_or_follower


def _response(api_key: int, version: int, **values: object) -> object:
    return build(response_schema(api_key, version), None, **values)


def test_metadata_counts_topics_and_partitions_not_its_top_level_code() -> None:
    partition = {"partition_index": 0, "leader_id": 1, "replica_nodes": [1], "isr_nodes": [1]}
    body = _response(
        3,
        13,
        error_code=ErrorCode.cluster_authorization_failed,  # not in Kafka's errorCounts()
        throttle_time=25,
        topics=[
            {"name": "a", "error_code": NONE, "partitions": [partition, partition]},
            {"name": "b", "error_code": UNKNOWN, "partitions": []},
        ],
    )
    assert entity_errors(3, body) == {NONE: 3, UNKNOWN: 1}
    assert entity_throttle_ms(body) == 25


def test_nested_codes_are_counted_with_the_top_level_one() -> None:
    # LeaveGroup v3+: the top-level code and each member's, as Kafka's LeaveGroupResponse.
    body = _response(
        13,
        4,
        error_code=NONE,
        members=[
            {"member_id": "m1", "error_code": ErrorCode.unknown_member_id},
            {"member_id": "m2", "error_code": NONE},
        ],
    )
    assert entity_errors(13, body) == {NONE: 2, ErrorCode.unknown_member_id: 1}
    assert entity_throttle_ms(body) == 0


def test_delete_acls_counts_its_filter_results_not_their_acls() -> None:
    acl = {
        "error_code": NONE,
        "resource_type": 2,
        "resource_name": "t",
        "pattern_type": 3,
        "principal": "User:a",
        "host": "*",
        "operation": 3,
        "permission_type": 3,
    }
    body = _response(
        31,
        3,
        filter_results=[
            {"error_code": NONE, "matching_acls": [acl, acl, acl]},
            {"error_code": ErrorCode.security_disabled, "matching_acls": []},
        ],
    )
    assert entity_errors(31, body) == {NONE: 1, ErrorCode.security_disabled: 1}


def test_hand_encoded_responses_carry_their_counts() -> None:
    produced = {
        "index": 0,
        "error_code": NONE,
        "base_offset": 0,
        "log_append_time": -1,
        "log_start_offset": 0,
        "record_errors": [],
        "error_message": None,
    }
    frame = encode_produce_response(
        9,
        1,
        40,
        [{"name": "t", "partition_responses": [produced, dict(produced, error_code=UNKNOWN)]}],
    )
    assert response_facts(0, frame) == ({NONE: 1, UNKNOWN: 1}, 40)
    fetched = {
        "partition_index": 0,
        "error_code": NOT_LEADER,
        "high_watermark": 0,
        "last_stable_offset": 0,
        "log_start_offset": 0,
        "aborted_transactions": None,
        "preferred_read_replica": -1,
        "records": None,
    }
    parts = encode_fetch_response(
        13, 1, 0, NONE, 0, [{"topic_id": uuid.uuid4(), "partitions": [fetched]}]
    )
    # Fetch: the top-level code and each partition's.
    assert response_facts(1, parts) == ({NONE: 1, NOT_LEADER: 1}, 0)


def test_errors_are_exported_by_request_and_kafka_error_name() -> None:
    stats = BrokerStats()
    stats.request_done(0, 10, 0, 0, 0, 0, 0, 0, 0, {NONE: 2, UNKNOWN: 1})
    stats.request_done(0, 10, 0, 0, 0, 0, 0, 0, 0, {UNKNOWN: 1})
    stats.request_done(0, 10, 0, 0, 0, 0, 0, 0)  # acks=0: no response, nothing counted
    snapshot = Snapshot(
        brokers=1,
        partitions=[],
        all_topics=TopicCounters(),
        topics={},
        requests={},
        errors={("Produce", error_name(e)): n for (_, e), n in stats.errors.items()},
    )
    (family,) = [f for f in families(snapshot) if f.name == "kafka_network_requestmetrics_errors"]
    assert {(s.name, s.labels["error"], s.value) for s in family.samples} == {
        ("kafka_network_requestmetrics_errors_total", "NONE", 2),
        ("kafka_network_requestmetrics_errors_total", "UNKNOWN_TOPIC_OR_PARTITION", 2),
    }
    assert error_name(NOT_LEADER) == "NOT_LEADER_OR_FOLLOWER"
    assert error_name(32_000) == "32000"
