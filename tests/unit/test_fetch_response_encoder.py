"""The hand-written Fetch response encoder writes exactly kio's bytes, for every version
the broker serves, with records given as one buffer or as chunks."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

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
    }
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
        "node_endpoints": [],
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
)
def test_bytes_equal_kio(
    version: int,
    correlation_id: int,
    throttle: int,
    error_code: ErrorCode,
    session_id: int,
    topics: list[dict[str, Any]],
) -> None:
    values = {
        "throttle_time": throttle,
        "error_code": error_code,
        "session_id": session_id,
        "responses": topics,
    }
    parts = encode_fetch_response(version, correlation_id, throttle, error_code, session_id, topics)
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
