"""The block cache of spans (storage/block_cache.py): a cached span serves every range
inside it with no request, concurrent readers of one span share one GET, spans are
evicted least recently used first within the budget's share, and a deleted object's
spans are forgotten. A span that reads at least half of the rest of its object reads all
of that rest in its GET (read-ahead's too), within one part and the block cache's room,
and never again what is cached; so do ranges that fill half of it across holes."""

from __future__ import annotations

import asyncio

from contextplane.metadata.records import RangeRecord
from contextplane.storage.block_cache import BlockCache
from contextplane.storage.memory import MemoryBudget
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.objectstore import BoundedObjectStore

OBJECT = bytes(range(256)) * 64  # 16 KiB


def ranges(key: str, *bounds: tuple[int, int]) -> list[RangeRecord]:
    return [RangeRecord(0, 0, 1, key, start, end - start, 0) for start, end in bounds]


def cache(
    budget_bytes: int = 1 << 20, objects: tuple[str, ...] = ("a", "b")
) -> tuple[BlockCache, BoundedObjectStore, MemoryObjectStore, MemoryBudget]:
    store = MemoryObjectStore()
    for key in objects:
        store.bucket.objects[key] = OBJECT
    bounded = BoundedObjectStore(store, 10_000)
    budget = MemoryBudget(budget_bytes, budget_bytes)
    blocks = BlockCache(bounded, budget, coalesce_bytes=100, span_bytes=8_192, part_bytes=8_192)
    return blocks, bounded, store, budget


def test_a_span_serves_every_range_inside_it_without_a_request() -> None:
    async def run() -> None:
        blocks, store, _, _ = cache()
        wanted = ranges("a", (0, 1_000), (1_050, 3_000), (3_000, 4_000))
        got = await blocks.read_ranges(wanted)
        assert store.gets == 1  # gaps below 100 bytes: one span
        assert [bytes(g) for g in got] == [OBJECT[r.position : r.position + r.size] for r in wanted]
        inside = ranges("a", (10, 20), (1_000, 1_050), (3_999, 4_000), (0, 4_000))
        again = await blocks.read_ranges(inside)
        assert store.gets == 1
        assert [bytes(g) for g in again] == [
            OBJECT[r.position : r.position + r.size] for r in inside
        ]
        assert isinstance(again[0], memoryview)
        assert again[0].obj is got[0].obj  # a slice of the GET's buffer, not a copy
        await blocks.read_ranges(ranges("a", (3_500, 5_000)))  # reaches past the span
        assert store.gets == 2

    asyncio.run(run())


def test_concurrent_reads_of_one_span_cost_one_get() -> None:
    async def run() -> None:
        blocks, store, memory, _ = cache()
        memory.stall()
        readers = [
            asyncio.create_task(blocks.read_ranges(ranges("a", (0, 2_000), (2_000, 4_000)))),
            asyncio.create_task(blocks.read_ranges(ranges("a", (100, 200)))),
            asyncio.create_task(blocks.read_ranges(ranges("a", (2_000, 4_000)))),
        ]
        for _ in range(5):
            await asyncio.sleep(0)  # every reader has asked; the GET is stalled
        memory.resume()
        first, second, third = await asyncio.gather(*readers)
        assert store.gets == 1
        assert bytes(second[0]) == OBJECT[100:200]
        assert bytes(third[0]) == OBJECT[2_000:4_000]
        assert bytes(first[1]) == OBJECT[2_000:4_000]

    asyncio.run(run())


def test_a_failed_get_fails_its_ranges_only() -> None:
    async def run() -> None:
        blocks, _, memory, _ = cache()
        del memory.bucket.objects["b"]
        got = await blocks.read_ranges(ranges("a", (0, 10)) + ranges("b", (0, 10)))
        assert bytes(got[0]) == OBJECT[:10]  # type: ignore[arg-type]
        assert isinstance(got[1], OSError)

    asyncio.run(run())


def test_spans_are_evicted_least_recently_used_first_within_the_share() -> None:
    async def run() -> None:
        # A 32 KiB budget: an 8 KiB block cache share, room for two 4 KiB spans.
        blocks, store, _, budget = cache(budget_bytes=32 * 1024, objects=("a", "b", "c"))
        await blocks.read_ranges(ranges("a", (0, 4_096)))
        await blocks.read_ranges(ranges("b", (0, 4_096)))
        await blocks.read_ranges(ranges("a", (0, 10)))  # a is now the most recent
        assert store.gets == 2
        await blocks.read_ranges(ranges("c", (0, 4_096)))  # b goes
        assert budget.block_cache_bytes <= budget.block_cache_limit
        await blocks.read_ranges(ranges("a", (0, 10)))
        assert store.gets == 3
        await blocks.read_ranges(ranges("b", (0, 10)))
        assert store.gets == 4

    asyncio.run(run())


def test_a_larger_span_replaces_the_spans_it_holds() -> None:
    async def run() -> None:
        blocks, store, _, budget = cache()
        await blocks.read_ranges(ranges("a", (100, 200)))
        await blocks.read_ranges(ranges("a", (1_000, 1_200)))
        await blocks.read_ranges(ranges("a", (0, 1_000), (1_000, 3_000)))
        assert budget.block_cache_bytes == 3_000
        await blocks.read_ranges(ranges("a", (150, 160), (1_100, 1_150), (2_000, 2_999)))
        assert store.gets == 3

    asyncio.run(run())


def test_forgotten_objects_are_read_again() -> None:
    async def run() -> None:
        blocks, store, _, budget = cache()
        await blocks.read_ranges(ranges("a", (0, 100)) + ranges("b", (0, 100)))
        blocks.forget_objects(["a"])
        assert budget.block_cache_bytes == 100
        await blocks.read_ranges(ranges("a", (0, 100)) + ranges("b", (0, 100)))
        assert store.gets == 3

    asyncio.run(run())


def test_concurrent_reads_of_one_range_cost_one_get() -> None:
    async def run() -> None:
        memory = MemoryObjectStore()
        memory.bucket.objects["a"] = OBJECT
        store = BoundedObjectStore(memory, 10_000)
        blocks = BlockCache(store, MemoryBudget(1 << 20, 1 << 20))
        (record,) = ranges("a", (0, 4_000))
        memory.stall()
        readers = [asyncio.create_task(blocks.read(record)) for _ in range(3)]
        for _ in range(5):
            await asyncio.sleep(0)  # every reader has asked; the GET is stalled
        memory.resume()
        for got in await asyncio.gather(*readers):
            assert bytes(got) == OBJECT[:4_000]
        assert store.gets == 1

    asyncio.run(run())


PARTITION_BYTES = 2_048  # eight partitions' ranges fill one 16 KiB object


def partitions(key: str, *indexes: int) -> list[RangeRecord]:
    return ranges(key, *((i * PARTITION_BYTES, (i + 1) * PARTITION_BYTES) for i in indexes))


def object_cache(budget_bytes: int = 1 << 20) -> tuple[BlockCache, MemoryObjectStore]:
    """A cache that knows object "a" (16 KiB) holds eight partitions' ranges."""
    store = MemoryObjectStore()
    store.bucket.objects["a"] = OBJECT
    budget = MemoryBudget(budget_bytes, budget_bytes)
    size = len(OBJECT)
    blocks = BlockCache(
        BoundedObjectStore(store, 10_000),
        budget,
        coalesce_bytes=100,
        span_bytes=size,
        part_bytes=size,
    )
    blocks.learn(partitions("a", *range(8)))
    return blocks, store


def test_a_span_reading_half_of_an_object_reads_all_of_it_for_the_other_partitions() -> None:
    async def run() -> None:
        blocks, store = object_cache()
        await blocks.read_ranges(partitions("a", 0, 1, 2, 3))
        assert store.get_requests == [("a", 0, len(OBJECT))]
        got = await blocks.read_ranges(partitions("a", 4, 5, 6, 7))
        assert len(store.get_requests) == 1  # the other partitions' ranges were read with it
        assert bytes(got[3]) == OBJECT[7 * PARTITION_BYTES :]

    asyncio.run(run())


def test_a_span_reading_less_than_half_of_an_object_reads_its_ranges_only() -> None:
    async def run() -> None:
        blocks, store = object_cache()
        await blocks.read_ranges(partitions("a", 0, 1, 2))
        assert store.get_requests == [("a", 0, 3 * PARTITION_BYTES)]

    asyncio.run(run())


def test_widening_reads_only_what_is_neither_cached_nor_in_flight() -> None:
    async def run() -> None:
        blocks, store = object_cache()
        await blocks.read_ranges(partitions("a", 0))
        await blocks.read_ranges(partitions("a", 1, 2, 3, 4))  # 4 of the 7 partitions left
        assert store.get_requests[1] == ("a", PARTITION_BYTES, len(OBJECT))

    asyncio.run(run())


def test_widening_stays_within_the_objects_known_ranges() -> None:
    async def run() -> None:
        blocks, store = object_cache()
        blocks.forget_objects(["a"])
        # The first two partitions' ranges left this object (compaction moved them).
        blocks.learn(partitions("a", *range(2, 8)))
        await blocks.read_ranges(partitions("a", 2, 3, 4))
        assert store.get_requests == [("a", 2 * PARTITION_BYTES, len(OBJECT))]

    asyncio.run(run())


def test_a_widened_span_holds_the_next_span_of_its_object_in_one_get() -> None:
    async def run() -> None:
        blocks, store = object_cache()
        # Two spans (a gap above the coalesce bound): the first widened holds the second.
        tail = ranges("a", (len(OBJECT) - 1_000, len(OBJECT)))
        got = await blocks.read_ranges(partitions("a", 0, 1, 2, 3, 4) + tail)
        assert store.get_requests == [("a", 0, len(OBJECT))]
        assert bytes(got[-1]) == OBJECT[-1_000:]

    asyncio.run(run())


def test_ranges_filling_half_of_an_object_across_holes_are_read_in_one_get() -> None:
    async def run() -> None:
        blocks, store = object_cache()
        # Holes above the coalesce bound between them (partitions not asked for, or
        # ranges compaction moved out): coalesced alone they would be four GETs.
        got = await blocks.read_ranges(partitions("a", 0, 2, 4, 6, 7))
        assert store.get_requests == [("a", 0, len(OBJECT))]
        assert bytes(got[2]) == OBJECT[4 * PARTITION_BYTES : 5 * PARTITION_BYTES]
        await blocks.read_ranges(partitions("a", 1, 3, 5))
        assert len(store.get_requests) == 1

    asyncio.run(run())


def test_widening_stays_within_the_block_cache_room() -> None:
    async def run() -> None:
        # A 24 KiB budget: a 6 KiB share, less an eighth kept free: 5,376 bytes of room,
        # too little for the 7 KiB that would widen 4.5 partitions' span to the object.
        blocks, store = object_cache(budget_bytes=24 * 1024)
        records = partitions("a", 0, 1, 2, 3) + ranges("a", (8_192, 9_216))
        await blocks.read_ranges(records)
        assert store.get_requests == [("a", 0, 9_216)]

    asyncio.run(run())


def test_read_ahead_reads_the_rest_of_an_object_for_the_other_partitions() -> None:
    async def run() -> None:
        blocks, store = object_cache()
        covered = blocks.prefetch(partitions("a", 2, 3, 4, 5))
        assert len(covered) == 4
        await blocks.read_ranges(partitions("a", 2))  # joins the read-ahead GET
        await blocks.read_ranges(partitions("a", 0, 1, 6, 7))
        assert store.get_requests == [("a", 0, len(OBJECT))]

    asyncio.run(run())


def test_a_span_carries_on_over_the_ranges_offered_to_one_part_kept_as_read_ahead() -> None:
    async def run() -> None:
        # A budget whose share (a quarter) holds 8 KiB: the GET's own 5 KiB, read, goes
        # first when other spans come in; the 3 KiB carried after it, read ahead, stays.
        blocks, store, memory, budget = cache(budget_bytes=32_768, objects=("a", "b", "c"))
        along = ranges("a", (5_000, 8_000), (8_000, 9_000))  # the second passes the part
        got = await blocks.read_ranges(ranges("a", (0, 5_000)), along)
        assert bytes(got[0]) == OBJECT[:5_000]
        assert memory.get_requests == [("a", 0, 8_000)]
        assert blocks.ahead_bytes == 3_000
        await blocks.read_ranges(ranges("b", (0, 5_000)))
        await blocks.read_ranges(ranges("c", (0, 5_000)))
        (carried,) = await blocks.read_ranges(along[:1])
        assert bytes(carried) == OBJECT[5_000:8_000]
        assert store.gets == 3  # the carried range was still cached
        assert blocks.ahead_bytes == 0  # read now
        # Offered ranges not back to back with the span are not carried.
        await blocks.read_ranges(ranges("b", (8_000, 9_000)), ranges("b", (9_100, 9_200)))
        assert memory.get_requests[-1] == ("b", 8_000, 9_000)
        assert budget.block_cache_bytes <= budget.block_cache_limit

    asyncio.run(run())


def test_a_read_ahead_span_read_in_part_outlives_the_spans_read_whole() -> None:
    """A span read ahead holds the next ranges of many partitions; one partition's read
    of its range made all of it a read span, evicted before the others had read theirs
    (a cold replay with librdkafka's 1 MiB per partition read ~1.5 × the bytes stored).
    It counts as read only once every range in it has been returned."""

    async def run() -> None:
        blocks, store, _, _ = cache(budget_bytes=4 * 2 * len(OBJECT), objects=("a", "b", "c"))
        quarter = len(OBJECT) // 4
        parts = {k: ranges(k, *[(i * quarter, (i + 1) * quarter) for i in range(4)]) for k in "abc"}
        blocks.prefetch(parts["a"])  # read ahead: object a whole
        while blocks._pending:
            await asyncio.sleep(0)
        await blocks.read_ranges(parts["a"][:1])  # one partition reads its range
        await blocks.read_ranges(parts["b"])  # object b read whole: the share is full
        await blocks.read_ranges(parts["c"])  # c pushes one span out: b, read whole
        before = store.gets
        got = await blocks.read_ranges(parts["a"][1:])  # the other partitions of a
        assert store.gets == before, "a's unread ranges were evicted"
        assert [bytes(g) for g in got] == [
            OBJECT[r.position : r.position + r.size] for r in parts["a"][1:]
        ]

    asyncio.run(run())
