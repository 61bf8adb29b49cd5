"""One partition's transactions: the open ones (producer id → first offset), the last
stable offset they hold back, and the aborted-transaction index a read_committed fetch
returns.

A transaction opens with its producer's first transactional batch and closes with its
marker (a COMMIT or ABORT control batch). It counts as open until the marker is
durable (the high watermark passed it), so the LSO never moves past a marker a crash
could still take back; a failed WAL write rolls closes and opens back. Aborted
transactions enter the index as (producer id, first offset, marker offset) when their
marker is durable.

An object commit stores the state as of the end of its ranges: the open transaction of
each producer touched since the last commit (in its producer row) and the aborted
transactions closed since; WAL replay redoes the rest at start.

The aborted index in memory is bounded (`ABORTED_TXNS_IN_MEMORY_MAX`): past it, the
oldest entries already stored are dropped down to half, and `stored_before` marks where
memory stops being whole. Once counted in the memory budget (`count_in`), every
partition's entries together are bounded too: past the budget's `aborted_limit`, a
partition spills down to `ABORTED_TXNS_IN_MEMORY_FLOOR`. A read_committed read from
below `stored_before` asks the metadata store for those (`storage/aborted_reads.py`),
as Kafka reads its segments' .txnindex files. A start loads only the latest entries.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from contextplane import limits
from contextplane.metadata.records import AbortedRow, ProducerRow
from contextplane.storage.memory import ABORTED_TXN_BYTES, MemoryBudget
from contextplane.storage.touched import Touched


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int  # the ABORT marker's offset


def aborted_since(aborted: list[AbortedTxn], start: int) -> bool:
    """Whether an aborted transaction of `aborted` (by last offset, so the last one ends
    latest) ends at or after `start`: a fetch from `start` may have some to list."""
    return bool(aborted) and aborted[-1].last_offset >= start


def aborted_in(aborted: list[AbortedTxn], start: int, end: int) -> list[AbortedTxn]:
    """Aborted transactions of `aborted` (by last offset) overlapping [start, end): what
    a fetch of that range lists so the client drops their records."""
    index = bisect.bisect_left(aborted, start, key=lambda a: a.last_offset)
    return [a for a in aborted[index:] if a.first_offset < end]


def trim_aborted(aborted: list[AbortedTxn], log_start_offset: int) -> None:
    """Retention: entries wholly below the log start are of no use."""
    del aborted[: bisect.bisect_left(aborted, log_start_offset, key=lambda a: a.last_offset)]


@dataclass(slots=True)
class _Open:
    first_offset: int
    marker_offset: int = -1  # -1: no marker yet
    aborted: bool = False


class PartitionTransactions:
    def __init__(self) -> None:
        self.open: dict[int, _Open] = {}
        self.aborted: list[AbortedTxn] = []  # by last offset; those ending before
        # `stored_before` may be in the metadata store only (0: memory holds them all)
        self.stored_before = 0
        # Closed since the last committed snapshot, for a snapshot as of an older end.
        self._closed: list[tuple[int, _Open]] = []
        self._closing = 0  # open entries with a marker not yet durable
        self.touched = Touched()  # producers whose transaction opened or closed
        self._budget: MemoryBudget | None = None  # where the aborted entries are counted
        self._counted = 0  # the entries counted there

    def count_in(self, budget: MemoryBudget) -> None:
        """Count the aborted entries in `budget` from now on (the partition is loaded);
        entries added since are counted at the next spill."""
        self.uncount()
        self._budget = budget
        self._recount()

    def uncount(self) -> None:
        """Stop counting (the partition is closed)."""
        if self._budget is not None:
            self._budget.aborted_txn_bytes -= self._counted * ABORTED_TXN_BYTES
            self._budget, self._counted = None, 0

    def _recount(self) -> None:
        if self._budget is not None:
            added = len(self.aborted) - self._counted
            self._budget.aborted_txn_bytes += added * ABORTED_TXN_BYTES
            self._counted = len(self.aborted)

    def last_stable_offset(self, high_watermark: int) -> int:
        if not self.open:
            return high_watermark
        return min(high_watermark, min(o.first_offset for o in self.open.values()))

    def in_transaction(self, producer_id: int) -> bool:
        """Whether the producer has a transaction here with no marker appended yet."""
        entry = self.open.get(producer_id)
        return entry is not None and entry.marker_offset < 0

    def on_batch(self, producer_id: int, base_offset: int) -> None:
        """A transactional data batch was appended at `base_offset`."""
        if producer_id not in self.open:
            self.open[producer_id] = _Open(base_offset)
            self.touched.touch(producer_id)

    def on_marker(self, producer_id: int, offset: int, commit: bool) -> bool:
        """A marker was appended at `offset`; False if its producer had nothing open
        (a repeated marker: harmless, as in Kafka)."""
        entry = self.open.get(producer_id)
        if entry is None or entry.marker_offset >= 0:
            return False
        entry.marker_offset = offset
        entry.aborted = not commit
        self._closing += 1
        self.touched.touch(producer_id)
        return True

    def advance(self, high_watermark: int) -> None:
        """Close the transactions whose marker is now durable."""
        if not self._closing:
            return  # the common case: called on every durable batch
        done = [(pid, o) for pid, o in self.open.items() if 0 <= o.marker_offset < high_watermark]
        for pid, entry in done:
            del self.open[pid]
            self._closing -= 1
            self.touched.touch(pid)
            self._closed.append((pid, entry))
            if entry.aborted:
                bisect.insort(
                    self.aborted,
                    AbortedTxn(pid, entry.first_offset, entry.marker_offset),
                    key=lambda a: a.last_offset,
                )

    def rollback(self, offset: int) -> None:
        """Forget what was appended at or after `offset` (its WAL write failed)."""
        for pid in [p for p, o in self.open.items() if o.first_offset >= offset]:
            self.touched.touch(pid)
            if self.open.pop(pid).marker_offset >= 0:
                self._closing -= 1
        for pid, entry in self.open.items():
            if entry.marker_offset >= offset:
                entry.marker_offset = -1
                entry.aborted = False
                self._closing -= 1
                self.touched.touch(pid)

    def aborted_since(self, start: int) -> bool:
        """Whether a read from `start` may hold aborted transactions (in memory or,
        below `stored_before`, in the store)."""
        return start < self.stored_before or aborted_since(self.aborted, start)

    def aborted_in(self, start: int, end: int) -> list[AbortedTxn]:
        """Those of memory overlapping [start, end): all of them unless `needs_store`."""
        return aborted_in(self.aborted, start, end)

    def needs_store(self, start: int) -> bool:
        """Whether aborted transactions a read from `start` lists may be stored only."""
        return start < self.stored_before

    def spill(self, stored_end: int) -> None:
        """Past ABORTED_TXNS_IN_MEMORY_MAX entries (ABORTED_TXNS_IN_MEMORY_FLOOR while
        the budget's share for them is used up), drop the oldest whose marker lies
        before `stored_end` (a durable object commit holds them) down to half."""
        self._recount()
        bound = limits.ABORTED_TXNS_IN_MEMORY_MAX
        budget = self._budget
        if budget is not None and budget.aborted_txn_bytes > budget.aborted_limit:
            bound = limits.ABORTED_TXNS_IN_MEMORY_FLOOR
        if len(self.aborted) <= bound:
            return
        stored = bisect.bisect_left(self.aborted, stored_end, key=lambda a: a.last_offset)
        drop = min(stored, len(self.aborted) - bound // 2)
        if drop > 0:
            self.stored_before = max(self.stored_before, self.aborted[drop - 1].last_offset + 1)
            del self.aborted[:drop]
            self._recount()

    def trim(self, log_start_offset: int) -> None:
        trim_aborted(self.aborted, log_start_offset)
        self._recount()
        if self.stored_before <= log_start_offset:
            self.stored_before = 0  # nothing below the log start is read

    def closed_since(self, committed_end: int) -> dict[int, list[_Open]]:
        """The transactions closed since the last commit (their marker at or after
        `committed_end`, where the stored state ends), by producer: a commit ending
        earlier still stores them open."""
        self._closed = [(p, o) for p, o in self._closed if o.marker_offset >= committed_end]
        closed: dict[int, list[_Open]] = {}
        for pid, entry in self._closed:
            closed.setdefault(pid, []).append(entry)
        return closed

    def open_as_of(
        self, producer_id: int, end_offset: int, closed: dict[int, list[_Open]]
    ) -> tuple[int | None, bool]:
        """The first offset of the producer's transaction open as of `end_offset` (None:
        none), and whether its transactions hold offsets from `end_offset` on, which a
        later commit must write."""
        entries = closed.get(producer_id, [])
        current = self.open.get(producer_id)
        if current is not None:
            entries = [*entries, current]
        first = None
        for entry in entries:
            if entry.first_offset < end_offset and not (0 <= entry.marker_offset < end_offset):
                first = entry.first_offset
        later = any(e.first_offset >= end_offset or e.marker_offset >= end_offset for e in entries)
        return first, later

    def aborted_between(self, start: int, end: int) -> list[AbortedRow]:
        """Aborted transactions whose marker lies in [start, end): those a commit ending
        at `end` adds to the stored ones, which end at `start`."""
        index = bisect.bisect_left(self.aborted, start, key=lambda a: a.last_offset)
        found: list[AbortedRow] = []
        for txn in self.aborted[index:]:
            if txn.last_offset >= end:
                break
            found.append(txn)
        return found

    @classmethod
    def from_stored(
        cls,
        producers: Iterable[ProducerRow],
        aborted: Iterable[AbortedRow],
        truncated: bool = False,
    ) -> PartitionTransactions:
        """`aborted`: the latest stored (by last offset); `truncated`: older ones are
        stored too (read from the store when a read goes below the first given)."""
        state = cls()
        state.open = {
            row.producer_id: _Open(row.txn_first_offset)
            for row in producers
            if row.txn_first_offset is not None
        }
        state.aborted = sorted((AbortedTxn(*a) for a in aborted), key=lambda a: a.last_offset)
        if truncated and state.aborted:
            state.stored_before = state.aborted[0].last_offset
        return state
