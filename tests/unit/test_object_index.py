"""The object index: ranges found by bisection, stable under a reader that awaits."""

from __future__ import annotations

from contextplane.metadata.records import RangeRecord
from contextplane.storage.object_index import ObjectRanges


def ranges(count: int) -> ObjectRanges:
    return ObjectRanges(
        RangeRecord(1, 10 * i, 10 * (i + 1), f"k{i}", 0, 100, 0, 0) for i in range(count)
    )


def test_from_offset_starts_at_the_range_holding_the_offset() -> None:
    index = ranges(5)
    assert [r.base_offset for r in index.from_offset(25)] == [20, 30, 40]
    assert [r.base_offset for r in index.from_offset(30)] == [30, 40]
    assert list(index.from_offset(50)) == []


def test_a_reader_keeps_its_view_while_the_log_start_moves() -> None:
    """A fetch awaits between ranges; DeleteRecords or retention may move the log start
    meanwhile. The reader must see each range once, in order, without an error."""
    index = ranges(5)
    seen = []
    for record in index.from_offset(0):
        seen.append(record.base_offset)
        if record.base_offset == 10:
            index.drop_below(35)
    assert seen == [0, 10, 20, 30, 40]
    assert [r.base_offset for r in index] == [30, 40]
