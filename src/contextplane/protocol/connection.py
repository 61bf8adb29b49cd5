"""One Kafka connection on the broker side, sans-I/O: bytes in, requests out, responses
in, bytes out. Nothing here imports asyncio, sockets or storage.

    conn = ServerConnection(frame_bytes_max, security_protocol="PLAINTEXT")
    conn.receive_data(data)                    # whatever the socket gave
    while (size := conn.next_frame_size()) is not None:
        ...                                    # the caller's admission (request memory)
        conn.admit_frame()
    event = conn.next_event()                  # Request, UnsupportedRequest, NEED_DATA
                                               # or NO_MORE_REQUESTS; ProtocolError: close
    conn.state.process_request(event.header.api_key)   # the pipeline's authentication stage
    data = conn.send_response(event.header, body)      # bytes to write

The I/O wrapper (`broker/server.py`) owns the socket, the limits and the deadlines. A
frame is decoded only once the wrapper has admitted it against its request memory
(queued.max.request.bytes), when the frame's size prefix arrives; `next_event` never
returns a frame that was not admitted. Responses must be sent in the order the requests
were returned (Kafka answers each connection's requests in order): `send_response` for
anything else raises `LocalProtocolError`; a request that gets no response (acks=0
produce) is reported with `send_nothing` as soon as that is known. The connection's
states, and which requests each takes, are in `connection_state.py`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from contextplane import limits
from contextplane.errors import ProtocolError
from contextplane.protocol.codec import (
    FrameBuffer,
    Request,
    RequestHeader,
    UnsupportedVersion,
    decode_request,
    encode_response,
)
from contextplane.protocol.connection_state import (
    ConnectionState,
    Event,
    LocalProtocolError,
    State,
    initial_state,
)


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA: Final = _Sentinel("NEED_DATA")  # no complete, admitted frame yet
NO_MORE_REQUESTS: Final = _Sentinel("NO_MORE_REQUESTS")  # the connection is closing


@dataclass(frozen=True, slots=True)
class UnsupportedRequest:
    """A frame whose API key or version has no schema. Kafka answers an ApiVersions
    request of an unknown version in v0 form and closes the connection for anything
    else."""

    header: RequestHeader


ConnectionEvent: TypeAlias = Request | UnsupportedRequest | _Sentinel


def decode_frame(frame: bytes) -> Request | UnsupportedRequest:
    """A frame's request (pure: may run in any thread); ProtocolError if malformed."""
    try:
        return decode_request(frame)
    except UnsupportedVersion as exc:
        return UnsupportedRequest(exc.header)


_AUTHENTICATING_STATES = frozenset(
    {State.HANDSHAKE_OR_VERSIONS, State.HANDSHAKE, State.AUTHENTICATING}
)


class ServerConnection:
    """A connection's frames, requests and state, with no I/O."""

    def __init__(
        self,
        frame_bytes_max: int = limits.SOCKET_REQUEST_BYTES_MAX,
        security_protocol: str = "PLAINTEXT",
        sasl_frame_bytes_max: int = limits.SASL_RECEIVE_BYTES_MAX,
    ) -> None:
        self.state = ConnectionState(initial_state(security_protocol))
        self._frames = FrameBuffer(frame_bytes_max)
        # Before authentication completes, frames are bounded by Kafka's
        # sasl.server.max.receive.size: an unauthenticated client allocates little.
        self._sasl_frame_bytes_max = sasl_frame_bytes_max
        # Headers of the requests returned by next_event and not yet answered, oldest
        # first (at most the responses a connection may have queued, plus one).
        self._owed: deque[RequestHeader] = deque()

    # -- reading -------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Store bytes received from the client (copied: the caller may reuse `data`)."""
        self._frames.receive_data(data)

    def next_frame_size(self) -> int | None:
        """The declared size of the first frame not yet admitted, once its size prefix
        has arrived; ProtocolError (the connection is then closing) if it is negative or
        above socket.request.max.bytes (before authentication: sasl.server.max.receive.size)."""
        try:
            size = self._frames.next_frame_size()
            if size is not None and size > self._sasl_frame_bytes_max and self._authenticating:
                raise ProtocolError(
                    f"frame of {size} bytes before authentication exceeds "
                    f"sasl.server.max.receive.size={self._sasl_frame_bytes_max}"
                )
        except ProtocolError:
            self.state.process_event(Event.CLOSE)
            raise
        return size

    @property
    def _authenticating(self) -> bool:
        return self.state.state in _AUTHENTICATING_STATES

    def admit_frame(self) -> int:
        """Admit the frame whose size `next_frame_size` reported; returns its size."""
        return self._frames.admit_frame()

    @property
    def frames_ready(self) -> int:
        """Admitted frames that have arrived whole: `next_event` has a request."""
        return self._frames.frames_ready

    @property
    def frames_completed(self) -> int:
        """Admitted frames that have arrived whole since the connection opened."""
        return self._frames.frames_completed

    @property
    def missing_bytes(self) -> int:
        """Bytes of admitted frames still to arrive."""
        return self._frames.missing_bytes

    @property
    def incomplete_bytes(self) -> int:
        """Bytes received of a frame that has not arrived whole (or is not admitted)."""
        return self._frames.incomplete_bytes

    @property
    def pending_bytes(self) -> int:
        """Bytes received and not yet returned as a request."""
        return self._frames.pending_bytes

    def next_event(self) -> ConnectionEvent:
        """The next request, decoded; NEED_DATA until an admitted frame is whole;
        NO_MORE_REQUESTS once the connection is closing. A malformed frame raises
        ProtocolError and the connection is then closing."""
        frame = self.next_frame()
        if not isinstance(frame, bytes):
            return frame
        try:
            event = decode_frame(frame)
        except ProtocolError:
            self.state.process_event(Event.CLOSE)
            raise
        return self.owe(event)

    def next_frame(self) -> bytes | _Sentinel:
        """The next whole admitted frame, undecoded (for a caller that decodes it
        elsewhere, then hands it to `accept`); NEED_DATA or NO_MORE_REQUESTS."""
        if self.state.closing:
            return NO_MORE_REQUESTS
        frame = self._frames.next_frame()
        return NEED_DATA if frame is None else frame

    def owe(self, event: Request | UnsupportedRequest) -> Request | UnsupportedRequest:
        """Take a request decoded from `next_frame`'s frame (`decode_frame`; a
        ProtocolError from it must `close` the connection): a response is owed for it."""
        self._owed.append(event.header)
        return event

    # -- writing -------------------------------------------------------------------------

    def _answer(self, header: RequestHeader) -> None:
        if not self._owed or self._owed[0] is not header:
            expected = self._owed[0].correlation_id if self._owed else None
            raise LocalProtocolError(
                f"response to correlation id {header.correlation_id} out of order: "
                f"the oldest request owed a response is {expected}"
            )
        self._owed.popleft()

    def send_response(self, header: RequestHeader, body: Any) -> bytes:
        """The frame answering the request `header` came in, with the response entity
        `body` (its schema decides the header version)."""
        self._answer(header)
        return encode_response(header.api_key, header.api_version, header.correlation_id, body)

    def send_encoded(self, header: RequestHeader, parts: list[bytes]) -> list[bytes]:
        """A response already encoded as frame parts (size prefix and header included,
        as `codec.encode_response_with_array` builds them), in its turn."""
        self._answer(header)
        return parts

    def send_nothing(self, header: RequestHeader) -> None:
        """The request `header`, the newest returned, gets no response (acks=0 produce):
        it is owed nothing, whatever earlier requests are still owed."""
        if not self._owed or self._owed[-1] is not header:
            raise LocalProtocolError(
                f"no response for correlation id {header.correlation_id}: "
                "only the newest request can be left unanswered"
            )
        self._owed.pop()

    @property
    def responses_owed(self) -> int:
        return len(self._owed)

    # -- closing -------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self.state.closing

    def close(self) -> None:
        """The broker closes the connection (idempotent)."""
        self.state.process_event(Event.CLOSE)

    def connection_lost(self) -> None:
        """The transport is gone."""
        self.state.process_event(Event.CONNECTION_LOST)
