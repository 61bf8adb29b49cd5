"""A partition's object index in memory: its uploaded ranges, found by offset.

The metadata store is the source of truth (rebuilt from it at start); this copy lets a
catch-up fetch find its object without a metadata query. Ranges are kept in offset order
with their end offsets beside them, so the range holding an offset is a bisection, not a
scan of every object the partition ever uploaded.

Each record costs memory for as long as its partition is loaded; once the engine has
counted the index in the memory budget (`count_in`), every change in its length moves
the budget's `range_record_bytes` by `RANGE_RECORD_BYTES` a record.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from contextplane.metadata.records import RangeRecord
from contextplane.storage.memory import RANGE_RECORD_BYTES, MemoryBudget


class ObjectRanges(Sequence[RangeRecord]):
    __slots__ = ("_records", "_ends", "_budget")

    def __init__(self, records: Iterable[RangeRecord] = ()) -> None:
        self._records: list[RangeRecord] = []
        self._ends: list[int] = []  # end offsets (exclusive), ascending
        self._budget: MemoryBudget | None = None  # where the records are counted
        for record in records:
            self.append(record)

    def count_in(self, budget: MemoryBudget) -> None:
        """Count the records in `budget` from now on (the partition is loaded)."""
        self.uncount()
        self._budget = budget
        budget.range_record_bytes += len(self._records) * RANGE_RECORD_BYTES

    def uncount(self) -> None:
        """Stop counting the records (the partition is closed)."""
        if self._budget is not None:
            self._budget.range_record_bytes -= len(self._records) * RANGE_RECORD_BYTES
            self._budget = None

    def _resized(self, records: int) -> None:
        if self._budget is not None:
            self._budget.range_record_bytes += records * RANGE_RECORD_BYTES

    def append(self, record: RangeRecord) -> None:
        """Add the newest range (uploads go in offset order)."""
        assert not self._ends or record.base_offset >= self._ends[-1], (
            f"range [{record.base_offset}, {record.end_offset}) overlaps the index"
            f" ending at {self._ends[-1]}"
        )
        self._records.append(record)
        self._ends.append(record.end_offset)
        self._resized(1)

    def from_offset(self, offset: int) -> Iterator[RangeRecord]:
        """The ranges holding `offset` and every later one, in offset order (as they
        were when the iteration began: a reader awaits between ranges, and `drop_below`
        then replaces the lists rather than shifting them under it)."""
        records = self._records
        for index in range(bisect.bisect_right(self._ends, offset), len(records)):
            yield records[index]

    def drop_below(self, offset: int) -> None:
        """Forget the ranges wholly below `offset` (the log start moved past them)."""
        index = bisect.bisect_right(self._ends, offset)
        if index:
            self._records = self._records[index:]
            self._ends = self._ends[index:]
            self._resized(-index)

    def replace(self, base_offset: int, end_offset: int, records: list[RangeRecord]) -> None:
        """The cleaner's swap: the ranges starting in [base_offset, end_offset) become
        `records` (new lists, as in `drop_below`, for readers iterating the old ones)."""
        kept = [r for r in self._records if not base_offset <= r.base_offset < end_offset]
        merged = sorted([*kept, *records], key=lambda r: r.base_offset)
        self._resized(len(merged) - len(self._records))
        self._records = merged
        self._ends = [r.end_offset for r in merged]

    @overload
    def __getitem__(self, index: int) -> RangeRecord: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[RangeRecord]: ...
    def __getitem__(self, index: int | slice) -> RangeRecord | Sequence[RangeRecord]:
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[RangeRecord]:
        return iter(self._records)

    def __repr__(self) -> str:
        return f"ObjectRanges({self._records!r})"
