"""The read plan of a Fetch (storage/read_plan.py) and `Reader.read_many` over it.

Random layouts of multi-partition objects, some partitions partly in the log cache, are
read with `read_many` and compared with the per-partition reader it replaced (kept below
as the oracle): each partition's batches are
a prefix of what the old reader returns for it, the first partition with data in request
order gets at least one batch, and the response stays within max_bytes but for that batch. The spans
`coalesce` makes hold every range exactly once, whole, within the span bound, and merge
every gap below the coalesce bound that the span bound allows. `widen` extends a span to
the rest of its object only when the span reads at least half of it, within its bound.
"""

from __future__ import annotations

import asyncio
import random
import struct
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contextplane.metadata.records import RangeRecord
from contextplane.protocol.offsets_records import encode_batch
from contextplane.protocol.records import iter_batch_headers
from contextplane.storage.block_cache import BlockCache
from contextplane.storage.log_cache import LogCache
from contextplane.storage.memory import MemoryBudget
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.memory_wal import MemoryWal
from contextplane.storage.objectstore import BoundedObjectStore
from contextplane.storage.partition import CachedBatch, PartitionLog
from contextplane.storage.partition_index import PartitionIndex
from contextplane.storage.read_plan import Span, coalesce, split_parts, widen
from contextplane.storage.reader import Reader, ReadRequest

COALESCE_BYTES = 600
SPAN_BYTES = 6_000
PART_BYTES = 3_000


def batch(base_offset: int, records: int, value_bytes: int) -> bytes:
    raw = bytearray(encode_batch([(b"k", b"v" * value_bytes)] * records, 0))
    struct.pack_into(">q", raw, 0, base_offset)
    return bytes(raw)


@dataclass
class Layout:
    objects: dict[str, bytes]
    partitions: list[PartitionLog]


# Per object, per partition: None (no data in that object) or the batches' (records,
# value bytes), and the gap in bytes before the partition's range.
RangeSpec = tuple[list[tuple[int, int]], int] | None
layouts = st.integers(1, 5).flatmap(
    lambda partitions: st.lists(
        st.lists(
            st.one_of(
                st.none(),
                st.tuples(
                    st.lists(
                        st.tuples(st.integers(1, 3), st.integers(1, 900)), min_size=1, max_size=3
                    ),
                    st.sampled_from([0, 0, 0, 40, COALESCE_BYTES - 1, COALESCE_BYTES, 2_000]),
                ),
            ),
            min_size=partitions,
            max_size=partitions,
        ),
        min_size=1,
        max_size=5,
    )
)


def build(spec: list[list[RangeSpec]]) -> Layout:
    partitions = [
        PartitionLog(
            stream_id=p,
            topic="t",
            partition=p,
            leader_epoch=0,
            log_start_offset=0,
            next_offset=0,
            high_watermark=0,
            object_end_offset=0,
            index=PartitionIndex.in_memory(),
        )
        for p in range(len(spec[0]))
    ]
    objects: dict[str, bytes] = {}
    for number, per_partition in enumerate(spec):
        # Keys in no particular order (hashed, as upload keys are): age is the commit time.
        key = f"objects/{(number * 7919) % 97:02d}-{number}.obj"
        data = bytearray()
        for partition, range_spec in zip(partitions, per_partition, strict=True):
            if range_spec is None:
                continue
            batches, gap = range_spec
            data += b"\0" * gap
            position = len(data)
            base = partition.next_offset
            for records, value_bytes in batches:
                data += batch(partition.next_offset, records, value_bytes)
                partition.next_offset += records
            partition.ranges.append(
                RangeRecord(
                    partition.stream_id,
                    base,
                    partition.next_offset,
                    key,
                    position,
                    len(data) - position,
                    0,
                    created_ms=number,
                )
            )
        objects[key] = bytes(data)
    for partition in partitions:
        partition.high_watermark = partition.object_end_offset = partition.next_offset
    return Layout(objects, partitions)


def cache_from(partition: PartitionLog, evicted: int, objects: dict[str, bytes]) -> None:
    """The log cache holds the partition's batches but its `evicted` oldest, whose bytes
    left memory (a read there goes to objects)."""
    for record in partition.ranges:
        data = objects[record.object_key][record.position : record.position + record.size]
        position = 0
        for header in iter_batch_headers(data):
            size = header.total_bytes
            kept = data[position : position + size] if evicted <= 0 else None
            evicted -= 1
            partition.cache.append(
                CachedBatch(
                    header.base_offset,
                    header.base_offset + header.last_offset_delta + 1,
                    0,
                    kept,
                    0,
                    size,
                    uploaded=True,
                )
            )
            position += size


def old_read(
    objects: dict[str, bytes], partition: PartitionLog, offset: int, bytes_max: int
) -> list[bytes]:
    """The per-partition object read `read_many` replaced (allow_oversize), as oracle."""
    end = partition.high_watermark
    chunks: list[bytes] = []
    total = 0
    for record in partition.ranges.from_offset(offset):
        if record.base_offset >= end:
            break
        data = objects[record.object_key][record.position : record.position + record.size]
        position = 0
        for header in iter_batch_headers(data):
            size = header.total_bytes
            batch_end = header.base_offset + header.last_offset_delta + 1
            if header.base_offset >= end:
                return chunks
            if batch_end > offset:
                if chunks and total + size > bytes_max:
                    return chunks
                chunks.append(data[position : position + size])
                total += size
            position += size
        if total >= bytes_max:
            break
    return chunks


def reader_over(
    objects: dict[str, bytes],
    part_bytes: int = PART_BYTES,
    budget_bytes: int = 64 * 1024 * 1024,
) -> tuple[Reader, BoundedObjectStore]:
    store = MemoryObjectStore()
    store.bucket.objects.update(objects)
    bounded = BoundedObjectStore(store, 10_000)
    budget = MemoryBudget(budget_bytes, budget_bytes // 4)
    blocks = BlockCache(
        bounded,
        budget,
        concurrency=3,
        coalesce_bytes=COALESCE_BYTES,
        span_bytes=SPAN_BYTES,
        part_bytes=part_bytes,
    )
    return Reader(LogCache(budget, MemoryWal()), blocks), bounded


@settings(max_examples=300, deadline=None)
@given(
    spec=layouts,
    data=st.data(),
    max_bytes=st.sampled_from([0, 1, 500, 3_000, 10_000, 100_000]),
)
def test_each_partition_returns_a_prefix_of_the_old_read(
    spec: list[list[RangeSpec]], data: st.DataObject, max_bytes: int
) -> None:
    layout = build(spec)
    for partition in layout.partitions:
        # Some partitions are (partly) in the log cache: a tail fetch mixed with catch-up.
        evicted = data.draw(st.one_of(st.none(), st.integers(0, 6)))
        if evicted is not None:
            cache_from(partition, evicted, layout.objects)
    requests = [
        ReadRequest(
            p,
            data.draw(st.integers(0, p.high_watermark)),
            data.draw(st.sampled_from([0, 1, 200, 1_500, 5_000, 1_000_000])),
        )
        for p in layout.partitions
    ]
    reader, _ = reader_over(layout.objects)
    results = asyncio.run(reader.read_many(requests, max_bytes))
    total = 0
    first_batch = 0
    for request, result in zip(requests, results, strict=True):
        assert isinstance(result, list)
        got = [bytes(chunk) for chunk in result]
        oracle = old_read(
            layout.objects, request.partition, request.offset, min(request.bytes_max, max_bytes)
        )
        assert got == oracle[: len(got)]
        if request.offset < request.partition.high_watermark and not total:
            assert got, "the first partition with data gets at least one batch (KIP-74)"
        size = sum(map(len, got))
        if size:
            first_batch = first_batch or len(got[0])
            assert size <= request.bytes_max or len(got) == 1 and first_batch == len(got[0])
        total += size
    if any(r.offset < r.partition.high_watermark for r in requests):
        assert total, "a response holds at least one batch when there is one (KIP-74)"
    assert total <= max(max_bytes, first_batch)


@settings(max_examples=300, deadline=None)
@given(
    ranges=st.lists(
        st.tuples(st.sampled_from("ab"), st.integers(0, 2_000), st.integers(1, 7_000)),
        max_size=25,
    )
)
def test_spans_hold_every_range_once_whole_and_within_the_bound(
    ranges: list[tuple[str, int, int]],
) -> None:
    # Ranges of an object do not overlap: lay them out one after another with the gaps.
    records = []
    ends = {"a": 0, "b": 0}
    for key, gap, size in ranges:
        position = ends[key] + gap
        records.append(RangeRecord(0, 0, 1, key, position, size, 0))
        ends[key] = position + size
    spans = coalesce(records, COALESCE_BYTES, SPAN_BYTES)
    held = [id(r) for span in spans for r in span.ranges]
    assert sorted(held) == sorted(map(id, records))
    for span in spans:
        assert all(span.object_key == r.object_key for r in span.ranges)
        assert span.start == min(r.position for r in span.ranges)
        assert span.end == max(r.position + r.size for r in span.ranges)
        assert span.size <= SPAN_BYTES or len(span.ranges) == 1
        for part in split_parts(span, PART_BYTES):
            assert part.size <= PART_BYTES or len(part.ranges) == 1
            assert all(
                part.start <= r.position and r.position + r.size <= part.end for r in part.ranges
            )
        assert [r for part in split_parts(span, PART_BYTES) for r in part.ranges] == sorted(
            span.ranges, key=lambda r: r.position
        )
    for key in "ab":
        mine = sorted((s for s in spans if s.object_key == key), key=lambda s: s.start)
        for before, after in zip(mine, mine[1:], strict=False):
            assert before.end <= after.start  # every byte in at most one span
            gap = after.start - before.end
            # Not merged only for a gap at or above the bound, or a span that would be too big.
            assert gap >= COALESCE_BYTES or after.end - before.start > SPAN_BYTES


def test_every_partition_of_an_upload_object_is_read_as_one_span() -> None:
    spec: list[list[RangeSpec]] = [[([(2, 100), (1, 300)], 0)] * 5, [([(1, 50)], 0)] * 5]
    layout = build(spec)
    reader, store = reader_over(layout.objects, part_bytes=SPAN_BYTES)
    requests = [ReadRequest(p, 0, 1_000_000) for p in layout.partitions]
    results = asyncio.run(reader.read_many(requests, 10_000_000))
    assert store.gets == 2  # one span per object, the oldest first
    for request, result in zip(requests, results, strict=True):
        assert isinstance(result, list)
        assert [bytes(c) for c in result] == old_read(
            layout.objects, request.partition, 0, 1_000_000
        )


def test_a_fetch_over_many_partitions_reads_objects_whole_not_partitions_first() -> None:
    # 5 partitions, 6 objects, ~1 KB per partition per object, a response of ~3 objects:
    # object-major planning reads the oldest objects that fit whole (2 GETs; the third
    # would pass the bound, so it is left whole to the next fetch), where filling
    # partitions in turn reads 6 slices of the first, 6 of the second... (~15 GETs).
    spec: list[list[RangeSpec]] = [[([(1, 950)], 0)] * 5 for _ in range(6)]
    layout = build(spec)
    reader, store = reader_over(layout.objects, part_bytes=SPAN_BYTES)
    requests = [ReadRequest(p, 0, 1_000_000) for p in layout.partitions]
    results = asyncio.run(reader.read_many(requests, 3 * 5 * 1_000))
    assert store.gets == 2
    returned = sum(len(c) for r in results if isinstance(r, list) for c in r)
    assert returned >= 2 * 5 * 1_000


def next_offset(chunks: list[bytes], offset: int) -> int:
    for chunk in chunks:
        for header in iter_batch_headers(chunk):
            offset = header.base_offset + header.last_offset_delta + 1
    return offset


@pytest.mark.parametrize("seed", range(5))
def test_a_catch_up_reads_each_object_with_one_get(seed: int) -> None:
    # 20 partitions over 12 objects, each object holding a different subset of them (as
    # a fast producer's uploads do), read back from offset 0 by fetches of ~2.5 objects
    # through a block cache smaller than one object, the request order rotated as
    # librdkafka rotates it: each object is read by one GET, but for the object of the
    # first partition's next range when it is newer than the oldest one a partition still
    # needs (that range is read whatever the bounds, KIP-74; the object's other ranges
    # then cost a GET of their own later). A fetch takes whole objects and leaves the one
    # that does not fit to the next fetch.
    rng = random.Random(seed)
    spec: list[list[RangeSpec]] = [
        [([(1, 100)], 0) if rng.random() < 0.4 else None for _ in range(20)] for _ in range(12)
    ]
    for row in spec:
        row[rng.randrange(20)] = ([(1, 100)], 0)  # no object is empty
    layout = build(spec)
    object_bytes = max(map(len, layout.objects.values()))
    reader, store = reader_over(layout.objects, part_bytes=SPAN_BYTES, budget_bytes=2_000)
    offsets = [0] * len(layout.partitions)
    read: list[list[bytes]] = [[] for _ in layout.partitions]
    fetches = ahead = 0
    while any(o < p.high_watermark for o, p in zip(offsets, layout.partitions, strict=True)):
        fetches += 1
        assert fetches <= 12
        order = sorted(range(20), key=lambda p: (p - fetches) % 20)
        requests = [ReadRequest(layout.partitions[p], offsets[p], 1_000_000) for p in order]
        ages = [
            next(iter(r.partition.ranges.from_offset(r.offset))).created_ms
            if r.offset < r.partition.high_watermark
            else None
            for r in requests
        ]
        first_age = next(age for age in ages if age is not None)
        ahead += first_age > min(age for age in ages if age is not None)
        results = asyncio.run(reader.read_many(requests, 5 * object_bytes // 2))
        for p, result in zip(order, results, strict=True):
            assert isinstance(result, list)
            chunks = [bytes(c) for c in result]
            read[p] += chunks
            offsets[p] = next_offset(chunks, offsets[p])
    assert store.gets <= len(layout.objects) + ahead
    for partition, chunks in zip(layout.partitions, read, strict=True):
        assert chunks == old_read(layout.objects, partition, 0, 1_000_000)


@pytest.mark.parametrize("seed", range(3))
def test_a_catch_up_whose_first_partitions_lead_reads_each_object_once(seed: int) -> None:
    # As above, but the first partition of every request is in every object (its next
    # range is always in the oldest one read): exactly one GET per object.
    rng = random.Random(seed)
    spec: list[list[RangeSpec]] = [
        [([(1, 100)], 0)] + [([(1, 100)], 0) if rng.random() < 0.4 else None for _ in range(19)]
        for _ in range(12)
    ]
    layout = build(spec)
    object_bytes = max(map(len, layout.objects.values()))
    reader, store = reader_over(layout.objects, part_bytes=SPAN_BYTES, budget_bytes=2_000)
    offsets = [0] * len(layout.partitions)
    fetches = 0
    while any(o < p.high_watermark for o, p in zip(offsets, layout.partitions, strict=True)):
        fetches += 1
        assert fetches <= 12
        order = [0] + sorted(range(1, 20), key=lambda p: (p - fetches) % 19)
        requests = [ReadRequest(layout.partitions[p], offsets[p], 1_000_000) for p in order]
        results = asyncio.run(reader.read_many(requests, 5 * object_bytes // 2))
        for p, result in zip(order, results, strict=True):
            assert isinstance(result, list)
            offsets[p] = next_offset([bytes(c) for c in result], offsets[p])
    assert store.gets == len(layout.objects)


def test_a_span_above_the_part_bound_is_cut_between_ranges() -> None:
    records = [RangeRecord(0, 0, 1, "o", i * 1_000, 1_000, 0) for i in range(7)]
    (span,) = coalesce(records, COALESCE_BYTES, SPAN_BYTES * 2)
    parts = split_parts(span, PART_BYTES)
    assert [(p.start, p.end) for p in parts] == [(0, 3_000), (3_000, 6_000), (6_000, 7_000)]
    assert split_parts(Span("o", 0, 10, tuple(records[:1])), PART_BYTES)[0].end == 10


def test_a_span_is_widened_to_the_rest_of_its_object_when_it_reads_half_of_it() -> None:
    records = tuple(RangeRecord(0, 0, 1, "o", i * 1_000, 1_000, 0) for i in range(2, 7))
    span = Span("o", 2_000, 7_000, records)  # 5,000 bytes of the 10,000 not yet read

    def bounds(wide: Span) -> tuple[int, int]:
        return wide.start, wide.end

    wide = widen(span, 0, 10_000, 10_000)
    assert bounds(wide) == (0, 10_000)
    assert wide.ranges == records  # the bytes added belong to no range asked for
    # Less than half of the rest: left to the ranges asked for.
    assert bounds(widen(Span("o", 2_000, 6_999, records), 0, 10_000, 10_000)) == (2_000, 6_999)
    # Beyond the bound (a part, and the room the block cache has): not widened.
    assert widen(span, 0, 10_000, 9_999) is span
    # Only within the gap (cached spans or GETs in flight around it).
    assert bounds(widen(span, 1_500, 8_000, 10_000)) == (1_500, 8_000)
    assert widen(span, 2_000, 7_000, 10_000) is span


def late_partition_layout(old_objects: int) -> Layout:
    """Partitions 1-3 in `old_objects` objects, then partition 0 alone in two newer ones:
    partition 0's data is newer than everything the others have left to read."""
    spec: list[list[RangeSpec]] = [[None] + [([(1, 900)], 0)] * 3 for _ in range(old_objects)]
    spec += [[([(1, 900)], 0), None, None, None] for _ in range(2)]
    return build(spec)


def test_the_first_partition_with_data_gets_a_batch_though_its_data_is_the_newest() -> None:
    # Kafka reads partitions in request order and ignores the bounds for the first one
    # with data (ReplicaManager.readFromLog's minOneMessage): partition 0 gets a batch.
    layout = late_partition_layout(6)
    reader, _ = reader_over(layout.objects, part_bytes=SPAN_BYTES)
    requests = [ReadRequest(p, 0, 1_000_000) for p in layout.partitions]
    results = asyncio.run(reader.read_many(requests, 6_000))
    got = [[bytes(c) for c in r] for r in results if isinstance(r, list)]
    assert got[0], "partition 0 is first in the request and has data"
    assert got[0] == old_read(layout.objects, layout.partitions[0], 0, 1_000_000)[: len(got[0])]
    # The rest of the response still goes to the oldest objects: partitions 1-3 get data.
    assert all(got[1:])


@pytest.mark.parametrize("client", ["java", "librdkafka"])
def test_a_client_that_rotates_its_partitions_starves_none(client: str) -> None:
    # The backlog of partitions 1-3 takes ~6 fetches; partition 0's data is newer. Kafka
    # leaves fairness to the request order, which clients rotate: the Java consumer moves
    # a partition that returned data to the end of the next request
    # (SubscriptionState.movePartitionToEnd), librdkafka starts each request one
    # partition further. Within one rotation every partition with data gets a batch.
    layout = late_partition_layout(12)
    reader, store = reader_over(layout.objects, part_bytes=SPAN_BYTES, budget_bytes=2_000)
    count = len(layout.partitions)
    offsets = [0] * count
    read: list[list[bytes]] = [[] for _ in range(count)]
    order = list(range(count))
    fetches = 0
    while any(o < p.high_watermark for o, p in zip(offsets, layout.partitions, strict=True)):
        fetches += 1
        assert fetches <= 20
        requests = [ReadRequest(layout.partitions[p], offsets[p], 1_000_000) for p in order]
        results = asyncio.run(reader.read_many(requests, 6_000))
        returned = []
        for p, result in zip(order, results, strict=True):
            assert isinstance(result, list)
            chunks = [bytes(c) for c in result]
            read[p] += chunks
            offsets[p] = next_offset(chunks, offsets[p])
            if chunks:
                returned.append(p)
        if fetches == count:
            assert all(read), f"a partition got nothing in {count} fetches: {offsets}"
        if client == "java":
            order = [p for p in order if p not in returned] + returned
        else:
            order = order[1:] + order[:1]
    for partition, chunks in zip(layout.partitions, read, strict=True):
        assert chunks == old_read(layout.objects, partition, 0, 1_000_000)
    # Partition 0's two objects are read ahead of their turn, each once.
    assert store.gets <= len(layout.objects) + 2
