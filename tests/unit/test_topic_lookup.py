"""The bounds of reading unknown topic names from the metadata store (broker/topic_lookup.py),
on a real SQLite store and a manual clock: a topic in the store is found, an absent name
is not read again within the negative TTL, the reads per second and in flight are capped,
the remembered names are capped, and one broker alone reads nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contextplane.broker import topic_lookup
from contextplane.broker.topic_lookup import TopicLookup
from contextplane.clock import ManualClock
from contextplane.metadata.records import TopicRecord
from contextplane.settings import Settings
from tests.support.metadata import open_store

TTL_MS = 5_000


def test_the_lookup_finds_stored_topics_within_its_bounds(tmp_path: Path) -> None:
    async def run() -> None:
        metadata = await open_store(Settings(data_dir=tmp_path), {"stored": 3})
        clock = ManualClock()
        reads: list[str] = []

        async def read(name: str) -> TopicRecord | None:
            reads.append(name)
            return await metadata.topic(name)

        alone = TopicLookup(read, lambda name: False, lambda: False, TTL_MS, clock)
        assert await alone.find(["stored"]) == [] and reads == []

        lookup = TopicLookup(read, lambda name: name == "known", lambda: True, TTL_MS, clock)
        found = await lookup.find(["known", "stored", "stored", None, "absent"])
        assert [(t.name, t.partitions) for t in found] == [("stored", 3)]
        assert reads == ["stored", "absent"] and lookup.lookups == 2

        # Absent within the TTL: not read again; past it, read again.
        assert await lookup.find(["absent"]) == [] and lookup.lookups == 2
        clock.advance(TTL_MS)
        await lookup.find(["absent"])
        assert lookup.lookups == 3

        # A flood: the token bucket allows RATE_PER_S reads in one instant, then one more
        # per 1/RATE_PER_S seconds.
        clock.advance(1_000)
        flood = [f"n{i}" for i in range(1_000)]
        await lookup.find(flood)
        assert lookup.lookups == 3 + topic_lookup.RATE_PER_S
        await lookup.find(flood)
        assert lookup.lookups == 3 + topic_lookup.RATE_PER_S
        clock.advance(int(1_000 / topic_lookup.RATE_PER_S))
        await lookup.find(flood)
        assert lookup.lookups == 4 + topic_lookup.RATE_PER_S

        # At most IN_FLIGHT_MAX reads at once, broker-wide.
        clock.advance(1_000)
        release = asyncio.Event()

        async def slow(name: str) -> TopicRecord | None:
            await release.wait()
            return None

        held = TopicLookup(slow, lambda name: False, lambda: True, TTL_MS, clock)
        tasks = [asyncio.create_task(held.find([f"h{i}"])) for i in range(10)]
        await asyncio.sleep(0)
        assert held.lookups == topic_lookup.IN_FLIGHT_MAX
        release.set()
        await asyncio.gather(*tasks)
        await metadata.close()

    asyncio.run(run())


def test_the_names_remembered_absent_are_capped(tmp_path: Path) -> None:
    async def run() -> None:
        clock = ManualClock()

        async def absent(name: str) -> TopicRecord | None:
            return None

        # None expires meanwhile: the oldest half goes when the cap is reached.
        lookup = TopicLookup(absent, lambda name: False, lambda: True, 10**9, clock)
        for i in range(topic_lookup.NEGATIVE_MAX + 10):
            if i % topic_lookup.RATE_PER_S == 0:
                clock.advance(1_000)
            await lookup.find([f"n{i}"])
        assert len(lookup._absent) <= topic_lookup.NEGATIVE_MAX
        assert "n0" not in lookup._absent and f"n{topic_lookup.NEGATIVE_MAX}" in lookup._absent

    asyncio.run(run())
