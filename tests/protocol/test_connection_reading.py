"""The sans-I/O connection's reading side in the style of h11's tests: every client frame
fed whole, one byte at a time, with the next frame's first bytes trailing, and a client's
frames pipelined in chunks of every size; the request decoder on every truncation of a
frame. The frames are the golden ones real clients sent (golden_table.py)."""

from __future__ import annotations

import struct

import pytest

from contextplane.errors import ProtocolError
from contextplane.protocol.build import build
from contextplane.protocol.codec import Request, decode_request, response_schema
from contextplane.protocol.connection import (
    NEED_DATA,
    NO_MORE_REQUESTS,
    ConnectionEvent,
    ServerConnection,
    UnsupportedRequest,
)
from contextplane.protocol.connection_state import LocalProtocolError, State
from contextplane.protocol.error_codes import ErrorCode

from .golden_table import GOLDEN, Golden, by_client

FRAME_BYTES_MAX = 1 << 20
golden_ids = pytest.mark.parametrize("golden", GOLDEN, ids=lambda golden: golden.stem)


def admit_all(conn: ServerConnection) -> None:
    """What the server does as bytes arrive: admit every frame whose size is known."""
    while conn.next_frame_size() is not None:
        conn.admit_frame()


def events_until_need_data(conn: ServerConnection) -> list[ConnectionEvent]:
    events: list[ConnectionEvent] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
        if event is NO_MORE_REQUESTS:
            break
    return events


def feed(conn: ServerConnection, data: bytes, chunk: int) -> list[ConnectionEvent]:
    """Feed `data` in pieces of `chunk` bytes, taking every event after each piece."""
    events: list[ConnectionEvent] = []
    for start in range(0, len(data), chunk):
        conn.receive_data(data[start : start + chunk])
        admit_all(conn)
        events += events_until_need_data(conn)
    return events


def expected_request(golden: Golden) -> Request:
    return decode_request(golden.frame()[4:])


# -- one frame -----------------------------------------------------------------------------


@golden_ids
def test_whole_frame_gives_its_request_then_need_data(golden: Golden) -> None:
    conn = ServerConnection(FRAME_BYTES_MAX)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(golden.frame())
    assert conn.next_event() is NEED_DATA  # not admitted yet: never decoded
    assert conn.admit_frame() == len(golden.frame()) - 4
    assert conn.frames_ready == 1
    assert conn.next_event() == expected_request(golden)
    assert conn.next_event() is NEED_DATA
    assert conn.pending_bytes == 0 and conn.responses_owed == 1


@golden_ids
def test_frame_one_byte_at_a_time(golden: Golden) -> None:
    frame = golden.frame()
    conn = ServerConnection(FRAME_BYTES_MAX)
    for i, byte in enumerate(frame[:-1]):
        conn.receive_data(bytes([byte]))
        received = i + 1
        if received < 4:
            assert conn.next_frame_size() is None
        elif received == 4:
            assert conn.admit_frame() == len(frame) - 4
        assert conn.next_event() is NEED_DATA, f"a request after {received} bytes"
        assert conn.pending_bytes == received
        if received >= 4:
            assert conn.missing_bytes == len(frame) - received
            assert conn.incomplete_bytes == received
    conn.receive_data(frame[-1:])
    assert conn.frames_ready == 1 and conn.missing_bytes == 0
    assert conn.next_event() == expected_request(golden)
    assert conn.next_event() is NEED_DATA


@golden_ids
def test_frame_with_the_next_frames_first_bytes_trailing(golden: Golden) -> None:
    frame = golden.frame()
    following = GOLDEN[(GOLDEN.index(golden) + 1) % len(GOLDEN)]
    after = following.frame()
    for trailing in sorted({1, 3, 4, 5, 14, len(after) - 1}):
        conn = ServerConnection(FRAME_BYTES_MAX)
        conn.receive_data(frame + after[:trailing])
        admit_all(conn)
        assert events_until_need_data(conn) == [expected_request(golden)], trailing
        # The trailing bytes are kept, whole, for the next request.
        assert conn.pending_bytes == trailing == conn.incomplete_bytes
        assert conn.frames_ready == 0
        conn.receive_data(after[trailing:])
        admit_all(conn)
        assert events_until_need_data(conn) == [expected_request(following)], trailing
        assert conn.pending_bytes == 0


# -- a client's frames pipelined -----------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 7, 64, 1 << 20])
@pytest.mark.parametrize("client", ["librdkafka", "kafka-python", "aiokafka", "java"])
def test_pipelined_frames_in_chunks_of_any_size(client: str, chunk: int) -> None:
    frames = by_client(client)
    conn = ServerConnection(FRAME_BYTES_MAX)
    events = feed(conn, b"".join(g.frame() for g in frames), chunk)
    assert events == [expected_request(g) for g in frames]
    assert conn.pending_bytes == 0 and conn.frames_completed == len(frames)
    assert conn.responses_owed == len(frames)


# -- the decoder on every truncation ----------------------------------------------------


@golden_ids
def test_every_truncation_of_a_frame_is_malformed(golden: Golden) -> None:
    body = golden.frame()[4:]
    for length in range(len(body)):
        with pytest.raises(ProtocolError):
            decode_request(body[:length])


@golden_ids
def test_a_frame_cut_short_closes_the_connection(golden: Golden) -> None:
    """The size prefix says the frame ends early: the decoder meets a truncated request,
    the connection is then closing and gives no further request."""
    body = golden.frame()[4:-1]
    conn = ServerConnection(FRAME_BYTES_MAX)
    conn.receive_data(struct.pack(">i", len(body)) + body + golden.frame())
    admit_all(conn)
    with pytest.raises(ProtocolError):
        conn.next_event()
    assert conn.closing and conn.state.state is State.CLOSING
    assert conn.next_event() is NO_MORE_REQUESTS
    assert conn.responses_owed == 0


# -- frames the decoder refuses before decoding -------------------------------------------


@pytest.mark.parametrize("size", [-1, FRAME_BYTES_MAX + 1])
def test_a_size_prefix_out_of_bounds_closes_the_connection(size: int) -> None:
    conn = ServerConnection(FRAME_BYTES_MAX)
    conn.receive_data(struct.pack(">i", size))
    with pytest.raises(ProtocolError, match="socket.request.max.bytes"):
        conn.next_frame_size()
    assert conn.next_event() is NO_MORE_REQUESTS


def test_a_size_prefix_at_the_bound_is_admitted() -> None:
    conn = ServerConnection(FRAME_BYTES_MAX)
    conn.receive_data(struct.pack(">i", FRAME_BYTES_MAX) + b"x")
    assert conn.admit_frame() == FRAME_BYTES_MAX
    assert conn.missing_bytes == FRAME_BYTES_MAX - 1
    assert conn.next_event() is NEED_DATA


def test_an_unknown_version_is_returned_with_its_header() -> None:
    frame = struct.pack(">hhih", 18, 99, 42, 3) + b"cli"
    conn = ServerConnection(FRAME_BYTES_MAX)
    conn.receive_data(struct.pack(">i", len(frame)) + frame)
    admit_all(conn)
    event = conn.next_event()
    assert isinstance(event, UnsupportedRequest)
    assert (event.header.api_key, event.header.api_version) == (18, 99)
    assert event.header.correlation_id == 42 and event.header.client_id == "cli"
    assert conn.responses_owed == 1 and not conn.closing


# -- responses in request order ------------------------------------------------------------


def test_responses_go_out_in_request_order() -> None:
    frames = by_client("java")[:3]
    conn = ServerConnection(FRAME_BYTES_MAX)
    requests = feed(conn, b"".join(g.frame() for g in frames), 1 << 20)
    assert len(requests) == 3 and all(isinstance(r, Request) for r in requests)
    first, second, third = (r.header for r in requests if isinstance(r, Request))
    with pytest.raises(LocalProtocolError, match=f"correlation id {second.correlation_id}"):
        conn.send_encoded(second, [b""])
    assert conn.send_encoded(first, [b"a"]) == [b"a"]
    with pytest.raises(LocalProtocolError, match="only the newest"):
        conn.send_nothing(second)
    conn.send_nothing(third)  # acks=0: the newest request is owed nothing
    assert conn.responses_owed == 1
    conn.send_encoded(second, [b"b"])
    assert conn.responses_owed == 0
    with pytest.raises(LocalProtocolError, match="the oldest request owed a response is None"):
        conn.send_encoded(first, [b"a"])


def test_a_response_frame_carries_the_requests_correlation_id() -> None:
    golden = next(g for g in GOLDEN if g.stem == "api_versions_request_v3_librdkafka")
    conn = ServerConnection(FRAME_BYTES_MAX)
    (request,) = feed(conn, golden.frame(), 1 << 20)
    assert isinstance(request, Request)
    body = build(response_schema(18, 3), {"error_code": ErrorCode.none, "api_keys": []})
    data = conn.send_response(request.header, body)
    size, correlation_id = struct.unpack_from(">ii", data)
    assert size == len(data) - 4 and correlation_id == golden.correlation_id
    assert conn.responses_owed == 0
