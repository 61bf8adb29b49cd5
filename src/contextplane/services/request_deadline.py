"""uvicorn's HTTP/1.1 protocol with a deadline on each request head.

uvicorn times a connection out only between requests, and any byte received resets that
timer: a client that opens connections and trickles their headers a byte at a time
(slowloris) holds each for ever, and CONNECTIONS_MAX of them leave every other client
with 503s. Here a connection must deliver a whole request line and headers within a fixed
time of being accepted, or of its previous answer, however it spreads the bytes; else it
is closed. (A body is bounded the same way where it is read: http_io.json_body.)
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class DeadlineH11Protocol(H11Protocol):
    request_head_s: float = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

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


def with_request_head_deadline(seconds: float) -> type[DeadlineH11Protocol]:
    """The protocol class with its deadline (uvicorn instantiates the class it is given)."""
    return type("DeadlineH11Protocol", (DeadlineH11Protocol,), {"request_head_s": seconds})
