"""uvicorn's HTTP/1.1 protocol with a deadline on each request head, and one on each
stall of a response's writing.

uvicorn times a connection out only between requests, and any byte received resets that
timer: a client that opens connections and trickles their headers a byte at a time
(slowloris) holds each for ever, and CONNECTIONS_MAX of them leave every other client
with 503s. Here a connection must deliver a whole request line and headers within a fixed
time of being accepted, or of its previous answer, however it spreads the bytes; else it
is closed. (A body is bounded the same way where it is read: http_io.json_body.)

uvicorn has no deadline on writing either: a client that asks for a large answer (a
console page, /metrics) and never reads holds that answer in its transport's buffer for
as long as it keeps the connection, and a thousand such clients hold a thousand answers.
Here a transport whose writing is paused (its buffer over the high-water mark) and
whose buffer has not shrunk for the stall deadline is aborted, its buffer dropped; a
client that reads, however slowly, is never cut.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class DeadlineH11Protocol(H11Protocol):
    request_head_s: float = 30.0
    write_stall_s: float = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._write_deadline: asyncio.TimerHandle | None = None
        self._unsent = 0  # the write buffer's size when its deadline was armed
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        self._disarm_write_deadline()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None:
            self._arm_write_deadline()

    def _arm_write_deadline(self) -> None:
        self._unsent = self.transport.get_write_buffer_size()
        self._write_deadline = self.loop.call_later(self.write_stall_s, self._stalled)

    def resume_writing(self) -> None:
        self._disarm_write_deadline()
        super().resume_writing()

    def _disarm_write_deadline(self) -> None:
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _stalled(self) -> None:
        self._write_deadline = None
        if self.transport.get_write_buffer_size() < self._unsent:
            self._arm_write_deadline()  # the client read some meanwhile
        else:
            self.transport.abort()  # close() would wait for the unread buffer to drain

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm_head_deadline()  # a request head arrived: the app answers it

    def on_response_complete(self) -> None:
        # Armed before uvicorn handles a pipelined request, whose head then disarms it.
        self._arm_head_deadline()
        super().on_response_complete()

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self.request_head_s, self._head_too_late)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_late(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def with_request_head_deadline(
    seconds: float, write_stall_s: float = 30.0
) -> type[DeadlineH11Protocol]:
    """The protocol class with its deadlines (uvicorn instantiates the class it is given)."""
    deadlines = {"request_head_s": seconds, "write_stall_s": write_stall_s}
    return type("DeadlineH11Protocol", (DeadlineH11Protocol,), deadlines)
