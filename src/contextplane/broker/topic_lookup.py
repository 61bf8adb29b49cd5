"""Topics another broker created since this one's last heartbeat (RFC 0004 slice 0).

The topic table is read again only when a heartbeat sees `generation.topics` move, so
for up to a heartbeat a topic created through another broker is unknown here, and a
request naming it (an OffsetCommit, which librdkafka treats as fatal) would be answered
UNKNOWN_TOPIC_OR_PARTITION. On such a miss, in a cluster, the name is read from the
store (one indexed query, off the loop) and, if found, added to the table.

Clients retry unknown topics and anyone may name millions, so the lookups are bounded:
a name found absent is not read again for a heartbeat interval (at most NEGATIVE_MAX
names remembered), and broker-wide at most IN_FLIGHT_MAX lookups run at once and
RATE_PER_S start per second. A miss beyond those bounds is answered as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from contextplane.clock import Clock
from contextplane.metadata.records import TopicRecord

IN_FLIGHT_MAX = 4
RATE_PER_S = 50.0
NEGATIVE_MAX = 10_000


class TopicLookup:
    def __init__(
        self,
        read: Callable[[str], Awaitable[TopicRecord | None]],
        known: Callable[[str], bool],
        enabled: Callable[[], bool],
        negative_ttl_ms: int,
        clock: Clock,
    ) -> None:
        """`read(name)` reads one topic from the store; `known(name)` asks the table;
        `enabled()` whether another broker may create topics (a cluster)."""
        self._read = read
        self._known = known
        self._enabled = enabled
        self._ttl_ms = negative_ttl_ms
        self._clock = clock
        self._absent: dict[str, int] = {}  # name -> until when (monotonic ms) it is absent
        self._in_flight = 0
        self._tokens = RATE_PER_S
        self._refilled = clock.monotonic_ms()
        self.lookups = 0  # store reads issued (tests and operators count them)

    async def find(self, names: Iterable[str | None]) -> list[TopicRecord]:
        """Read those of `names` the table does not know, as far as the bounds allow;
        returns the topics found (for the caller to add to the table)."""
        if not self._enabled():
            return []
        found = []
        for name in dict.fromkeys(n for n in names if n and not self._known(n)):
            if not self._may_read(name):
                continue
            self._in_flight += 1
            self.lookups += 1
            try:
                record = await self._read(name)
            finally:
                self._in_flight -= 1
            if record is None:
                self._remember_absent(name)
            else:
                found.append(record)
        return found

    def _may_read(self, name: str) -> bool:
        now = self._clock.monotonic_ms()
        until = self._absent.get(name)
        if until is not None:
            if until > now:
                return False
            del self._absent[name]
        if self._in_flight >= IN_FLIGHT_MAX:
            return False
        self._tokens = min(RATE_PER_S, self._tokens + (now - self._refilled) * RATE_PER_S / 1000)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _remember_absent(self, name: str) -> None:
        now = self._clock.monotonic_ms()
        if len(self._absent) >= NEGATIVE_MAX:
            # Expired entries out first; still full, the oldest half (dicts keep order).
            self._absent = {n: t for n, t in self._absent.items() if t > now}
            if len(self._absent) >= NEGATIVE_MAX:
                keep = list(self._absent.items())[NEGATIVE_MAX // 2 :]
                self._absent = dict(keep)
        self._absent[name] = now + self._ttl_ms
