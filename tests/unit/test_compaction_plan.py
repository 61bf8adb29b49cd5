"""The compaction planner over random object sets (Hypothesis): every range of the chosen
objects is in exactly one output (or left out for a stated reason); outputs within their
bounds; streams with at least the split size get stream objects; no output range crosses
a segment boundary and retention derives the same segments after the plan; objects
younger than the minimum age are never planned."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contextplane.metadata.records import ObjectSummary, RangeRecord
from contextplane.storage.compaction_plan import (
    OutputKind,
    PlanConfig,
    StreamLayout,
    Task,
    candidates,
    plan,
)
from contextplane.storage.retention import retention_start, segments

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class World:
    objects: list[ObjectSummary]
    layouts: dict[int, StreamLayout]
    now_ms: int
    config: PlanConfig


@st.composite
def worlds(draw: st.DrawFn) -> World:
    streams = draw(st.integers(1, 5))
    uploads = draw(st.integers(1, 14))
    next_offset = dict.fromkeys(range(streams), 0)
    per_stream: dict[int, list[RangeRecord]] = {s: [] for s in range(streams)}
    objects = []
    created = 1_000
    for number in range(uploads):
        created += draw(st.integers(0, 60))
        members = draw(st.lists(st.integers(0, streams - 1), min_size=1, unique=True))
        ranges = []
        position = 0
        for stream in sorted(members):
            size = draw(st.integers(1, 400))
            count = draw(st.integers(1, 5))
            base = next_offset[stream]
            record = RangeRecord(
                stream, base, base + count, f"o{number:02d}", position, size,
                draw(st.integers(0, 10_000)), created,
            )  # fmt: skip
            next_offset[stream] += count
            position += size
            ranges.append(record)
            per_stream[stream].append(record)
        level = draw(st.sampled_from([0, 0, 1]))
        dead = draw(st.integers(0, 600))
        objects.append(
            ObjectSummary(f"o{number:02d}", position + dead, created, level, len(ranges),
                          tuple(ranges))
        )  # fmt: skip
    led = draw(st.lists(st.integers(0, streams - 1), unique=True))
    layouts = {
        s: StreamLayout(
            per_stream[s],
            draw(st.integers(50, 2_000)),
            draw(st.integers(1, 200)),
            draw(st.one_of(st.just(-1), st.integers(0, 2_000))),
            draw(st.one_of(st.just(-1), st.integers(0, 3_000))),
        )
        for s in led
    }
    config = PlanConfig(
        min_age_ms=draw(st.integers(0, 300)),
        max_objects=draw(st.integers(1, 16)),
        stream_split_bytes=draw(st.integers(1, 2_000)),
        stream_object_bytes=draw(st.integers(100, 1_500)),
        merged_bytes=draw(st.integers(100, 1_500)),
        live_ratio=draw(st.floats(0, 1)),
        range_bytes=draw(st.integers(50, 1_000)),
        part_bytes=draw(st.integers(50, 1_500)),
    )
    return World(objects, layouts, draw(st.integers(1_000, 2_000)), config)


def segment_of(layout: StreamLayout) -> dict[tuple[int, str], int]:
    derived = segments(layout.ranges, layout.segment_bytes, layout.segment_ms)
    return {(r.base_offset, r.object_key): n for n, seg in enumerate(derived) for r in seg}


def expected_inputs(world: World) -> set[tuple[int, int, str]]:
    """Every range the plan must rewrite: those of the chosen objects, of streams led
    here, except those retention deletes now."""
    result = set()
    for summary in candidates(world.objects, world.now_ms, world.config):
        for r in summary.ranges:
            layout = world.layouts.get(r.stream_id)
            if layout is None:
                continue
            doomed = retention_start(
                layout.ranges, world.now_ms, layout.retention_ms, layout.retention_bytes,
                layout.segment_bytes, layout.segment_ms,
            )  # fmt: skip
            if doomed is not None and r.end_offset <= doomed:
                continue
            result.add((r.stream_id, r.base_offset, r.object_key))
    return result


def applied(layout: StreamLayout, tasks: list[Task], stream: int) -> list[RangeRecord]:
    """The stream's log after every task swapped: each piece one range."""
    replaced = {}
    for task in tasks:
        for piece in task.pieces:
            if piece.stream_id != stream:
                continue
            merged = RangeRecord(
                stream, piece.base_offset, piece.end_offset, "new", 0, piece.size,
                piece.max_timestamp, piece.created_ms,
            )  # fmt: skip
            for index, source in enumerate(piece.sources):
                replaced[(source.base_offset, source.object_key)] = merged if index == 0 else None
    out = []
    for r in layout.ranges:
        new = replaced.get((r.base_offset, r.object_key), r)
        if new is not None:
            out.append(new)
    return out


@SETTINGS
@given(world=worlds())
def test_plan_invariants(world: World) -> None:
    tasks = plan(world.objects, world.layouts, world.now_ms, world.config)
    config = world.config
    # Every expected input range in exactly one output, nothing else.
    planned = Counter(
        (r.stream_id, r.base_offset, r.object_key)
        for task in tasks
        for piece in task.pieces
        for r in piece.sources
    )
    expected = expected_inputs(world)
    assert set(planned) <= expected
    assert all(count == 1 for count in planned.values())
    # Left out only: every range of one object that is not sparse, as one task would copy it.
    by_key = {o.key: o for o in world.objects}
    for key in {k for _, _, k in expected - set(planned)}:
        summary = by_key[key]
        assert not {(s, b, k) for s, b, k in planned if k == key}
        assert summary.live_bytes >= config.live_ratio * summary.size
        assert {(s, b, k) for s, b, k in expected if k == key} == {
            (r.stream_id, r.base_offset, key) for r in summary.ranges
        }
    for task in tasks:
        (key,) = task.input_keys if len(task.input_keys) == 1 else (None,)
        if key is not None:
            summary = by_key[key]
            whole = sum(len(p.sources) for p in task.pieces) == len(summary.ranges)
            assert not whole or summary.live_bytes < config.live_ratio * summary.size
    # Young objects never planned.
    created = {o.key: o.created_ms for o in world.objects}
    for task in tasks:
        for key in task.input_keys:
            assert created[key] <= world.now_ms - config.min_age_ms
    for task in tasks:
        assert task.pieces
        limit = (
            config.stream_object_bytes if task.kind is OutputKind.STREAM else config.merged_bytes
        )
        single = len(task.pieces) == 1 and len(task.pieces[0].sources) == 1
        assert task.size <= limit or single
        if task.kind is OutputKind.STREAM:
            assert len({p.stream_id for p in task.pieces}) == 1
        keys = [(p.stream_id, p.base_offset) for p in task.pieces]
        assert keys == sorted(keys)
        for piece in task.pieces:
            layout = world.layouts[piece.stream_id]
            index = {(r.base_offset, r.object_key): i for i, r in enumerate(layout.ranges)}
            numbers = segment_of(layout)
            at = [index[(r.base_offset, r.object_key)] for r in piece.sources]
            assert at == list(range(at[0], at[0] + len(at))), "consecutive in the log"
            assert len({numbers[(r.base_offset, r.object_key)] for r in piece.sources}) == 1
            assert piece.size <= config.range_bytes or len(piece.sources) == 1
    # Streams at or above the split size get stream objects, the others merged ones.
    sizes = {(r.stream_id, r.base_offset, r.object_key): r.size for o in world.objects
             for r in o.ranges}  # fmt: skip
    by_stream: Counter[int] = Counter()
    for stream, base, key in expected:
        by_stream[stream] += sizes[(stream, base, key)]
    for task in tasks:
        for piece in task.pieces:
            big = by_stream[piece.stream_id] >= config.stream_split_bytes
            assert (task.kind is OutputKind.STREAM) == big
    # Retention derives the same segment boundaries after the swap.
    for stream, layout in world.layouts.items():
        before = [
            seg[0].base_offset
            for seg in segments(layout.ranges, layout.segment_bytes, layout.segment_ms)
        ]
        after = [
            seg[0].base_offset
            for seg in segments(
                applied(layout, tasks, stream), layout.segment_bytes, layout.segment_ms
            )
        ]
        assert before == after


def summary(key: str, created_ms: int, level: int, size: int, live: int) -> ObjectSummary:
    record = RangeRecord(0, 0, 1, key, 0, live, 0, created_ms)
    return ObjectSummary(key, size, created_ms, level, 1, (record,))


def test_candidates_are_old_uploads_and_sparse_objects_oldest_first() -> None:
    config = PlanConfig(100, 3, 1, 1, 1, 0.5, 1, 1)
    objects = [
        summary("young", 950, 0, 10, 10),
        summary("upload", 900, 0, 10, 10),
        summary("full-compacted", 100, 1, 10, 10),
        summary("sparse-compacted", 200, 1, 10, 4),
        summary("older-upload", 300, 0, 10, 10),
        summary("oldest-upload", 50, 0, 10, 10),
    ]
    chosen = candidates(objects, 1_000, config)
    assert [o.key for o in chosen] == ["oldest-upload", "sparse-compacted", "older-upload"]
