"""The hand-written Produce response encoder writes exactly kio's bytes, for every version
the broker serves."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contextplane.protocol.build import build
from contextplane.protocol.codec import encode_response, response_schema
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.produce_response import encode_produce_response

PRODUCE = 0
VERSIONS = range(3, 14)  # as broker/app.py's ROUTES serve Produce

int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
text = st.one_of(st.none(), st.text(max_size=12))
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
    }
)
topic = st.fixed_dictionaries(
    {
        "name": st.text(max_size=12),  # v3-v12
        "topic_id": st.uuids(),  # v13
        "partition_responses": st.lists(partition, max_size=4),
    }
)


def _kio(version: int, correlation_id: int, throttle: int, topics: list[dict[str, Any]]) -> bytes:
    body = build(
        response_schema(PRODUCE, version),
        None,
        throttle_time=throttle,
        responses=topics,
        node_endpoints=[],
    )
    return encode_response(PRODUCE, version, correlation_id, body)


@settings(max_examples=400, deadline=None)
@given(
    version=st.sampled_from(VERSIONS),
    correlation_id=int32,
    throttle=st.integers(0, 2**31 - 1),
    topics=st.lists(topic, max_size=3),
)
def test_bytes_equal_kio(
    version: int, correlation_id: int, throttle: int, topics: list[dict[str, Any]]
) -> None:
    parts = encode_produce_response(version, correlation_id, throttle, topics)
    assert b"".join(parts) == _kio(version, correlation_id, throttle, topics)
