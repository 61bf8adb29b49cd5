"""GETs of reading what object compaction writes (compaction_plan.pack, read_plan): an
output read whole costs one GET per read part it was laid out in, and a catch-up over a
compacted layout reads each object whole once, the ranges cut into it (which keep a later
commit time) with the rest, so it costs no more GETs per GiB than one of uploads (one per
8 MiB)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contextplane import limits
from contextplane.metadata.records import ObjectSummary, RangeRecord
from contextplane.protocol.offsets_records import encode_batch
from contextplane.protocol.records import iter_batch_headers
from contextplane.storage.block_cache import BlockCache
from contextplane.storage.compaction_plan import (
    OutputKind,
    Piece,
    PlanConfig,
    StreamLayout,
    Task,
    pack,
    plan,
)
from contextplane.storage.log_cache import LogCache
from contextplane.storage.memory import MemoryBudget
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.memory_wal import MemoryWal
from contextplane.storage.partition import PartitionLog
from contextplane.storage.partition_index import PartitionIndex
from contextplane.storage.read_plan import PlanPartition, coalesce, plan_ranges, split_parts
from contextplane.storage.reader import Reader, ReadRequest

MIB = 1024 * 1024
GIB = 1024 * MIB
# The reader's defaults (block_cache.BlockCache) and the compactor's output bound at the
# default memory budget: a quarter of its in-flight share (object_compactor.plan_config).
PART = min(limits.OBJECT_READ_PART_BYTES, limits.OBJECT_READ_SPAN_BYTES)
BOUND = min(limits.OBJECT_COMPACTION_MERGED_BYTES, limits.MEMORY_BUDGET_BYTES // 8)
# The compactor's plan at the defaults, every upload old enough.
CONFIG = PlanConfig(
    min_age_ms=0,
    max_objects=limits.OBJECT_COMPACTION_MAX_OBJECTS,
    stream_split_bytes=limits.OBJECT_COMPACTION_STREAM_SPLIT_BYTES,
    stream_object_bytes=BOUND,
    merged_bytes=BOUND,
    live_ratio=limits.OBJECT_COMPACTION_LIVE_RATIO,
    range_bytes=limits.UPLOAD_BYTES_MAX,
    part_bytes=PART,
)


def whole_read_gets(task: Task, coalesce_bytes: int, part: int) -> int:
    """The GETs of reading the task's output whole as the block cache cuts it: its ranges
    (one per piece, laid out back to back as build_object does) coalesced into spans,
    each span cut into parts."""
    ranges = []
    position = 0
    for piece in task.pieces:
        ranges.append(
            RangeRecord(piece.stream_id, piece.base_offset, piece.end_offset, "out", position,
                        piece.size, 0, 0)
        )  # fmt: skip
        position += piece.size
    return sum(len(split_parts(s, part)) for s in coalesce(ranges, coalesce_bytes, part))


def uploads(streams: int, count: int, seed: int) -> tuple[list[ObjectSummary], dict]:
    """`count` uploads of ~8 MiB, each holding one range of every stream (a steady load
    spread over `streams` partitions), and the streams' layouts."""
    rng = random.Random(seed)
    share = limits.UPLOAD_BYTES_MAX // streams
    logs: dict[int, list[RangeRecord]] = {s: [] for s in range(streams)}
    objects = []
    for number in range(count):
        key = f"u{number:03d}"
        ranges = []
        position = 0
        for stream in range(streams):
            size = rng.randint(share * 3 // 4, share * 5 // 4)
            base = len(logs[stream]) * 100
            record = RangeRecord(stream, base, base + 100, key, position, size, 0, number)
            logs[stream].append(record)
            ranges.append(record)
            position += size
        objects.append(ObjectSummary(key, position, number, 0, len(ranges), tuple(ranges)))
    layouts = {s: StreamLayout(r, 1 << 40, 1 << 40) for s, r in logs.items()}
    return objects, layouts


# 128 uploads at 8 partitions: each stream's last output, a small one, costs a GET too.
@pytest.mark.parametrize(("streams", "count"), [(8, 128), (1_000, 32)])
def test_a_compacted_layout_read_whole_costs_no_more_gets_per_gib_than_uploads(
    streams: int, count: int
) -> None:
    objects, layouts = uploads(streams, count, seed=streams)
    tasks = plan(objects, layouts, 10**6, CONFIG)
    kinds = {task.kind for task in tasks}
    assert kinds == {OutputKind.STREAM if streams == 8 else OutputKind.MERGED}
    assert sum(task.size for task in tasks) == sum(o.size for o in objects)
    gets = [whole_read_gets(t, limits.OBJECT_READ_COALESCE_BYTES, PART) for t in tasks]
    # No output costs more GETs than the parts its bound holds (two, not three).
    assert max(gets) == BOUND // PART
    # Uploads cost 128 GETs per GiB (one per 8 MiB); the outputs' 20 MiB cut into parts
    # of 9 MiB cost 3 GETs per 20 MiB, about 154.
    per_gib = sum(gets) * GIB / sum(task.size for task in tasks)
    assert per_gib <= 128


def test_a_range_larger_than_a_part_is_a_part_and_larger_than_the_bound_an_output() -> None:
    records = [RangeRecord(0, n, n + 1, "u", 0, size, 0, 0) for n, size in
               enumerate([30, 60, 10, 250, 40, 40, 40])]  # fmt: skip
    tasks = pack(OutputKind.MERGED, [Piece(0, tuple(records))], limit=100, part=50)
    assert [[r.size for p in t.pieces for r in p.sources] for t in tasks] == [
        [30, 60],  # two parts: 30, then 60 alone (larger than a part)
        [10],  # 10 then 250 would pass the bound
        [250],
        [40, 40],  # two parts of 40 (80 + 40 > 50)
        [40],
    ]
    assert [len(t.pieces) for t in tasks] == [2, 1, 1, 2, 1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.lists(st.integers(1, 400), min_size=1, max_size=12), min_size=1),
    limit=st.integers(1, 1_500),
    part=st.integers(1, 1_500),
)
def test_an_output_read_whole_costs_one_get_per_part_its_bound_holds(
    sizes: list[list[int]], limit: int, part: int
) -> None:
    pieces = []
    for stream, run in enumerate(sizes):
        position = 0
        records = []
        for n, size in enumerate(run):
            records.append(RangeRecord(stream, n, n + 1, "u", position, size, 0, 0))
            position += size
        pieces.append(Piece(stream, tuple(records)))
    tasks = pack(OutputKind.MERGED, pieces, limit, part)
    # Every range in exactly one output, in order; outputs within their bound.
    flat = [r for t in tasks for p in t.pieces for r in p.sources]
    assert flat == [r for p in pieces for r in p.sources]
    for task in tasks:
        assert task.size <= limit or (len(task.pieces) == 1 and len(task.pieces[0].sources) == 1)
        # Read whole by the reader's cuts (ranges back to back: any coalesce bound above 0).
        assert whole_read_gets(task, 1, part) <= max(1, limit // part)


def compacted_ranges(tasks: list[Task]) -> dict[int, list[RangeRecord]]:
    """Each stream's ranges after the tasks swapped, as the compactor writes them: a
    range per piece, with its first source's commit time, under hashed keys (as
    object_format.object_key makes them: their order is not the outputs')."""
    logs: dict[int, list[RangeRecord]] = {}
    for number, task in enumerate(tasks):
        key = f"objects/{(number * 7919) % 97:02d}/{number}.obj"
        position = 0
        for piece in task.pieces:
            logs.setdefault(piece.stream_id, []).append(
                RangeRecord(piece.stream_id, piece.base_offset, piece.end_offset, key,
                            position, piece.size, 0, piece.created_ms)
            )  # fmt: skip
            position += piece.size
    return {s: sorted(r, key=lambda r: r.base_offset) for s, r in logs.items()}


def catch_up_gets(logs: dict[int, list[RangeRecord]], max_bytes: int, bytes_max: int) -> int:
    """The GETs of reading every stream from offset 0 by fetches planned as the reader
    plans them (plan_ranges; the request order rotated by one each fetch, as librdkafka
    does), each fetch's ranges of an object read by the spans and parts the block cache
    cuts, nothing kept between fetches."""
    streams = sorted(logs)
    offsets = dict.fromkeys(streams, 0)
    ends = {s: logs[s][-1].end_offset for s in streams}
    gets = fetches = 0
    while any(offsets[s] < ends[s] for s in streams):
        order = streams[fetches % len(streams) :] + streams[: fetches % len(streams)]
        fetches += 1
        plans = [
            PlanPartition(iter([r for r in logs[s] if r.end_offset > offsets[s]]), ends[s],
                          bytes_max)
            for s in order
        ]  # fmt: skip
        plan_ranges(plans, max_bytes)
        for stream, taken in zip(order, plans, strict=True):
            if taken.taken:
                offsets[stream] = taken.taken[-1].end_offset
        spans = coalesce(
            [r for p in plans for r in p.taken], limits.OBJECT_READ_COALESCE_BYTES, PART
        )
        gets += sum(len(split_parts(span, PART)) for span in spans)
    return gets


def test_a_catch_up_of_a_compacted_layout_costs_no_more_gets_per_gib_than_uploads() -> None:
    # 1,000 partitions, 256 MiB, one pass over the 32 uploads: merged outputs of two
    # parts, a partition's data cut where a part or an output ends. Read back by 64 MiB
    # fetches of up to 8 MiB per partition (the bench's consumer): every fetch takes whole
    # objects, with the ranges cut into them (which carry a later commit time).
    objects, layouts = uploads(1_000, 32, seed=0)
    tasks = plan(objects, layouts, 10**6, CONFIG)
    gets = catch_up_gets(compacted_ranges(tasks), 64 * MIB, 8 * MIB)
    assert gets == sum(whole_read_gets(t, limits.OBJECT_READ_COALESCE_BYTES, PART) for t in tasks)
    assert gets * GIB / sum(o.size for o in objects) <= 128


def test_a_partition_takes_a_further_range_of_one_object_only_within_its_bound() -> None:
    # A stream object of three ~5 MiB pieces: an 8 MiB partition bound takes the first
    # only (the second would be read whole for the 3 MiB the response returns of it, and
    # read again by the next fetch); its first range in the next object follows the
    # partition's own rule, one range past the bound.
    pieces = [
        RangeRecord(0, n * 10, n * 10 + 10, key, position, 5 * MIB, 0, n)
        for n, (key, position) in enumerate([("s1", 0), ("s1", 5 * MIB), ("s1", 10 * MIB)])
    ]
    plan = PlanPartition(iter(pieces), 30, 8 * MIB)
    plan_ranges([plan], 64 * MIB)
    assert [r.base_offset for r in plan.taken] == [0]
    # Two objects: the partition's range in the second is its first there.
    spread = [pieces[0], RangeRecord(0, 10, 20, "s2", 0, 5 * MIB, 0, 1)]
    plan = PlanPartition(iter(spread), 20, 8 * MIB)
    plan_ranges([plan], 64 * MIB)
    assert [r.base_offset for r in plan.taken] == [0, 10]


# The defaults scaled down 1,024 times (KiB for MiB), so a catch-up of real batches runs
# through the real reader and block cache: parts of 9, outputs of 20, uploads of 8, 8 per
# partition and 64 per fetch (the bench's consumer), a 160 budget (a share of 40).
KIB = 1024
SCALED = dataclasses.replace(
    CONFIG,
    stream_split_bytes=8 * KIB,
    stream_object_bytes=20 * KIB,
    merged_bytes=20 * KIB,
    range_bytes=8 * KIB,
    part_bytes=9 * KIB,
)


def scaled_uploads(streams: int, count: int) -> tuple[list[ObjectSummary], dict]:
    """`count` uploads of ~8 KiB, a range of every stream in each (as `uploads`)."""
    rng = random.Random(streams)
    logs: dict[int, list[RangeRecord]] = {s: [] for s in range(streams)}
    objects = []
    for number in range(count):
        ranges, position = [], 0
        for stream in range(streams):
            size = rng.randint(8 * KIB // streams * 3 // 4, 8 * KIB // streams * 5 // 4)
            base = len(logs[stream]) * 100
            record = RangeRecord(stream, base, base + 100, f"u{number}", position, size, 0, number)
            logs[stream].append(record)
            ranges.append(record)
            position += size
        objects.append(ObjectSummary(f"u{number}", position, number, 0, len(ranges), tuple(ranges)))
    return objects, {s: StreamLayout(r, 1 << 40, 1 << 40) for s, r in logs.items()}


def one_batch(base_offset: int, records: int, size: int) -> bytes:
    """A batch of `records` records of exactly `size` bytes in all."""
    overhead = len(encode_batch([(b"", b"")] * records, 0))
    raw = bytearray(encode_batch([(b"", b"")] * (records - 1) + [(b"", b"v" * 0)], 0))
    value = size - overhead
    while len(raw) != size:  # a varint length grows with the value: settle on the size
        raw = bytearray(encode_batch([(b"", b"")] * (records - 1) + [(b"", b"v" * value)], 0))
        value += size - len(raw)
    struct.pack_into(">q", raw, 0, base_offset)
    return bytes(raw)


def compacted_partitions(tasks: list[Task]) -> tuple[dict[str, bytes], list[PartitionLog]]:
    """The outputs as objects of real batches (a batch per piece) and the partitions'
    ranges over them, as `compacted_ranges` lays them out."""
    logs = compacted_ranges(tasks)
    objects: dict[str, bytes] = {}
    for stream in sorted(logs):
        for record in logs[stream]:
            data = one_batch(record.base_offset, record.end_offset - record.base_offset,
                             record.size)  # fmt: skip
            held = objects.get(record.object_key, b"")
            assert len(held) == record.position
            objects[record.object_key] = held + data
    partitions = []
    for stream, ranges in sorted(logs.items()):
        end = ranges[-1].end_offset
        partition = PartitionLog(
            stream_id=stream, topic="t", partition=stream, leader_epoch=0, log_start_offset=0,
            next_offset=end, high_watermark=end, object_end_offset=end,
            index=PartitionIndex.in_memory(),
        )  # fmt: skip
        for record in ranges:
            partition.ranges.append(record)
        partitions.append(partition)
    return objects, partitions


async def reader_catch_up_gets(objects: dict[str, bytes], partitions: list[PartitionLog]) -> int:
    """The GETs of reading every partition from offset 0 with `Reader.read_many` (64 KiB
    fetches of up to 8 KiB per partition, the request order rotated by one each fetch as
    librdkafka does), through a block cache of the scaled defaults."""
    store = MemoryObjectStore()
    store.bucket.objects.update(objects)
    budget = MemoryBudget(160 * KIB, 40 * KIB)
    blocks = BlockCache(store, budget, coalesce_bytes=KIB, span_bytes=9 * KIB, part_bytes=9 * KIB)
    reader = Reader(LogCache(budget, MemoryWal()), blocks)
    offsets = [0] * len(partitions)
    fetches = 0
    while any(o < p.high_watermark for o, p in zip(offsets, partitions, strict=True)):
        order = [(fetches + n) % len(partitions) for n in range(len(partitions))]
        fetches += 1
        requests = [ReadRequest(partitions[i], offsets[i], 8 * KIB) for i in order]
        results = await reader.read_many(requests, 64 * KIB)
        for index, chunks in zip(order, results, strict=True):
            assert isinstance(chunks, list)
            for chunk in chunks:
                for header in iter_batch_headers(bytes(chunk)):
                    assert header.base_offset == offsets[index]
                    offsets[index] += header.last_offset_delta + 1
    return len(store.get_requests)


def test_a_catch_up_of_stream_objects_reads_each_part_once() -> None:
    # 8 partitions, one pass over 32 uploads: stream objects of two parts, each part a
    # piece of up to 8 and the start of the next. A partition's fetch of up to 8 ends
    # inside a part; the GET reads on to the part's end (kept as read-ahead), so the next
    # fetch finds the rest cached: one GET per part, as a whole read. Before, the rest
    # of each part was a GET of its own: 3 GETs per object, ~190 per GiB.
    objects, layouts = scaled_uploads(8, 32)
    tasks = plan(objects, layouts, 10**6, SCALED)
    assert {task.kind for task in tasks} == {OutputKind.STREAM}
    stored, partitions = compacted_partitions(tasks)
    gets = asyncio.run(reader_catch_up_gets(stored, partitions))
    whole = sum(whole_read_gets(t, KIB, 9 * KIB) for t in tasks)
    assert whole == 2 * len(tasks)
    assert gets <= whole
    assert gets * 1024 * KIB / sum(o.size for o in objects) <= 130


def swap_in(
    task: Task, key: str, live: dict[str, ObjectSummary], logs: dict[int, list[RangeRecord]]
) -> None:
    """The task's output swapped in as the compactor swaps it: a range per piece, level 1,
    the task's oldest commit time; an input left without ranges goes."""
    replaced = {(r.object_key, r.stream_id, r.base_offset) for p in task.pieces for r in p.sources}
    ranges, position = [], 0
    for p in task.pieces:
        ranges.append(
            RangeRecord(p.stream_id, p.base_offset, p.end_offset, key, position, p.size,
                        p.max_timestamp, p.created_ms)
        )  # fmt: skip
        position += p.size
    for stream in {r.stream_id for r in ranges}:
        kept = [r for r in logs[stream] if (r.object_key, stream, r.base_offset) not in replaced]
        kept += [r for r in ranges if r.stream_id == stream]
        logs[stream] = sorted(kept, key=lambda r: r.base_offset)
    for old in task.input_keys:
        gone = [(r.object_key, r.stream_id, r.base_offset) in replaced for r in live[old].ranges]
        left = tuple(r for r, out in zip(live[old].ranges, gone, strict=True) if not out)
        if left:
            live[old] = dataclasses.replace(live[old], ranges=left)
        else:
            del live[old]
    streams = len({r.stream_id for r in ranges})
    live[key] = ObjectSummary(key, position, task.created_ms, 1, streams, tuple(ranges))


def compact_in_passes(
    objects: list[ObjectSummary], layouts: dict[int, StreamLayout], config: PlanConfig
) -> tuple[list[ObjectSummary], dict[int, list[RangeRecord]]]:
    """Passes of `plan` until it plans nothing, each pass's outputs swapped in: the
    objects left and each stream's ranges."""
    live = {o.key: o for o in objects}
    logs = {s: list(layout.ranges) for s, layout in layouts.items()}
    outputs = 0
    while True:
        laid = {s: StreamLayout(r, 1 << 40, 1 << 40) for s, r in logs.items()}
        tasks = plan(list(live.values()), laid, 10**6, config)
        if not tasks:
            return list(live.values()), logs
        for task in tasks:
            swap_in(task, f"c{outputs:03d}", live, logs)
            outputs += 1


def test_passes_of_five_objects_read_back_as_one_pass() -> None:
    # 1,000 partitions, 32 uploads compacted 5 at a time (object.compaction.max.objects
    # 5): each pass writes two full outputs and what is left, ~4 MiB. Left as it is, each
    # such remainder costs a GET of its own: 7 of them, 32 GETs (128 per GiB). As a
    # candidate of the next pass it is merged into its full outputs, so only the last
    # pass's remainder stays small: one GET more than a single pass over the 32.
    objects, layouts = uploads(1_000, 32, seed=0)
    config = dataclasses.replace(CONFIG, max_objects=5)
    left, logs = compact_in_passes(objects, layouts, config)
    small = [o for o in left if o.size < config.range_bytes]
    assert len(small) <= 1
    _, one_pass = compact_in_passes(objects, layouts, CONFIG)
    assert (gets := catch_up_gets(logs, 64 * MIB, 8 * MIB)) <= catch_up_gets(
        one_pass, 64 * MIB, 8 * MIB
    ) + 1
    assert gets * GIB / sum(o.size for o in objects) <= 121
    # Every offset of every stream in exactly one range, in order.
    for stream, ranges in logs.items():
        assert [r.base_offset for r in ranges[1:]] == [r.end_offset for r in ranges[:-1]]
        assert ranges[-1].end_offset == layouts[stream].ranges[-1].end_offset


def test_a_small_compacted_object_alone_is_left_as_it_is() -> None:
    # Without new uploads a remainder is not rewritten again and again: a task that
    # would only copy it whole is dropped.
    objects, layouts = uploads(1_000, 7, seed=1)  # 56 MiB: 18 + 18 + 18 + 2
    left, logs = compact_in_passes(objects, layouts, CONFIG)
    (small,) = [o for o in left if o.size < CONFIG.range_bytes]
    layout = {s: StreamLayout(r, 1 << 40, 1 << 40) for s, r in logs.items()}
    assert plan(left, layout, 10**6, CONFIG) == []
    assert small.level == 1
