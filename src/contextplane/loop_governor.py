"""The loop-time governor: bulk work (catch-up reads and their large responses) runs on
the event loop only while no request is waiting for it (RFC 0003, slice 15).

Every connection shares one event loop. A replaying consumer can keep it busy on its
own (the write of ~200 MB/s of Fetch responses, their reads), and a paced producer's
requests then queue behind that work: librdkafka keeps sending, the queue grows for as
long as the replay lasts, and the producer's p99 goes from milliseconds to seconds.

So the connections count the requests they have read and not yet started
(`arrived` / `started`), and bulk work asks for a `turn` before each bounded chunk
(one slice of a large response, one catch-up read): the turn first gives the loop one
pass (its I/O poll admits what arrived meanwhile), then, while any request is waiting,
waits in steps of `POLL_S`. A request waiting is a request of the live path (Produce,
a tail Fetch, a heartbeat) that the loop would otherwise serve after the chunk; once
they are all started the chunk runs. Catch-up thus gets what the loop has spare, all of
it when nothing else arrives. It is never starved: a turn waits at most `WAIT_MAX_S`
(a connection muted by a quota, or one whose responses are full, holds its requests
without the loop being busy), so bulk work keeps at least one chunk per `WAIT_MAX_S`.

Nothing is reordered within a connection: a turn delays one connection's bulk chunk,
and its responses are still written in request order by its one writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# How often a deferred turn looks again whether the waiting requests have started.
POLL_S = 0.001
# The longest one turn waits: a chunk of bulk work at least this often.
WAIT_MAX_S = 0.05


def _none() -> int:
    return 0


class LoopGovernor:
    """Counts the requests waiting for the loop; bulk work awaits `turn()` per chunk."""

    __slots__ = ("_polls_max", "_poll_s", "deferred", "forced", "waiting")

    def __init__(self, poll_s: float = POLL_S, wait_max_s: float = WAIT_MAX_S) -> None:
        self._poll_s = poll_s
        self._polls_max = max(1, round(wait_max_s / poll_s))
        self.waiting = 0  # requests read whole and not yet started
        self.deferred = 0  # turns that waited for requests (for /metrics and tests)
        self.forced = 0  # of those, turns that went ahead after WAIT_MAX_S

    def arrived(self, count: int = 1) -> None:
        """`count` requests were read whole."""
        self.waiting += count

    def started(self, count: int = 1) -> None:
        """`count` requests started (or dropped with their connection)."""
        self.waiting = max(self.waiting - count, 0)

    async def turn(self, own: Callable[[], int] = _none) -> None:
        """Return once no request waits for the loop, or after at most `WAIT_MAX_S`.
        `own()`: the waiting requests of the connection whose work this is, not waited
        for (they may wait behind this very work)."""
        await asyncio.sleep(0)  # one pass: the I/O poll admits what arrived meanwhile
        if self.waiting <= own():
            return
        self.deferred += 1
        for _ in range(self._polls_max):
            await asyncio.sleep(self._poll_s)
            if self.waiting <= own():
                return
        self.forced += 1
