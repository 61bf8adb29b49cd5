"""One asyncio Protocol instance per Kafka connection (the listeners that accept them are
`broker/listener.py`).

Requests on a connection are handled one at a time, in order, as Kafka does. A handler
may return an awaitable instead of a response: its waiting part (a WAL sync, a long-poll
fetch, a group join) then runs while the next request is handled, and responses are
still written in request order. This keeps per-connection produce ordering while many
pipelined produce requests share one group commit.

Nothing a client does can hold the broker's memory or its attention for long:
- connections are counted and refused in one place (`connections.ConnectionQuotas`);
- request bytes are counted in `connections.RequestMemory` (queued.max.request.bytes)
  as they arrive, and a connection reads only while it has room there: memory is
  earned by bytes sent, never by a declared frame size;
- a frame must arrive within request.receive.timeout.ms of its first byte (a wait for
  request memory counts: the frame holds memory meanwhile), and a
  connection with nothing in progress is closed after connections.max.idle.ms;
- a connection yields to the others after every request, has a bounded number of
  responses queued, and writes a response a slice at a time (`response_slices.py`), the
  next slice only once the client has read enough of the previous ones; the bytes of
  the responses it holds are counted in the memory budget until the client has read
  them (`held_responses.py`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from contextplane import limits
from contextplane.broker.bulk_sender import SendStopped, drained, parts_after, plaintext_fd
from contextplane.broker.context import ConnectionInfo
from contextplane.broker.held_responses import HeldResponses, Part, parts_size
from contextplane.broker.response_facts import encoded_with_facts, response_facts
from contextplane.broker.response_slices import response_slices
from contextplane.broker.throttle import Mute
from contextplane.clock import elapsed_ns
from contextplane.errors import ProtocolError
from contextplane.logsafe import escape
from contextplane.protocol.codec import Request
from contextplane.protocol.connection import (
    NEED_DATA,
    ServerConnection,
    UnsupportedRequest,
    decode_frame,
)
from contextplane.protocol.connection_state import State
from contextplane.security.ssl_principal import NoMatchingRule

if TYPE_CHECKING:
    from contextplane.broker.listener import Listener

log = logging.getLogger(__name__)

# A response is handed to the transport in slices of at most this (response_slices.py),
# the next once the transport holds no more than this: one loop turn's socket writes
# for a connection stay near this plus the socket's own buffer, however large the
# response. Past it the connection also stops reading (back-pressure).
_WRITE_SLICE_BYTES = 1024 * 1024
_WRITE_HIGH_WATER_BYTES = _WRITE_SLICE_BYTES
# Pause reasons: the broker's request budget is spent / the client reads too slowly.
_PAUSED_FOR_MEMORY = "memory"
_PAUSED_FOR_WRITES = "writes"
_PAUSED_FOR_CLOSE = "close"  # a handler's verdict closes the connection: read no more
_PAUSED_FOR_THROTTLE = "throttle"  # muted after a quota-throttled response (KIP-219)
# A connection's wait for request memory, while the memory decides on it.
_WAIT_PENDING = object()
# Counted with every frame on top of its size: the objects that hold it, so a flood of
# tiny pipelined frames is bounded by queued.max.request.bytes too.
_FRAME_OVERHEAD_BYTES = 128
_PRODUCE_KEY = 0


def _decoded_off_loop(frame: bytes) -> bool:
    """Whether a frame is large enough to be decoded, and answered, in a worker thread
    (see `loopshare`): produce frames are mostly record bytes, cheap to decode."""
    if len(frame) < limits.OFF_LOOP_FRAME_BYTES_MIN:
        return False
    produce = frame[0] == 0 and frame[1] == _PRODUCE_KEY
    return not produce or len(frame) >= limits.OFF_LOOP_PRODUCE_FRAME_BYTES_MIN


# Put on a connection's response queue after the last response it owes: close once it
# is written (the failure response of a SASL exchange, as Kafka sends it).
_CLOSE_AFTER_WRITES = object()


class KafkaConnection(asyncio.BufferedProtocol):
    """The I/O around one `ServerConnection`: reads only as far as request memory admits,
    hands requests to the pipeline in order, writes responses in order."""

    def __init__(self, listener: Listener, host: str) -> None:
        self._listener = listener
        self._pipeline = listener.pipeline
        self._memory = listener.memory
        self.host = host
        self.counted = False  # the listener's quota is released in connection_lost
        self._conn = ServerConnection(
            listener.frame_bytes_max, listener.security_protocol, listener.sasl_frame_bytes_max
        )
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._peer = "?"
        self._info = self._connection_info()
        # Request memory counted for each admitted frame not yet handled, oldest first.
        self._frame_costs: deque[int] = deque()
        # When each admitted frame arrived whole (perf_counter_ns), oldest first: the
        # start of Kafka's RequestQueueTimeMs and TotalTimeMs.
        self._received_ns: deque[int] = deque()
        self._frames_ready = asyncio.Event()
        self._responses: asyncio.Queue[Any] = asyncio.Queue(limits.RESPONSES_QUEUED_MAX)
        self._held = HeldResponses(listener.shared.response_budget)
        # Told of every request read whole and started; large responses take its turns.
        self._governor = listener.shared.governor
        self._writing = False  # the write loop is busy with a response (or awaiting it)
        self._writable = asyncio.Event()
        self._writable.set()
        self._tasks: list[asyncio.Task[None]] = []
        # Request memory counted for this connection.
        self._reserved = 0
        self._memory_wait: object | None = None
        self._woken = False  # request memory woke this connection: it may read once
        self._frames_admitted = 0
        self._frames_released = 0
        # Holding the overdraft: the number (counting from 1) of the frame it finishes.
        self._overdraft_frame: int | None = None
        self._paused: set[str] = set()
        self._discarding = False  # closing: bytes read are dropped (_linger_then_close)
        self._last_activity = self._loop.time()
        self._frame_started: float | None = None
        self._handling = False
        self._awaiting_result = False
        self._mute = Mute(self._muted, self._unmuted)
        # The socket a bulk sender thread writes large responses to (plaintext only), and
        # the flag that stops it when the connection goes.
        self._bulk_fd: int | None = None
        self._bulk_stop = threading.Event()

    @property
    def _closed(self) -> bool:
        return self._conn.closing

    def _connection_info(self) -> ConnectionInfo:
        listener = self._listener
        return ConnectionInfo(
            self._peer,
            listener=listener.name,
            security_protocol=listener.security_protocol,
            state=self._conn.state,
        )

    # -- asyncio callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self.counted = True
        self._listener.connection_opened(self)
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self._info = self._connection_info()
        try:
            self._info.principal = self._listener.principal(transport)
        except NoMatchingRule as exc:  # ssl.principal.mapping.rules
            self._abort(f"client certificate refused: {exc}")
            return
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER_BYTES)  # type: ignore[attr-defined]
        if self._listener.shared.bulk_sender is not None:
            self._bulk_fd = plaintext_fd(transport, self._listener.security_protocol)
        self._tasks = [
            asyncio.create_task(self._handle_loop()),
            asyncio.create_task(self._write_loop()),
        ]

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._discarding:
            return memoryview(self._listener.read_buffer)
        return memoryview(self._listener.read_buffer)[: self._read_size()]

    def buffer_updated(self, nbytes: int) -> None:
        if self._discarding:
            return
        self._last_activity = self._loop.time()
        completed = self._conn.frames_completed
        self._conn.receive_data(memoryview(self._listener.read_buffer)[:nbytes])
        self._reserved += nbytes
        self._memory.take(nbytes)
        self._admit_frames()
        whole = self._conn.frames_completed - completed
        if whole:
            self._received_ns.extend([elapsed_ns()] * whole)
            if not self._mute.muted:
                self._governor.arrived(whole)

    def connection_lost(self, exc: Exception | None) -> None:
        self._bulk_stop.set()
        self._conn.connection_lost()
        # Taken out first: a callback may drop its own entry (a share session closing).
        callbacks, self._info.on_lost = list(self._info.on_lost.values()), {}
        for callback in callbacks:
            callback()
        for task in self._tasks:
            task.cancel()
        while not self._responses.empty():  # responses owed to a client that is gone
            item = self._responses.get_nowait()
            # A long poll or acknowledgement wait never started: a coroutine, or a traced
            # reply's (request_spans.py), which ends its span.
            if item is not _CLOSE_AFTER_WRITES and inspect.isawaitable(item[1]):
                close = getattr(item[1], "close", None)
                if close is not None:
                    close()
        if self._memory_wait is not None:
            self._memory.cancel(self._memory_wait)
            self._memory_wait = None
        self._frame_costs.clear()
        if not self._mute.muted:
            self._governor.started(len(self._received_ns))  # never to be started
        self._received_ns.clear()
        self._held.release_all()
        self._mute.close()
        self._memory.end_overdraft(self)
        if self._reserved:
            reserved, self._reserved = self._reserved, 0
            self._memory.release(reserved)
        if self.counted:
            self._listener.connection_closed(self)

    def pause_writing(self) -> None:
        self._writable.clear()
        self._pause(_PAUSED_FOR_WRITES)

    def resume_writing(self) -> None:
        self._last_activity = self._loop.time()
        self._writable.set()
        self._resume(_PAUSED_FOR_WRITES)
        self._held.sync(self._buffered())

    def _buffered(self) -> int:
        """Response bytes the transport has not sent yet."""
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    # -- reading: admission, frames, deadlines ------------------------------------------

    def _allowance(self) -> int:
        """Bytes this connection may read now: what is left of its free allowance, the
        room in request memory when it is its turn, or the rest of its unfinished frame
        when it holds the overdraft."""
        allowance = limits.REQUEST_BYTES_PER_CONNECTION_FREE - self._reserved
        memory = self._memory
        if self._woken or not memory.waiting:
            allowance = max(allowance, memory.room)
        frame = self._overdraft_frame
        if frame is not None and self._conn.frames_completed < frame:
            allowance = max(allowance, self._conn.missing_bytes)
        return allowance

    def _read_size(self) -> int:
        # At least one byte: asyncio needs a buffer, and a paused connection reads nothing.
        return max(1, min(self._allowance(), len(self._listener.read_buffer)))

    def _admit_frames(self) -> None:
        """Admit every frame whose size prefix has arrived (its bytes are counted as they
        arrive); stop reading when request memory has no room for this connection."""
        conn = self._conn
        completed = conn.frames_completed
        try:
            while (size := conn.next_frame_size()) is not None:
                cost = 4 + size + _FRAME_OVERHEAD_BYTES
                conn.admit_frame()
                self._frames_admitted += 1
                self._frame_costs.append(cost)
                self._reserved += _FRAME_OVERHEAD_BYTES
                self._memory.take(_FRAME_OVERHEAD_BYTES)
        except ProtocolError as exc:
            self._abort(str(exc))
            return
        if conn.incomplete_bytes == 0:
            self._frame_started = None
        elif conn.frames_completed != completed or self._frame_started is None:
            self._frame_started = self._loop.time()
        if conn.frames_ready:
            self._frames_ready.set()
        self._woken = False
        if self._memory_wait is None and self._allowance() <= 0:
            self._pause(_PAUSED_FOR_MEMORY)
            self._memory_wait = _WAIT_PENDING
            handle = self._memory.wait(self, conn.missing_bytes > 0, self._memory_granted)
            if self._memory_wait is _WAIT_PENDING:  # not granted at once
                self._memory_wait = handle

    def _memory_granted(self) -> None:
        # Called from another connection's release (or this one's own wait): continue on
        # the next loop turn.
        self._memory_wait = None
        self._woken = True
        if self._memory.overdraft is self and self._overdraft_frame is None:
            # For the unfinished frame, the newest admitted: held until it is handled.
            self._overdraft_frame = self._frames_admitted
        self._loop.call_soon(self._continue_after_memory)

    def _continue_after_memory(self) -> None:
        if self._closed:
            return
        self._resume(_PAUSED_FOR_MEMORY)

    def _pause(self, reason: str) -> None:
        if not self._paused and self._transport is not None:
            self._transport.pause_reading()
        self._paused.add(reason)

    def _resume(self, reason: str) -> None:
        if reason not in self._paused:
            return
        self._paused.discard(reason)
        if reason != _PAUSED_FOR_MEMORY and self._frame_started is not None:
            # Not the client's delay. A wait for request memory is not forgiven: a frame
            # holds memory while it waits, so it must still arrive in time.
            self._frame_started = self._loop.time()
        if not self._paused and self._transport is not None and not self._closed:
            self._transport.resume_reading()

    def _release(self, cost: int) -> None:
        cost = min(cost, self._reserved)  # nothing once connection_lost released it all
        if cost > 0:
            self._reserved -= cost
            self._memory.release(cost)

    def check_deadlines(self, now: float) -> None:
        """Close the connection if a frame is arriving too slowly or nothing has happened
        on it for connections.max.idle.ms (Kafka's idle expiry; requests the broker is
        still working on do not count as idle)."""
        if self._transport is None or self._conn.state.state is State.CLOSED:
            return
        self._held.sync(self._buffered())  # the transport may have drained meanwhile
        listener = self._listener
        reading = not self._paused - {_PAUSED_FOR_MEMORY}
        if (
            reading
            and self._frame_started is not None
            and now - self._frame_started > listener.receive_timeout_s
        ):
            self._abort(
                f"request frame not received within request.receive.timeout.ms="
                f"{int(listener.receive_timeout_s * 1000)}"
            )
            return
        # Waiting on the broker (a handler, a parked JoinGroup or long-poll fetch, request
        # memory) is not idleness; waiting on a client that does not read is.
        busy = self._handling or self._awaiting_result or _PAUSED_FOR_MEMORY in self._paused
        if not busy and now - self._last_activity > listener.idle_s:
            log.debug("closing idle connection from %s", self._peer)
            self._conn.close()
            self._transport.abort()

    def _muted(self) -> None:
        self._pause(_PAUSED_FOR_THROTTLE)
        # A muted connection's requests wait for their throttle, not for the loop.
        self._governor.started(len(self._received_ns))

    def _unmuted(self) -> None:
        self._governor.arrived(len(self._received_ns))
        self._resume(_PAUSED_FOR_THROTTLE)

    def _own_waiting(self) -> int:
        """Of the requests the governor counts as waiting, this connection's."""
        return 0 if self._mute.muted else len(self._received_ns)

    def _linger_then_close(self) -> None:
        """Close once the client has closed, or after limits.CLOSE_LINGER_MS: the last
        response reaches the client before the close does. Reading resumes only to see the
        client's close; what it sends meanwhile is dropped unread."""
        assert self._transport is not None
        self._discarding = True
        self._paused.clear()
        self._transport.resume_reading()
        self._loop.call_later(limits.CLOSE_LINGER_MS / 1000, self._transport.close)

    def _abort(self, reason: str) -> None:
        log.warning("closing connection from %s: %s", self._peer, escape(reason))
        self._conn.close()
        if self._transport is not None:
            self._transport.abort()

    # -- handling and writing ------------------------------------------------------------

    async def _handle_loop(self) -> None:
        conn = self._conn
        while True:
            if self._mute.muted:
                await self._mute.wait()
            if not self._held.few.is_set():  # its client has not read what it was sent
                self._held.sync(self._buffered())
                await self._held.few.wait()
            frame = conn.next_frame()
            if frame is NEED_DATA:
                self._frames_ready.clear()
                await self._frames_ready.wait()
                continue
            if not isinstance(frame, bytes):  # NO_MORE_REQUESTS
                return
            received_ns = self._received_ns.popleft()
            if not self._mute.muted:
                self._governor.started()
            size = len(frame)
            large = _decoded_off_loop(frame)
            try:
                decoded = (
                    await asyncio.to_thread(decode_frame, frame) if large else decode_frame(frame)
                )
                event = conn.owe(decoded)
            except ProtocolError as exc:
                self._abort(str(exc))
                return
            del frame
            cost = self._frame_costs.popleft()
            self._handling = True
            # Kafka's request queue time ends here; its local time is the handler's.
            timing = (size, received_ns, elapsed_ns())
            try:
                item = await self._handle(event, timing)
            finally:
                self._handling = False
                self._last_activity = self._loop.time()
                del event
                self._release(cost)
                self._frames_released += 1
                if self._overdraft_frame is not None and (
                    self._frames_released >= self._overdraft_frame
                ):
                    self._overdraft_frame = None
                    self._memory.end_overdraft(self)
            self._mute.hold(self._info.throttle)  # its next requests wait (KIP-219)
            if item is not None:
                held = 0
                if isinstance(item[1], list) and self._response_waits():
                    # A body in memory until its turn: counted meanwhile.
                    held = parts_size(item[1])
                    self._held.hold(held, self._buffered())
                await self._responses.put((*item, large, held, (*timing, elapsed_ns())))
            if conn.closing:
                if not self._transport_closing():
                    # A handler's verdict closes the connection (a failed SASL
                    # exchange): write the responses owed, then close.
                    self._pause(_PAUSED_FOR_CLOSE)
                    await self._responses.put(_CLOSE_AFTER_WRITES)
                return
            # One connection's pipelined requests must not keep the others waiting.
            await asyncio.sleep(0)

    def _response_waits(self) -> bool:
        """Whether a response queued now waits for others or for the client (one that is
        written at once is not worth counting as held)."""
        return self._writing or not self._writable.is_set() or not self._responses.empty()

    def _transport_closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    async def _handle(
        self, event: Request | UnsupportedRequest, timing: tuple[int, int, int]
    ) -> Any:
        """The response queue item for one request: (header, body or awaitable of it),
        or None (no response, or the connection was closed). `timing`: its frame's size,
        when it arrived whole and when its handling started (for an acks=0 produce)."""
        header = event.header
        if isinstance(event, UnsupportedRequest):
            body = self._pipeline.unsupported_version(header, self._info)
            if body is None:
                self._abort(f"api key {header.api_key} version {header.api_version} is unknown")
            return None if body is None else (header, body)
        try:
            reply = await self._pipeline.dispatch(event, self._info)
        except ProtocolError as exc:
            self._abort(str(exc))
            return None
        except Exception:
            log.exception(
                "api key %d v%d from %s failed", header.api_key, header.api_version, self._peer
            )
            self._abort("internal error")
            return None
        if reply.silent:  # acks=0 produce: no response at all (a throttle mutes at once)
            self._conn.send_nothing(header)
            throttle_ms = self._info.throttle.owed_ms  # taken by the mute below
            self._mute.after_response(self._info.throttle)
            now = elapsed_ns()  # Kafka times a response it never sends as sent at once
            # No response, no error counted (Kafka counts errors as it sends a response).
            self._pipeline.services.stats.request_done(
                header.api_key, *timing, now, now, now, now, throttle_ms
            )
            return None
        return (header, reply.body if reply.later is None else reply.later)

    async def _write_loop(self) -> None:
        try:
            await self._write_responses()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("response writer for %s failed", self._peer)
            self._abort("internal error")

    async def _write_responses(self) -> None:
        while True:
            self._writing = False
            item = await self._responses.get()
            self._writing = True
            if item is _CLOSE_AFTER_WRITES:
                await self._writable.wait()
                if self._transport is not None:
                    self._linger_then_close()
                return
            header, result, large, held, timing = item
            dequeued_ns = ready_ns = elapsed_ns()  # its turn: the responses before it written
            if inspect.isawaitable(result):
                self._awaiting_result = True
                try:
                    body = await result
                    ready_ns = elapsed_ns()  # Kafka's remote time: the delayed part's wait
                except Exception:
                    log.exception("api key %d from %s failed", header.api_key, self._peer)
                    self._abort("internal error")
                    return
                finally:
                    self._awaiting_result = False
            else:
                body = result
            facts = None
            if isinstance(body, list):  # pre-encoded frame parts
                await self._write(self._conn.send_encoded(header, body), held)
            elif large:
                # Encoded in a worker thread, in its turn (responses stay in order), where
                # its error codes are counted too.
                self._conn.send_encoded(header, [])
                frame, facts = await asyncio.to_thread(encoded_with_facts, header, body)
                await self._write([frame], held)
            else:
                await self._write([self._conn.send_response(header, body)], held)
            written_ns = elapsed_ns()
            errors, throttle_ms = facts or response_facts(header.api_key, body)
            self._pipeline.services.stats.request_done(
                header.api_key, *timing, dequeued_ns, ready_ns, written_ns, throttle_ms, errors
            )
            self._mute.after_response(self._info.throttle)

    async def _write(self, parts: list[bytes], held: int) -> None:
        """Write one response's parts, a slice at a time; `held` is what of them is
        already counted as held (a body queued in memory). One that must wait, for the
        client or between its slices, is counted from now; whatever the transport keeps
        of it is counted until it is sent."""
        size = parts_size(parts)
        if not held and (size > _WRITE_SLICE_BYTES or not self._writable.is_set()):
            held = size
            self._held.hold(held, self._buffered())
        bulk = size > _WRITE_SLICE_BYTES  # a catch-up Fetch's, not a tail's: governed
        rest: Sequence[Part] = parts
        if bulk and self._bulk_fd is not None and await drained(self._transport):
            sent = await self._write_off_loop(parts)
            if sent is None:  # the connection is gone
                self._held.written(held, self._buffered())
                return
            rest = parts_after(parts, sent)  # a stalled client's rest: the loop's path
            written = min(sent, held)
            held -= written
            self._held.written(written, self._buffered())
        for number, piece in enumerate(response_slices(rest, _WRITE_SLICE_BYTES)):
            if bulk:
                # Each slice only once no request waits for the loop (loop_governor.py).
                await self._governor.turn(self._own_waiting)
            elif number:
                await asyncio.sleep(0)  # the other connections' callbacks between slices
            # Only once the client has read the earlier slices: a connection cannot pile
            # up response bytes in its transport, nor one loop turn write them all.
            await self._writable.wait()
            transport = self._transport
            if transport is None or transport.is_closing():
                break
            self._last_activity = self._loop.time()
            transport.writelines(piece)
            written = min(parts_size(piece), held)
            held -= written
            self._held.written(written, self._buffered())
        self._held.written(held, self._buffered())

    async def _write_off_loop(self, parts: list[bytes]) -> int | None:
        """A large response written by a bulk sender thread (bulk_sender.py): the bytes
        it wrote, or None if the connection failed or closed meanwhile."""
        sender = self._listener.shared.bulk_sender
        assert sender is not None and self._bulk_fd is not None
        try:
            return await sender.send(self._bulk_fd, parts, self._bulk_stop)
        except (OSError, SendStopped) as exc:
            self._abort(f"response not sent: {exc}")
            return None
        finally:
            self._last_activity = self._loop.time()
