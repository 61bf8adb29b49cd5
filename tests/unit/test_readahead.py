"""Read-ahead (storage/readahead.py) and the read lane (storage/read_lane.py).

The window follows the stream's rate times two GET p99s and starts over on a seek;
read-ahead needs room in the block cache; a fetch never waits for read-ahead (its GETs
stalled, the fetch completes), joins an in-flight read-ahead GET of a span it needs
instead of repeating it, and reads itself what a failed read-ahead left out; unread
read-ahead spans are evicted after read ones. The read lane holds the third catch-up
fetch while two are in it, never a tail fetch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from contextplane.clock import ManualClock
from contextplane.metadata.records import RangeRecord
from contextplane.storage.block_cache import BlockCache
from contextplane.storage.log_cache import LogCache
from contextplane.storage.memory import MemoryBudget
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.memory_wal import MemoryWal
from contextplane.storage.objectstore import BoundedObjectStore, GetLatency
from contextplane.storage.partition import PartitionLog
from contextplane.storage.partition_index import PartitionIndex
from contextplane.storage.read_lane import ReadLane
from contextplane.storage.readahead import Readahead
from contextplane.storage.reader import Reader, ReadRequest
from tests.unit.test_read_plan import RangeSpec, build, cache_from, old_read

MiB = 1024 * 1024


@dataclass
class Setup:
    reader: Reader
    blocks: BlockCache
    store: MemoryObjectStore
    bounded: BoundedObjectStore
    readahead: Readahead
    lane: ReadLane
    clock: ManualClock


def setup(
    objects: dict[str, bytes],
    budget_bytes: int = 64 * MiB,
    min_bytes: int = 8_000,
    concurrency: int = 8,
) -> Setup:
    clock = ManualClock()
    store = MemoryObjectStore()
    store.bucket.objects.update(objects)
    bounded = BoundedObjectStore(store, 10_000, clock)
    budget = MemoryBudget(budget_bytes, budget_bytes // 4)
    blocks = BlockCache(
        bounded,
        budget,
        concurrency=concurrency,
        coalesce_bytes=600,
        span_bytes=6_000,
        part_bytes=6_000,
    )
    readahead = Readahead(blocks, bounded.get_latency, clock, lambda: 100, min_bytes, 1 * MiB)
    lane = ReadLane(2)
    reader = Reader(LogCache(budget, MemoryWal()), blocks, lane, readahead)
    return Setup(reader, blocks, store, bounded, readahead, lane, clock)


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition` holds (a liveness bound, not a timing)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0)


def one_partition(objects: int) -> tuple[dict[str, bytes], PartitionLog]:
    """One partition whose ranges lie in `objects` objects, 3 records (~2.8 KB) each."""
    spec: list[list[RangeSpec]] = [[([(3, 900)], 0)] for _ in range(objects)]
    layout = build(spec)
    return layout.objects, layout.partitions[0]


def synthetic_partition(ranges: int, range_bytes: int) -> PartitionLog:
    """A partition whose index lists `ranges` ranges (no objects behind them)."""
    records = [
        RangeRecord(7, i, i + 1, f"o{i}", 0, range_bytes, 0, created_ms=i) for i in range(ranges)
    ]
    return PartitionLog(
        stream_id=7,
        topic="t",
        partition=0,
        leader_epoch=0,
        log_start_offset=0,
        next_offset=ranges,
        high_watermark=ranges,
        object_end_offset=ranges,
        index=PartitionIndex.in_memory(records),
    )


def read_in_turn(s: Setup, partition: PartitionLog, offset: int, reads: int, every_ms: int) -> int:
    """`reads` reads of 16 ranges each from `offset`, one every `every_ms`; the next offset."""
    for _ in range(reads):
        taken = list(partition.ranges.from_offset(offset))[:16]
        s.readahead.read(partition, offset, taken)
        offset = taken[-1].end_offset
        s.clock.advance(every_ms)
    return offset


def test_the_window_is_the_rate_times_two_get_p99s_within_its_bounds() -> None:
    objects: dict[str, bytes] = {}
    s = setup(objects, min_bytes=512 * 1024)
    s.readahead.max_bytes = 32 * MiB
    partition = synthetic_partition(100_000, 64 * 1024)
    for _ in range(200):
        s.bounded.get_latency.record(100)
    # 1 MiB every 100 ms: 10 MiB/s; two p99s of 100 ms: 2 MiB.
    offset = read_in_turn(s, partition, 0, 100, 100)
    stream = s.readahead.streams[7]
    assert 9.5 * MiB <= stream.rate <= 10.5 * MiB
    assert 1.9 * MiB <= stream.window <= 2.1 * MiB
    # Slower GETs: further ahead, up to the maximum.
    for _ in range(200):
        s.bounded.get_latency.record(1_000)
    offset = read_in_turn(s, partition, offset, 1, 100)
    assert 19 * MiB <= stream.window <= 21 * MiB
    for _ in range(200):
        s.bounded.get_latency.record(10_000)
    offset = read_in_turn(s, partition, offset, 1, 100)
    assert stream.window == 32 * MiB
    # A consumer that slows to 1 MiB/s over ~10 s: the window shrinks to the minimum.
    for _ in range(GetLatency.SAMPLES):  # the slow GETs are forgotten
        s.bounded.get_latency.record(100)
    read_in_turn(s, partition, offset, 10, 1_000)
    assert stream.window == 512 * 1024


def test_a_read_at_an_unexpected_offset_is_a_seek_and_starts_over() -> None:
    s = setup({}, min_bytes=512 * 1024)
    s.readahead.max_bytes = 32 * MiB
    partition = synthetic_partition(10_000, 64 * 1024)
    for _ in range(200):
        s.bounded.get_latency.record(200)
    offset = read_in_turn(s, partition, 0, 50, 100)
    stream = s.readahead.streams[7]
    assert stream.window > 2 * MiB
    # Re-reading from within the last read (a retry, or a response cut short) is no seek.
    taken = list(partition.ranges.from_offset(offset - 4))[:16]
    assert not stream.read(offset - 4, taken, s.clock.monotonic_ms())
    offset = taken[-1].end_offset
    # Back to the start: a seek.
    read_in_turn(s, partition, 0, 1, 100)
    assert stream.window == 512 * 1024
    assert stream.rate < 1 * MiB  # only the seek's own read
    assert stream.ahead_end == 16


def test_no_read_ahead_without_room_in_the_block_cache() -> None:
    objects, partition = one_partition(10)

    async def gets_for_one_fetch(budget_bytes: int) -> int:
        s = setup(objects, budget_bytes=budget_bytes)
        await s.reader.read_many([ReadRequest(partition, 0, 1)], 1)
        await until(lambda: s.blocks.ahead_bytes == 0 or s.bounded.gets > 1)
        return len(s.store.get_requests)

    # A share of 8,000 bytes holds no window of 8,000 plus an eighth of the share.
    assert asyncio.run(gets_for_one_fetch(32_000)) == 1
    # With room, the same fetch reads ahead (the window: 3 more objects).
    assert asyncio.run(gets_for_one_fetch(64 * MiB)) == 4


def test_read_ahead_never_delays_a_read() -> None:
    objects, partition = one_partition(10)
    keys = [record.object_key for record in partition.ranges]

    async def run() -> None:
        s = setup(objects)
        for key in keys[1:]:
            s.store.stall_gets(key)  # every read-ahead GET hangs
        async with asyncio.timeout(5):
            (result,) = await s.reader.read_many([ReadRequest(partition, 0, 1)], 1)
        assert isinstance(result, list)
        assert [bytes(c) for c in result] == old_read(objects, partition, 0, 1)
        assert [key for key, _, _ in s.store.get_requests] == keys[:4]
        assert s.blocks.ahead_bytes > 0  # still in flight
        for key in keys[1:]:
            s.store.resume_gets(key)

    asyncio.run(run())


def test_a_fetch_joins_the_read_ahead_get_of_a_span_it_needs() -> None:
    objects, partition = one_partition(10)
    second = list(partition.ranges)[1]
    span = (second.object_key, second.position, second.position + second.size)

    async def run() -> None:
        s = setup(objects)
        s.store.stall_gets(second.object_key)
        await s.reader.read_many([ReadRequest(partition, 0, 1)], 1)
        assert s.store.get_requests.count(span) == 1  # read ahead, stalled
        fetch = asyncio.create_task(s.reader.read_many([ReadRequest(partition, 3, 1)], 1))
        await until(lambda: s.lane.busy == 1)
        for _ in range(10):
            await asyncio.sleep(0)
        assert not fetch.done()  # it waits for that GET ...
        assert s.store.get_requests.count(span) == 1  # ... and did not repeat it
        s.store.resume_gets(second.object_key)
        async with asyncio.timeout(5):
            (result,) = await fetch
        assert isinstance(result, list)
        assert [bytes(c) for c in result] == old_read(objects, partition, 3, 1)
        assert s.store.get_requests.count(span) == 1
        # Read now: counted as read, not as read ahead.
        await until(lambda: len(s.store.get_requests) == s.bounded.gets)
        assert s.blocks.ahead_bytes == sum(r.size for r in list(partition.ranges)[2:5])

    asyncio.run(run())


def test_a_failed_read_ahead_is_silent_and_leaves_nothing_cached() -> None:
    objects, partition = one_partition(10)
    second = list(partition.ranges)[1]

    async def run() -> None:
        s = setup(objects)
        data = s.store.bucket.objects.pop(second.object_key)
        await s.reader.read_many([ReadRequest(partition, 0, 1)], 1)
        await until(lambda: s.bounded.gets == 3)  # the read and two read-ahead GETs
        await until(lambda: s.blocks.ahead_bytes == 2 * second.size)  # the failed one: gone
        s.store.bucket.objects[second.object_key] = data
        (result,) = await s.reader.read_many([ReadRequest(partition, 3, 1)], 1)
        assert isinstance(result, list)
        assert [bytes(c) for c in result] == old_read(objects, partition, 3, 1)

    asyncio.run(run())


def test_unread_read_ahead_spans_are_evicted_after_read_ones() -> None:
    objects = {"a": bytes(range(256)) * 64}

    def ranges(*bounds: tuple[int, int]) -> list[RangeRecord]:
        return [RangeRecord(0, 0, 1, "a", start, end - start, 0) for start, end in bounds]

    async def run() -> None:
        s = setup(objects, budget_bytes=4 * 7_000)  # a share of 7,000 bytes
        ahead = ranges((0, 3_000))
        assert len(s.blocks.prefetch(ahead)) == 1
        await until(lambda: s.bounded.gets == 1)
        await s.blocks.read_ranges(ranges((4_000, 7_000)))
        await s.blocks.read_ranges(ranges((8_000, 11_000)))  # over the share: one goes
        assert s.bounded.gets == 3
        await s.blocks.read_ranges(ahead)  # the read-ahead span stayed
        assert s.bounded.gets == 3
        await s.blocks.read_ranges(ranges((4_000, 7_000)))  # the older read span went
        assert s.bounded.gets == 4

    asyncio.run(run())


def test_the_read_lane_holds_a_third_catch_up_fetch_but_never_a_tail_fetch() -> None:
    layout = build([[([(1, 500)], 0)] * 3 for _ in range(2)])
    tail = build([[([(2, 300)], 0)]])
    cache_from(tail.partitions[0], 0, tail.objects)  # all of it in the log cache

    async def run() -> None:
        s = setup(layout.objects)
        s.store.stall()
        fetches = [
            asyncio.create_task(s.reader.read_many([ReadRequest(p, 0, 1_000_000)], 1_000_000))
            for p in layout.partitions
        ]
        await until(lambda: s.lane.busy == 2 and s.lane.waiting == 1)
        async with asyncio.timeout(5):
            (result,) = await s.reader.read_many(
                [ReadRequest(tail.partitions[0], 0, 1_000_000)], 1_000_000
            )
        assert [bytes(c) for c in result] == old_read(  # type: ignore[union-attr]
            tail.objects, tail.partitions[0], 0, 1_000_000
        )
        assert s.lane.busy == 2 and s.lane.waiting == 1
        s.store.resume()
        async with asyncio.timeout(5):
            results = await asyncio.gather(*fetches)
        for partition, (got,) in zip(layout.partitions, results, strict=True):
            assert isinstance(got, list)
            assert [bytes(c) for c in got] == old_read(layout.objects, partition, 0, 1_000_000)
        assert s.lane.busy == 0

    asyncio.run(run())


def test_streams_are_bounded_by_live_partitions_and_forgotten_when_idle() -> None:
    s = setup({})
    s.readahead = Readahead(s.blocks, s.bounded.get_latency, s.clock, lambda: 2)
    partitions = [synthetic_partition(10, 1_000) for _ in range(3)]
    for stream_id, partition in enumerate(partitions):
        partition.stream_id = stream_id
        s.readahead.read(partition, 0, list(partition.ranges)[:1])
    assert list(s.readahead.streams) == [1, 2]  # the least recently read went
    s.clock.advance(59_000)
    s.readahead.read(partitions[2], 1, list(partitions[2].ranges)[1:2])
    s.clock.advance(2_000)  # stream 1: 61 s unread; stream 2: 2 s
    s.readahead.read(partitions[0], 0, list(partitions[0].ranges)[:1])
    assert list(s.readahead.streams) == [2, 0]
