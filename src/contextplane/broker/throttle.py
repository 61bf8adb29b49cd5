"""Muting a throttled connection, as Kafka does since KIP-219: the response carrying
`throttle_time_ms` is sent at once, then the broker reads nothing more from that
connection (and handles none of its requests) for that long. A client that ignores the
throttle time is slowed all the same; one that honours it loses nothing.

`ConnectionThrottle` is what request handling owes a connection (the longest quota
throttle since the last response was written); `Mute` is the connection's side: pause
reading, wait, resume. The mute starts as soon as a request owes a throttle, before
its response is written, so pipelined requests already read wait for it as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class ConnectionThrottle:
    """The mute a connection owes once its next response is written."""

    __slots__ = ("owed_ms",)

    def __init__(self) -> None:
        self.owed_ms = 0

    def owe(self, ms: int) -> None:
        if ms > self.owed_ms:
            self.owed_ms = ms

    def take(self) -> int:
        owed, self.owed_ms = self.owed_ms, 0
        return owed


class Mute:
    """A connection's mute: `start(ms)` pauses its reading and its request handling
    until `ms` from now (a longer mute extends a shorter one); `wait` returns once
    unmuted."""

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._pause = pause
        self._resume = resume
        self._unmuted = asyncio.Event()
        self._unmuted.set()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, ms: int) -> None:
        if ms <= 0:
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + ms / 1000
        if self._timer is not None:
            if self._timer.when() >= until:
                return
            self._timer.cancel()
        else:
            self._unmuted.clear()
            self._pause()
        self._timer = loop.call_at(until, self._end)

    def _end(self) -> None:
        self._timer = None
        self._unmuted.set()
        self._resume()

    @property
    def muted(self) -> bool:
        return self._timer is not None

    async def wait(self) -> None:
        await self._unmuted.wait()

    def hold(self, throttle: ConnectionThrottle) -> None:
        """Once a request is handled, before its response is written: a throttle it
        owes holds the connection's next requests at once, those already read too (a
        pipelining client would otherwise have them all handled while the first
        response waits on the log). The response then mutes again for the whole
        throttle (`after_response`), so the mute ends a throttle after it is sent."""
        self.start(throttle.owed_ms)

    def after_response(self, throttle: ConnectionThrottle) -> None:
        """KIP-219: once a response is written, mute for what the connection owes."""
        if throttle.owed_ms:
            self.start(throttle.take())

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
