"""Segments derived from uploaded ranges, and what retention may delete."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from contextplane.metadata.store import RangeRecord
from contextplane.storage.object_index import ObjectRanges
from contextplane.storage.partition_index import RangeStats
from contextplane.storage.retention import may_delete, retention_start, segments


def ranges(*specs: tuple[int, int, int]) -> list[RangeRecord]:
    """(size, max_timestamp, created_ms) per range; 10 offsets each."""
    return [
        RangeRecord(1, 10 * i, 10 * (i + 1), f"k{i}", 0, size, ts, created)
        for i, (size, ts, created) in enumerate(specs)
    ]


def test_segments_roll_on_size_and_on_age() -> None:
    data = ranges((600, 0, 0), (600, 0, 10), (100, 0, 20), (100, 0, 5000))
    assert [[r.base_offset for r in s] for s in segments(data, 1000, 1000)] == [[0], [10, 20], [30]]


def test_active_segment_is_never_deleted() -> None:
    data = ranges((100, 0, 0), (100, 0, 10))
    assert retention_start(data, 10**12, 1, -1, 10**9, 10**9) is None


def test_old_closed_segments_are_deleted_in_order_until_a_young_one() -> None:
    data = ranges((100, 1, 0), (100, 2, 10), (100, 9_000, 20), (100, 1, 30), (100, 1, 40))
    # segment.ms=1: each range is a segment; the third is too young, so it stops there.
    assert retention_start(data, 10_000, 5_000, -1, 10**9, 1) == 20


def test_size_retention_keeps_at_least_retention_bytes() -> None:
    data = ranges(*[(100, 0, i) for i in range(6)])
    assert retention_start(data, 0, -1, 250, 10**9, 1) == 30
    assert retention_start(data, 0, -1, 600, 10**9, 1) is None


@settings(max_examples=300, deadline=None)
@given(
    specs=st.lists(
        st.tuples(st.integers(0, 300), st.integers(0, 2_000), st.integers(0, 2_000)),
        max_size=8,
    ),
    retention_ms=st.integers(-1, 2_000),
    retention_bytes=st.integers(-1, 1_500),
    segment_bytes=st.integers(1, 800),
    segment_ms=st.integers(1, 2_000),
)
def test_the_summary_never_hides_a_deletion(
    specs: list[tuple[int, int, int]],
    retention_ms: int,
    retention_bytes: int,
    segment_bytes: int,
    segment_ms: int,
) -> None:
    """Whenever retention would move the log start, `may_delete` (which sees only the
    summary an unloaded index keeps) says to load the ranges."""
    data = ranges(*specs)
    # Uploads are committed in time order.
    data = [
        RangeRecord(
            r.stream_id,
            r.base_offset,
            r.end_offset,
            r.object_key,
            0,
            r.size,
            r.max_timestamp,
            created,
        )
        for r, created in zip(data, sorted(r.created_ms for r in data), strict=True)
    ]
    now_ms = 2_000
    moved = retention_start(data, now_ms, retention_ms, retention_bytes, segment_bytes, segment_ms)
    stats = RangeStats.counted(ObjectRanges(data))
    if moved is not None:
        assert may_delete(stats, now_ms, retention_ms, retention_bytes)
