"""Topics another broker created since this one's last heartbeat (RFC 0004 slice 0).

The topic table is read again only when a heartbeat sees `generation.topics` move, so
for up to a heartbeat a topic created through another broker is unknown here, and a
request naming it (an OffsetCommit, which librdkafka treats as fatal) would be answered
UNKNOWN_TOPIC_OR_PARTITION. On such a miss, in a cluster, the name is read from the
store (one indexed query, off the loop) and, if found, added to the table. A topic id
(Fetch v13+ and the other requests naming topics by id) is looked up alike, before the
request is authorized (broker/pipeline.py), else a Fetch by id answers UNKNOWN_TOPIC_ID.

Clients retry unknown topics and anyone may name millions, so the lookups are bounded,
names and ids together: a key found absent is not read again for a heartbeat interval
(at most NEGATIVE_MAX keys remembered), and broker-wide at most IN_FLIGHT_MAX reads run
at once and RATE_PER_S start per second. A key already being read is not read a second
time: its reader's answer is awaited. A miss beyond those bounds is answered as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from contextplane.clock import Clock
from contextplane.metadata.records import TopicRecord

IN_FLIGHT_MAX = 4
RATE_PER_S = 50.0
NEGATIVE_MAX = 10_000

# A topic's name (str) or id (16 bytes): never equal to each other, so one map holds both.
_K = TypeVar("_K", str, bytes)


class TopicLookup:
    def __init__(
        self,
        read: Callable[[str], Awaitable[TopicRecord | None]],
        known: Callable[[str], bool],
        enabled: Callable[[], bool],
        negative_ttl_ms: int,
        clock: Clock,
        *,
        read_id: Callable[[bytes], Awaitable[TopicRecord | None]],
        known_id: Callable[[bytes], bool],
    ) -> None:
        """`read(name)` reads one topic from the store, `read_id(topic_id)` one by id;
        `known(name)` and `known_id(topic_id)` ask the table; `enabled()` whether another
        broker may create topics (a cluster)."""
        self._read = read
        self._known = known
        self._read_id = read_id
        self._known_id = known_id
        self._enabled = enabled
        self._ttl_ms = negative_ttl_ms
        self._clock = clock
        self._absent: dict[str | bytes, int] = {}  # key -> until when (monotonic ms) absent
        self._reading: dict[str | bytes, asyncio.Future[TopicRecord | None]] = {}
        self._tokens = RATE_PER_S
        self._refilled = clock.monotonic_ms()
        self.lookups = 0  # store reads issued (tests and operators count them)

    @property
    def enabled(self) -> bool:
        return self._enabled()

    async def find(self, names: Iterable[str | None]) -> list[TopicRecord]:
        """Read those of `names` the table does not know, as far as the bounds allow;
        returns the topics found (for the caller to add to the table)."""
        return await self._find(names, self._known, self._read)

    async def find_ids(self, topic_ids: Iterable[bytes | None]) -> list[TopicRecord]:
        """`find` for topic ids (16 bytes each), within the same bounds."""
        return await self._find(topic_ids, self._known_id, self._read_id)

    async def _find(
        self,
        keys: Iterable[_K | None],
        known: Callable[[_K], bool],
        read: Callable[[_K], Awaitable[TopicRecord | None]],
    ) -> list[TopicRecord]:
        if not self._enabled():
            return []
        found = []
        for key in dict.fromkeys(k for k in keys if k and not known(k)):
            reading = self._reading.get(key)
            if reading is None:
                if not self._may_read(key):
                    continue
                reading = self._start(key, read(key))
            # Shielded: a request cancelled meanwhile leaves the read to the others.
            record = await asyncio.shield(reading)
            if record is not None:
                found.append(record)
        return found

    def _start(
        self, key: str | bytes, read: Awaitable[TopicRecord | None]
    ) -> asyncio.Future[TopicRecord | None]:
        self.lookups += 1
        reading = asyncio.ensure_future(read)
        self._reading[key] = reading

        def done(reading: asyncio.Future[TopicRecord | None]) -> None:
            del self._reading[key]
            # exception() also marks a failure seen when no request awaits it any more.
            failed = reading.cancelled() or reading.exception() is not None
            if not failed and reading.result() is None:
                self._remember_absent(key)

        reading.add_done_callback(done)
        return reading

    def _may_read(self, key: str | bytes) -> bool:
        now = self._clock.monotonic_ms()
        until = self._absent.get(key)
        if until is not None:
            if until > now:
                return False
            del self._absent[key]
        if len(self._reading) >= IN_FLIGHT_MAX:
            return False
        self._tokens = min(RATE_PER_S, self._tokens + (now - self._refilled) * RATE_PER_S / 1000)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _remember_absent(self, key: str | bytes) -> None:
        now = self._clock.monotonic_ms()
        if len(self._absent) >= NEGATIVE_MAX:
            # Expired entries out first; still full, the oldest half (dicts keep order).
            self._absent = {k: t for k, t in self._absent.items() if t > now}
            if len(self._absent) >= NEGATIVE_MAX:
                keep = list(self._absent.items())[NEGATIVE_MAX // 2 :]
                self._absent = dict(keep)
        self._absent[key] = now + self._ttl_ms
