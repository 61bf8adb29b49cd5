"""The hand-written Fetch response encoder writes exactly kio's bytes, for every version
the broker serves, with records given as one buffer or as chunks, with and without a
current leader (v12+) and node endpoints (v16+) (KIP-951); kio reads them back."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kio.serial import entity_reader

from contextplane.protocol.build import build
from contextplane.protocol.codec import encode_response, response_schema
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.fetch_response import encode_fetch_response

FETCH = 1
VERSIONS = range(4, 19)  # as broker/app.py's ROUTES serve Fetch

int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
chunks = st.lists(st.binary(min_size=0, max_size=40), max_size=4)
records = st.one_of(st.none(), st.binary(max_size=60), chunks)
aborted = st.one_of(
    st.none(),
    st.lists(st.fixed_dictionaries({"producer_id": int64, "first_offset": int64}), max_size=3),
)
leader = st.one_of(
    st.just({"leader_id": -1, "leader_epoch": -1}),  # none: the tag's default, not written
    st.fixed_dictionaries({"leader_id": int32, "leader_epoch": int32}),
)
endpoint = st.fixed_dictionaries(
    {
        "node_id": int32,
        "host": st.text(max_size=12),
        "port": int32,
        "rack": st.one_of(st.none(), st.text(max_size=12)),
    }
)
partition = st.fixed_dictionaries(
    {
        "partition_index": int32,
        "error_code": st.sampled_from(list(ErrorCode)),
        "high_watermark": int64,
        "last_stable_offset": int64,
        "log_start_offset": int64,
        "aborted_transactions": aborted,
        "preferred_read_replica": int32,
        "records": records,
    },
    optional={"current_leader": leader},
)
topic = st.fixed_dictionaries(
    {
        "topic": st.text(max_size=12),
        "topic_id": st.uuids(),
        "partitions": st.lists(partition, max_size=4),
    }
)


def _joined(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return b"".join(value)


def _kio(version: int, correlation_id: int, values: dict[str, Any]) -> bytes:
    plain = {
        **values,
        "responses": [
            {
                **t,
                "partitions": [{**p, "records": _joined(p["records"])} for p in t["partitions"]],
            }
            for t in values["responses"]
        ],
        "node_endpoints": values.get("node_endpoints", []),
    }
    body = build(response_schema(FETCH, version), plain)
    return encode_response(FETCH, version, correlation_id, body)


@settings(max_examples=400, deadline=None)
@given(
    version=st.sampled_from(VERSIONS),
    correlation_id=int32,
    throttle=st.integers(0, 2**31 - 1),
    error_code=st.sampled_from([ErrorCode.none, ErrorCode.fetch_session_id_not_found]),
    session_id=int32,
    topics=st.lists(topic, max_size=3),
    endpoints=st.lists(endpoint, max_size=3),
)
def test_bytes_equal_kio(
    version: int,
    correlation_id: int,
    throttle: int,
    error_code: ErrorCode,
    session_id: int,
    topics: list[dict[str, Any]],
    endpoints: list[dict[str, Any]],
) -> None:
    values = {
        "throttle_time": throttle,
        "error_code": error_code,
        "session_id": session_id,
        "responses": topics,
        "node_endpoints": endpoints,
    }
    parts = encode_fetch_response(
        version, correlation_id, throttle, error_code, session_id, topics, endpoints
    )
    assert b"".join(parts) == _kio(version, correlation_id, values)


def test_record_chunks_are_written_as_they_are() -> None:
    """The record views themselves are frame parts (no copy into a response buffer)."""
    data = memoryview(bytearray(b"x" * 1000))
    parts = encode_fetch_response(
        16,
        7,
        0,
        0,
        0,
        [
            {
                "topic": "t",
                "topic_id": uuid.uuid4(),
                "partitions": [
                    {
                        "partition_index": 0,
                        "error_code": 0,
                        "high_watermark": 10,
                        "last_stable_offset": 10,
                        "log_start_offset": 0,
                        "aborted_transactions": None,
                        "preferred_read_replica": -1,
                        "records": [data[:600], data[600:]],
                    }
                ],
            }
        ],
    )
    assert any(part.obj is data.obj for part in parts if isinstance(part, memoryview))
    assert sum(len(p) for p in parts) - 4 == int.from_bytes(bytes(parts[0][:4]), "big")


def _not_leader(leader: dict[str, int]) -> dict[str, Any]:
    return {
        "topic": "t",
        "topic_id": uuid.UUID(int=1),
        "partitions": [
            {
                "partition_index": 3,
                "error_code": ErrorCode.not_leader_or_follower,
                "high_watermark": -1,
                "last_stable_offset": -1,
                "log_start_offset": -1,
                "aborted_transactions": None,
                "preferred_read_replica": -1,
                "records": b"",
                "current_leader": leader,
            }
        ],
    }


def test_kio_reads_the_leader_back_at_each_version_boundary() -> None:
    """Before v12 neither field exists; v12-v15 carry the partition's CurrentLeader
    (tag 1); from v16 the response's NodeEndpoints too."""
    endpoints = [{"node_id": 2, "host": "broker-2", "port": 9093, "rack": None}]
    for version in (11, 12, 15, 16, 18):
        frame = b"".join(
            bytes(part)
            for part in encode_fetch_response(
                version, 5, 0, 0, 0, [_not_leader({"leader_id": 2, "leader_epoch": 7})], endpoints
            )
        )
        schema = response_schema(FETCH, version)
        position = 8 + (version >= 12)  # size, correlation id, header v1's tagged fields
        body, read = entity_reader(schema)(frame, position)
        assert position + read == len(frame)  # kio read the whole body
        partition = body.responses[0].partitions[0]
        assert partition.error_code == ErrorCode.not_leader_or_follower
        if version < 12:
            assert not hasattr(partition, "current_leader")
        else:
            leader = partition.current_leader
            assert (leader.leader_id, leader.leader_epoch) == (2, 7)
        if version < 16:
            assert not hasattr(body, "node_endpoints")
        else:
            assert [(e.node_id, e.host, e.port, e.rack) for e in body.node_endpoints] == [
                (2, "broker-2", 9093, None)
            ]


def test_no_leader_to_name_writes_what_it_wrote_before() -> None:
    """(-1, -1) and no endpoints: the bytes of a response without the fields."""
    for version in range(12, 19):
        named = _not_leader({"leader_id": -1, "leader_epoch": -1})
        without = _not_leader({"leader_id": -1, "leader_epoch": -1})
        del without["partitions"][0]["current_leader"]
        assert encode_fetch_response(version, 5, 0, 0, 0, [named], []) == encode_fetch_response(
            version, 5, 0, 0, 0, [without]
        )
