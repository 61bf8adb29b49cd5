"""Sharing the one event loop with the other connections during a large request.

Kafka serves each connection's requests on its own threads; here every connection shares
one event loop, so a request with 100,000 entries must not hold it for seconds. Handlers
that loop over a request's entries call a `LoopShare` once per entry: it gives the loop
back every few milliseconds. Pure work on large inputs (decoding a large frame, building
and encoding a large response) runs in a worker thread instead (`off_loop`): Python
switches between threads every few milliseconds (sys.getswitchinterval), so the loop
keeps answering the others meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from contextplane import limits

T = TypeVar("T")

# Hold the loop at most this long between two yields.
_SLICE_S = 0.005


class LoopShare:
    """Call `await share()` once per item of a long loop: it yields to the event loop
    whenever the loop has been held for a slice (a clock read per item otherwise)."""

    __slots__ = ("_until",)

    def __init__(self) -> None:
        self._until = time.monotonic() + _SLICE_S

    async def __call__(self) -> None:
        if time.monotonic() >= self._until:
            await asyncio.sleep(0)
            self._until = time.monotonic() + _SLICE_S


def is_large(items: int) -> bool:
    """Whether work over this many entries is worth a worker thread (the hop costs tens
    of microseconds: small requests stay on the loop)."""
    return items >= limits.OFF_LOOP_ITEMS_MIN


async def off_loop(large: bool, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """fn(*args, **kwargs), in a worker thread when `large`; fn must not touch shared
    state the loop changes (pure building, encoding, decoding)."""
    if not large:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)
