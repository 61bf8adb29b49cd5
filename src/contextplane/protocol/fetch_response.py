"""The Fetch response, written by hand as frame parts.

A catch-up response is mostly record bytes that are already in memory (log cache
entries, object spans). kio's writer copies them into one buffer, and the connection
copied that again; here they stay the views they are, between small buffers holding
everything else, and the transport writes the parts with one `writelines`. The bytes are
exactly kio's for every version the broker serves (a property test compares them), so
kio stays the reference and encodes every other response. A partition may name its
current leader (v12+) and the response the leaders' endpoints (v16+), as KIP-951 has
them (protocol/leader_tags.py).
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

Chunk = bytes | bytearray | memoryview

FLEXIBLE_FROM = 12  # FetchResponse v12+: compact arrays, tagged fields, header v1
TOPIC_IDS_FROM = 13  # names replaced by topic ids
NODE_ENDPOINTS_FROM = 16  # the response's NodeEndpoints (tag 0)
_PARTITION_V4 = struct.Struct(">ihqq")  # index, error, high watermark, last stable
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
_HEADER_V7 = struct.Struct(">iihi")  # correlation id, throttle, error, session id
_HEADER_V4 = struct.Struct(">ii")  # correlation id, throttle
_ABORTED = struct.Struct(">qq")


def records_size(records: Chunk | Sequence[Chunk] | None) -> int:
    """A partition's record bytes, one buffer or chunks; -1 for null records."""
    if records is None:
        return -1
    if isinstance(records, bytes | bytearray | memoryview):
        return len(records)
    return sum(len(chunk) for chunk in records)


def encode_fetch_response(
    version: int,
    correlation_id: int,
    throttle_ms: int,
    error_code: int,
    session_id: int,
    topics: Sequence[dict[str, Any]],
    endpoints: Sequence[dict[str, Any]] = (),
) -> Encoded:
    """The response frame (size prefix included) as parts, for Fetch v4 and later, with
    its error codes counted as Kafka's FetchResponse.errorCounts() (the top-level code,
    NONE before v7, and each partition's).

    `topics` are the handler's plain values: `topic` / `topic_id` and `partitions`, each
    with `partition_index`, `error_code`, `high_watermark`, `last_stable_offset`,
    `log_start_offset`, `aborted_transactions` (None or dicts of `producer_id` and
    `first_offset`), `preferred_read_replica`, `records` (None, bytes, or a list of
    chunks written as they are) and, optionally, `current_leader` (`leader_id`,
    `leader_epoch`). `endpoints` are the NodeEndpoints (`node_id`, `host`, `port`, `rack`).
    """
    flexible = version >= FLEXIBLE_FROM
    parts: list[Chunk] = []
    errors = {int(error_code): 1}
    out = bytearray(b"\x00\x00\x00\x00")
    if version >= 7:
        out += _HEADER_V7.pack(correlation_id, throttle_ms, error_code, session_id)
    else:
        out += _HEADER_V4.pack(correlation_id, throttle_ms)
    if flexible:
        out[8:8] = b"\x00"  # response header v1: no tagged fields, after the correlation id
        out += uvarint(len(topics) + 1)
    else:
        out += _INT32.pack(len(topics))
    for topic in topics:
        if version >= TOPIC_IDS_FROM:
            topic_id = topic["topic_id"]
            out += topic_id.bytes if isinstance(topic_id, uuid.UUID) else bytes(16)
        else:
            name = topic["topic"].encode()
            out += uvarint(len(name) + 1) if flexible else struct.pack(">h", len(name))
            out += name
        partitions = topic["partitions"]
        out += uvarint(len(partitions) + 1) if flexible else _INT32.pack(len(partitions))
        for partition in partitions:
            code = partition["error_code"]
            errors[code] = errors.get(code, 0) + 1
            out += _PARTITION_V4.pack(
                partition["partition_index"],
                code,
                partition["high_watermark"],
                partition["last_stable_offset"],
            )
            if version >= 5:
                out += _INT64.pack(partition["log_start_offset"])
            aborted = partition["aborted_transactions"]
            if aborted is None:
                out += b"\x00" if flexible else b"\xff\xff\xff\xff"
            else:
                out += uvarint(len(aborted) + 1) if flexible else _INT32.pack(len(aborted))
                for entry in aborted:
                    out += _ABORTED.pack(entry["producer_id"], entry["first_offset"])
                    if flexible:
                        out += b"\x00"
            if version >= 11:
                out += _INT32.pack(partition["preferred_read_replica"])
            records = partition["records"]
            size = records_size(records)
            out += uvarint(size + 1) if flexible else _INT32.pack(size)
            if size > 0:
                parts.append(out)
                if isinstance(records, bytes | bytearray | memoryview):
                    parts.append(records)
                else:
                    parts.extend(chunk for chunk in records if len(chunk))
                out = bytearray()
            if flexible and "current_leader" in partition:  # tag 1 (0, 2: for followers)
                out += tagged_fields(current_leader(1, partition["current_leader"]))
            elif flexible:
                out += NO_TAGGED_FIELDS
        if flexible:
            out += b"\x00"  # the topic's tagged fields
    if version >= NODE_ENDPOINTS_FROM and endpoints:
        out += tagged_fields(node_endpoints(0, endpoints))
    elif flexible:
        out += NO_TAGGED_FIELDS
    parts.append(out)
    frame_size = sum(len(part) for part in parts) - 4
    first = parts[0]
    assert isinstance(first, bytearray)
    _INT32.pack_into(first, 0, frame_size)
    return encoded(parts, errors, throttle_ms)
