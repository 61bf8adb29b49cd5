"""The bounds of reading unknown topic names and ids from the metadata store
(broker/topic_lookup.py), on a real SQLite store and a manual clock: a topic in the store
is found, an absent name or id is not read again within the negative TTL, the reads per
second and in flight are capped (names and ids together), a key being read is read once
however many ask at once, the remembered keys are capped, and one broker alone reads
nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from contextplane.broker import topic_lookup
from contextplane.broker.topic_lookup import TopicLookup
from contextplane.clock import ManualClock
from contextplane.metadata.records import TopicRecord
from contextplane.settings import Settings
from tests.support.metadata import open_store

TTL_MS = 5_000

Read = Callable[[str], Awaitable[TopicRecord | None]]
ReadId = Callable[[bytes], Awaitable[TopicRecord | None]]


async def _no_id(topic_id: bytes) -> TopicRecord | None:
    return None


def lookup_of(
    read: Read,
    known: Callable[[str], bool],
    enabled: bool,
    ttl_ms: int,
    clock: ManualClock,
    read_id: ReadId = _no_id,
) -> TopicLookup:
    return TopicLookup(
        read, known, lambda: enabled, ttl_ms, clock, read_id=read_id, known_id=lambda i: False
    )


def test_the_lookup_finds_stored_topics_within_its_bounds(tmp_path: Path) -> None:
    async def run() -> None:
        metadata = await open_store(Settings(data_dir=tmp_path), {"stored": 3})
        clock = ManualClock()
        reads: list[str] = []

        async def read(name: str) -> TopicRecord | None:
            reads.append(name)
            return await metadata.topic(name)

        alone = lookup_of(read, lambda name: False, False, TTL_MS, clock)
        assert await alone.find(["stored"]) == [] and reads == []

        lookup = lookup_of(read, lambda name: name == "known", True, TTL_MS, clock)
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

        held = lookup_of(slow, lambda name: False, True, TTL_MS, clock)
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
        lookup = lookup_of(absent, lambda name: False, True, 10**9, clock)
        for i in range(topic_lookup.NEGATIVE_MAX + 10):
            if i % topic_lookup.RATE_PER_S == 0:
                clock.advance(1_000)
            await lookup.find([f"n{i}"])
        assert len(lookup._absent) <= topic_lookup.NEGATIVE_MAX
        assert "n0" not in lookup._absent and f"n{topic_lookup.NEGATIVE_MAX}" in lookup._absent

    asyncio.run(run())


def test_ids_are_looked_up_within_the_same_bounds(tmp_path: Path) -> None:
    async def run() -> None:
        metadata = await open_store(Settings(data_dir=tmp_path), {"stored": 3})
        stored = await metadata.topic("stored")
        assert stored is not None
        clock = ManualClock()
        reads: list[str | bytes] = []

        async def read(name: str) -> TopicRecord | None:
            reads.append(name)
            return await metadata.topic(name)

        async def read_id(topic_id: bytes) -> TopicRecord | None:
            reads.append(topic_id)
            return await metadata.topic_by_id(topic_id)

        lookup = lookup_of(read, lambda name: False, True, TTL_MS, clock, read_id)
        unknown = uuid.uuid4().bytes
        found = await lookup.find_ids([stored.topic_id, None, unknown, stored.topic_id])
        assert found == [stored] and reads == [stored.topic_id, unknown]
        # An unknown id is remembered absent for the TTL, as a name is.
        assert await lookup.find_ids([unknown]) == [] and lookup.lookups == 2
        clock.advance(TTL_MS)
        await lookup.find_ids([unknown])
        assert lookup.lookups == 3

        # Random ids spend the tokens names would: RATE_PER_S reads in an instant, for
        # names and ids together, then none until the bucket refills.
        clock.advance(1_000)
        flood = [uuid.uuid4().bytes for _ in range(1_000)]
        await lookup.find_ids(flood)
        assert lookup.lookups == 3 + topic_lookup.RATE_PER_S
        assert await lookup.find(["stored"]) == []
        assert await lookup.find_ids([stored.topic_id]) == []
        assert lookup.lookups == 3 + topic_lookup.RATE_PER_S
        clock.advance(int(1_000 / topic_lookup.RATE_PER_S))
        assert await lookup.find_ids([stored.topic_id]) == [stored]
        await metadata.close()

    asyncio.run(run())


def test_a_key_being_read_is_read_once_for_everyone_asking(tmp_path: Path) -> None:
    async def run() -> None:
        clock = ManualClock()
        release = asyncio.Event()
        record = TopicRecord("late", uuid.uuid4().bytes, 1, {})

        async def slow_id(topic_id: bytes) -> TopicRecord | None:
            await release.wait()
            return record if topic_id == record.topic_id else None

        async def no_name(name: str) -> TopicRecord | None:
            return None

        lookup = lookup_of(no_name, lambda name: False, True, TTL_MS, clock, slow_id)
        asking = [asyncio.create_task(lookup.find_ids([record.topic_id])) for _ in range(10)]
        await asyncio.sleep(0)
        # The first asker is cancelled (its connection closed): the read goes on for
        # the others.
        asking[0].cancel()
        await asyncio.sleep(0)
        assert lookup.lookups == 1
        release.set()
        answers = await asyncio.gather(*asking[1:])
        assert answers == [[record]] * 9 and lookup.lookups == 1
        # Once read, a new miss reads again (the caller adds what was found to its
        # table, which `known_id` then answers).
        assert await lookup.find_ids([record.topic_id]) == [record] and lookup.lookups == 2

    asyncio.run(run())
