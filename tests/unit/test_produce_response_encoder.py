"""The hand-written Produce response encoder writes exactly kio's bytes, for every version
the broker serves, with and without a current leader and node endpoints (KIP-951, v10+);
kio reads them back."""

from __future__ import annotations

import struct
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kio.serial import entity_reader

from contextplane.protocol.build import build
from contextplane.protocol.codec import encode_response, response_schema
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.produce_response import encode_produce_response

PRODUCE = 0
VERSIONS = range(3, 14)  # as broker/app.py's ROUTES serve Produce

int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
text = st.one_of(st.none(), st.text(max_size=12))
leader = st.one_of(
    st.just({"leader_id": -1, "leader_epoch": -1}),  # none: the tag's default, not written
    st.fixed_dictionaries({"leader_id": int32, "leader_epoch": int32}),
)
endpoint = st.fixed_dictionaries(
    {"node_id": int32, "host": st.text(max_size=12), "port": int32, "rack": text}
)
partition = st.fixed_dictionaries(
    {
        "index": int32,
        "error_code": st.sampled_from(list(ErrorCode)),
        "base_offset": int64,
        "log_append_time": st.one_of(st.just(-1), st.integers(0, 2**41)),
        "log_start_offset": int64,
        "record_errors": st.lists(
            st.fixed_dictionaries({"batch_index": int32, "batch_index_error_message": text}),
            max_size=3,
        ),
        "error_message": text,
    },
    optional={"current_leader": leader},
)
topic = st.fixed_dictionaries(
    {
        "name": st.text(max_size=12),  # v3-v12
        "topic_id": st.uuids(),  # v13
        "partition_responses": st.lists(partition, max_size=4),
    }
)


def _kio(
    version: int,
    correlation_id: int,
    throttle: int,
    topics: list[dict[str, Any]],
    endpoints: list[dict[str, Any]],
) -> bytes:
    body = build(
        response_schema(PRODUCE, version),
        None,
        throttle_time=throttle,
        responses=topics,
        node_endpoints=endpoints,
    )
    return encode_response(PRODUCE, version, correlation_id, body)


@settings(max_examples=400, deadline=None)
@given(
    version=st.sampled_from(VERSIONS),
    correlation_id=int32,
    throttle=st.integers(0, 2**31 - 1),
    topics=st.lists(topic, max_size=3),
    endpoints=st.lists(endpoint, max_size=3),
)
def test_bytes_equal_kio(
    version: int,
    correlation_id: int,
    throttle: int,
    topics: list[dict[str, Any]],
    endpoints: list[dict[str, Any]],
) -> None:
    parts = encode_produce_response(version, correlation_id, throttle, topics, endpoints)
    assert b"".join(parts) == _kio(version, correlation_id, throttle, topics, endpoints)


def _not_leader(leader: dict[str, int]) -> dict[str, Any]:
    return {
        "name": "t",
        "topic_id": None,
        "partition_responses": [
            {
                "index": 3,
                "error_code": ErrorCode.not_leader_or_follower,
                "base_offset": -1,
                "log_append_time": -1,
                "log_start_offset": -1,
                "record_errors": [],
                "error_message": "led by node 2",
                "current_leader": leader,
            }
        ],
    }


def _read(version: int, frame: bytes) -> Any:
    """kio's reading of a response frame (size prefix included)."""
    assert struct.unpack_from(">i", frame)[0] == len(frame) - 4
    position = 8 + (version >= 9)  # size, correlation id, header v1's tagged fields
    body, read = entity_reader(response_schema(PRODUCE, version))(frame, position)
    assert position + read == len(frame)  # kio read the whole body
    return body


def test_kio_reads_the_leader_from_v10_on() -> None:
    """At each version boundary: before v10 the fields do not exist and nothing is
    written; from v10 kio reads the leader and its endpoint back."""
    endpoints = [{"node_id": 2, "host": "broker-2", "port": 9093, "rack": "b"}]
    named = {"leader_id": 2, "leader_epoch": 7}
    for version in (8, 9, 10, 11, 12, 13):
        topic = _not_leader(named)
        if version >= 13:
            topic["topic_id"] = uuid.UUID(int=1)
        frame = b"".join(encode_produce_response(version, 5, 0, [topic], endpoints))
        body = _read(version, frame)
        partition = body.responses[0].partition_responses[0]
        assert partition.error_code == ErrorCode.not_leader_or_follower
        if version < 10:
            assert not hasattr(partition, "current_leader")
            assert not hasattr(body, "node_endpoints")
            continue
        assert (partition.current_leader.leader_id, partition.current_leader.leader_epoch) == (2, 7)
        assert [(e.node_id, e.host, e.port, e.rack) for e in body.node_endpoints] == [
            (2, "broker-2", 9093, "b")
        ]


def test_no_leader_to_name_writes_what_it_wrote_before() -> None:
    """(-1, -1) and no endpoints: the bytes of a response without the fields."""
    for version in range(10, 14):
        topic = _not_leader({"leader_id": -1, "leader_epoch": -1})
        without = _not_leader({"leader_id": -1, "leader_epoch": -1})
        del without["partition_responses"][0]["current_leader"]
        for t in (topic, without):
            t["topic_id"] = uuid.UUID(int=1)
        assert encode_produce_response(version, 5, 0, [topic], []) == encode_produce_response(
            version, 5, 0, [without]
        )
