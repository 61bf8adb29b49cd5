"""FrameBuffer grows only as bytes arrive and returns only admitted frames; responses
assembled from pre-encoded array elements are byte for byte kio's encoding."""

from __future__ import annotations

import struct
import uuid

import pytest

from contextplane.errors import ProtocolError
from contextplane.protocol.build import build
from contextplane.protocol.codec import (
    FrameBuffer,
    encode_entity,
    encode_response,
    encode_response_with_array,
    response_schema,
)
from contextplane.protocol.error_codes import ErrorCode


def test_frame_buffer_does_not_allocate_a_declared_size() -> None:
    frames = FrameBuffer(100 * 1024 * 1024)
    frames.receive_data(struct.pack(">i", 100 * 1024 * 1024) + b"abc")
    assert frames.next_frame_size() == 100 * 1024 * 1024
    frames.admit_frame()
    assert frames.next_frame() is None
    assert frames.pending_bytes == 7
    assert frames.missing_bytes == 100 * 1024 * 1024 - 3
    assert len(frames._buffer) < 1024  # noqa: SLF001 - the point of the test


def test_frame_buffer_cuts_pipelined_frames_and_rejects_oversize() -> None:
    frames = FrameBuffer(10)
    frames.receive_data(struct.pack(">i", 2) + b"ab" + struct.pack(">i", 3) + b"c")
    assert frames.next_frame() is None  # nothing admitted yet
    assert frames.admit_frame() == 2
    assert frames.next_frame() == b"ab"
    assert frames.admit_frame() == 3
    assert frames.next_frame() is None
    assert frames.incomplete_bytes == 5
    frames.receive_data(memoryview(b"de"))
    assert frames.next_frame() == b"cde"
    assert frames.pending_bytes == 0 and frames.next_frame_size() is None
    frames.receive_data(struct.pack(">i", 11))
    with pytest.raises(ProtocolError, match="socket.request.max.bytes"):
        frames.next_frame_size()


def test_frame_buffer_admits_frames_behind_ones_not_yet_returned() -> None:
    """Admission runs ahead of the reader: every frame is admitted as its size prefix
    arrives, whether or not the frames before it have been taken."""
    frames = FrameBuffer(100)
    data = b"".join(struct.pack(">i", 1) + bytes([i]) for i in range(3))
    frames.receive_data(data)
    assert [frames.admit_frame() for _ in range(3)] == [1, 1, 1]
    assert frames.next_frame_size() is None
    assert frames.frames_ready == 3 and frames.frames_completed == 3
    assert [frames.next_frame() for _ in range(4)] == [b"\x00", b"\x01", b"\x02", None]


def test_frame_buffer_drops_returned_bytes_while_frames_keep_coming() -> None:
    """A client that pipelines without pause never empties the buffer; what was already
    returned must still be dropped, or the buffer grows with every frame ever sent."""
    frames = FrameBuffer(1024)
    frame = struct.pack(">i", 100) + b"x" * 100
    frames.receive_data(frame)
    for _ in range(10_000):
        frames.receive_data(frame)
        frames.admit_frame()
        assert frames.next_frame() == b"x" * 100
        assert len(frames._buffer) <= 4 * len(frame)  # noqa: SLF001 - the point of the test


def _metadata(version: int, topics: int) -> object:
    return build(
        response_schema(3, version),
        throttle_time=0,
        brokers=[{"node_id": 1, "host": "h", "port": 9092, "rack": None}],
        cluster_id="c",
        controller_id=1,
        cluster_authorized_operations=-2147483648,
        topics=[
            {
                "error_code": ErrorCode.none,
                "name": f"t{i}",
                "topic_id": uuid.UUID(int=i + 1),
                "is_internal": False,
                "topic_authorized_operations": -2147483648,
                "partitions": [
                    {
                        "error_code": ErrorCode.none,
                        "partition_index": p,
                        "leader_id": 1,
                        "leader_epoch": 3,
                        "replica_nodes": [1],
                        "isr_nodes": [1],
                        "offline_replicas": [],
                    }
                    for p in range(3)
                ],
            }
            for i in range(topics)
        ],
    )


@pytest.mark.parametrize("version", range(13))
@pytest.mark.parametrize("topics", [0, 1, 3])
def test_response_with_pre_encoded_array_equals_kio(version: int, topics: int) -> None:
    body = _metadata(version, topics)
    whole = encode_response(3, version, 77, body)
    items = b"".join(encode_entity(t) for t in body.topics)  # type: ignore[attr-defined]
    parts = encode_response_with_array(3, 77, body, "topics", items, topics)
    assert b"".join(parts) == whole


def test_a_buffer_that_never_empties_stays_near_what_it_holds() -> None:
    """A client that pipelines without pause keeps the buffer from ever emptying: the
    bytes of returned frames are dropped often enough, and their memory given back, that
    the allocation stays within 1.5 times the bytes not yet returned (it reached twice
    that when the returned prefix was dropped only at half the buffer, in place)."""
    import sys

    size = 100_000
    frame = struct.pack(">i", size) + bytes(size)
    frames = FrameBuffer(10 * size)
    pending = 40
    for _ in range(pending):
        frames.receive_data(frame)
        frames.admit_frame()
    largest = 0
    for _ in range(400):
        frames.receive_data(frame)
        frames.admit_frame()
        assert frames.next_frame() == bytes(size)
        largest = max(largest, sys.getsizeof(frames._buffer))  # noqa: SLF001 - its allocation
    assert frames.pending_bytes == pending * len(frame)
    assert largest <= 1.5 * frames.pending_bytes, largest / frames.pending_bytes
