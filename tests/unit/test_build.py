"""The version-tolerant entity builder used for every response."""

from __future__ import annotations

import io

from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer

from contextplane.protocol.build import build
from contextplane.protocol.codec import response_schema


def round_trip(entity: object) -> object:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return entity_reader(type(entity))(buffer.getvalue(), 0)[0]


def test_fields_missing_from_a_version_are_dropped_and_nested_dicts_built() -> None:
    values = {
        "throttle_time": 0,
        "brokers": [{"node_id": 1, "host": "h", "port": 1, "rack": None}],
        "cluster_id": "c",
        "controller_id": 1,
        "topics": [
            {
                "error_code": ErrorCode.none,
                "name": "t",
                "is_internal": False,
                "partitions": [
                    {
                        "error_code": ErrorCode.none,
                        "partition_index": 0,
                        "leader_id": 1,
                        "leader_epoch": 3,
                        "replica_nodes": [1],
                        "isr_nodes": [1],
                        "offline_replicas": [],
                    }
                ],
            }
        ],
    }
    old = build(response_schema(3, 1), values)
    new = build(response_schema(3, 12), values)
    assert not hasattr(old.topics[0].partitions[0], "leader_epoch")
    assert new.topics[0].partitions[0].leader_epoch == 3
    assert round_trip(new) == new


def test_optional_arrays_of_entities_are_built() -> None:
    response = build(
        response_schema(19, 7),
        throttle_time=0,
        topics=[
            {
                "name": "t",
                "error_code": ErrorCode.none,
                "num_partitions": 1,
                "replication_factor": 1,
                "configs": [
                    {
                        "name": "retention.ms",
                        "value": "1",
                        "read_only": False,
                        "config_source": 1,
                        "is_sensitive": False,
                    }
                ],
            }
        ],
    )
    assert response.topics[0].configs[0].name == "retention.ms"
    assert round_trip(response) == response


def test_minus_one_timestamp_becomes_null() -> None:
    response = build(
        response_schema(0, 9),
        throttle_time=0,
        responses=[
            {
                "name": "t",
                "partition_responses": [
                    {
                        "index": 0,
                        "error_code": ErrorCode.none,
                        "base_offset": 5,
                        "log_append_time": -1,
                        "log_start_offset": 0,
                        "record_errors": [],
                        "error_message": None,
                    }
                ],
            }
        ],
    )
    assert response.responses[0].partition_responses[0].log_append_time is None
    assert round_trip(response) == response
