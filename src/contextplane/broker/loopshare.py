"""Sharing the one event loop with the other connections during a large request.

Kafka serves each connection's requests on its own threads; here every connection shares
one event loop, so a request with 100,000 entries must not hold it for seconds. Handlers
that loop over a request's entries ask a `LoopShare` once per entry whether to give the
loop back (every few milliseconds). Pure work on large inputs (decoding a large frame,
building and encoding a large response: `is_large`) runs in a worker thread instead
(asyncio.to_thread): Python switches between threads every few milliseconds
(sys.getswitchinterval), so the loop keeps answering the others meanwhile.
"""

from __future__ import annotations

import asyncio

from contextplane import limits

# Hold the loop at most this long between two yields.
_SLICE_S = 0.005


class LoopShare:
    """In a long loop, once per item: `if share.due(): await asyncio.sleep(0)`. Due once
    the loop has been held for a slice, by the loop's own clock (one read per item, no
    coroutine)."""

    __slots__ = ("_clock", "_until")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._clock = (loop or asyncio.get_running_loop()).time
        self._until = self._clock() + _SLICE_S

    def due(self) -> bool:
        now = self._clock()
        if now < self._until:
            return False
        self._until = now + _SLICE_S
        return True


def is_large(items: int) -> bool:
    """Whether work over this many entries is worth a worker thread (the hop costs tens
    of microseconds: small requests stay on the loop)."""
    return items >= limits.OFF_LOOP_ITEMS_MIN
