"""The Produce response, written by hand.

Every acknowledged produce request is answered on the event loop, and kio's writer
(building a response entity of frozen dataclasses, then walking its schema) was ~7 % of
the loop's busy time at 2,000 requests a second. The bytes are exactly kio's for every
version the broker serves, v3–v13 (a property test compares them); kio stays the
reference and encodes every other response. From v10 a NOT_LEADER_OR_FOLLOWER partition
may name its current leader, and the response that leader's endpoint (KIP-951,
protocol/leader_tags.py).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from typing import Any

from contextplane.protocol.encoded import Encoded, encoded
from contextplane.protocol.leader_tags import (
    NO_TAGGED_FIELDS,
    current_leader,
    node_endpoints,
    tagged_fields,
)
from contextplane.protocol.offsets_records import uvarint

FLEXIBLE_FROM = 9  # ProduceResponse v9+: compact arrays, tagged fields, header v1
CURRENT_LEADER_FROM = 10  # CurrentLeader (partition tag 0), NodeEndpoints (tag 0): KIP-951
TOPIC_IDS_FROM = 13  # v13 names topics by id (KIP-516)
_PARTITION = struct.Struct(">ihqq")  # index, error, base offset, log append time
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")


def _string(out: bytearray, value: str | None, flexible: bool) -> None:
    if value is None:
        out += b"\x00" if flexible else b"\xff\xff"
        return
    data = value.encode()
    out += uvarint(len(data) + 1) if flexible else _INT16.pack(len(data))
    out += data


def _length(out: bytearray, count: int, flexible: bool) -> None:
    out += uvarint(count + 1) if flexible else _INT32.pack(count)


def encode_produce_response(
    version: int,
    correlation_id: int,
    throttle_ms: int,
    topics: Sequence[dict[str, Any]],
    endpoints: Sequence[dict[str, Any]] = (),
) -> Encoded:
    """The response frame (size prefix included), for Produce v3–v13, with its error
    codes counted as Kafka's ProduceResponse.errorCounts() (each partition's).

    `topics` are the handler's plain values: `name` (v3–v12) or `topic_id` (a UUID,
    v13) and `partition_responses`, each with
    `index`, `error_code`, `base_offset`, `log_append_time` (-1: none),
    `log_start_offset`, `record_errors` (dicts of `batch_index` and
    `batch_index_error_message`), `error_message` and, optionally, `current_leader`
    (`leader_id`, `leader_epoch`). `endpoints` are the NodeEndpoints (`node_id`, `host`,
    `port`, `rack`).
    """
    flexible = version >= FLEXIBLE_FROM
    leaders = version >= CURRENT_LEADER_FROM
    counts: dict[int, int] = {}  # error code -> partitions
    out = bytearray(b"\x00\x00\x00\x00")
    out += _INT32.pack(correlation_id)
    if flexible:
        out += b"\x00"  # response header v1: no tagged fields
    _length(out, len(topics), flexible)
    for topic in topics:
        if version >= TOPIC_IDS_FROM:
            topic_id = topic["topic_id"]
            out += topic_id.bytes if isinstance(topic_id, uuid.UUID) else bytes(16)
        else:
            _string(out, topic["name"], flexible)
        partitions = topic["partition_responses"]
        _length(out, len(partitions), flexible)
        for partition in partitions:
            code = partition["error_code"]
            counts[code] = counts.get(code, 0) + 1
            out += _PARTITION.pack(
                partition["index"],
                code,
                partition["base_offset"],
                partition["log_append_time"],
            )
            if version >= 5:
                out += _INT64.pack(partition["log_start_offset"])
            if version >= 8:
                errors = partition["record_errors"]
                _length(out, len(errors), flexible)
                for error in errors:
                    out += _INT32.pack(error["batch_index"])
                    _string(out, error["batch_index_error_message"], flexible)
                    if flexible:
                        out += b"\x00"
                _string(out, partition["error_message"], flexible)
            if leaders and "current_leader" in partition:
                out += tagged_fields(current_leader(0, partition["current_leader"]))
            elif flexible:
                out += NO_TAGGED_FIELDS
        if flexible:
            out += b"\x00"  # the topic's tagged fields
    out += _INT32.pack(throttle_ms)
    if leaders and endpoints:
        out += tagged_fields(node_endpoints(0, endpoints))
    elif flexible:
        out += NO_TAGGED_FIELDS
    _INT32.pack_into(out, 0, len(out) - 4)
    return encoded([bytes(out)], counts, throttle_ms)
