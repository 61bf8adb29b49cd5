"""A partition's object index, loaded from the metadata store on first need and dropped
when idle, so that start-up and memory do not grow with retained data.

Start-up reads one `RangeSummary` per partition (one grouped query), not its ranges. The
ranges (`ObjectRanges`) are loaded with `load()` — one `ranges_of` query however many
callers wait for it — by the first object read, the retention pass that must delete,
the cleaner or the object compactor, and dropped `object.index.idle.ms` after their last
`load()`. While unloaded, the index keeps `RangeStats`, what retention decides on
without the ranges; uploads update them and do not load anything (the store has the
rows).

Changes that land while a load is in flight are not lost: an upload's range (appended
once its commit returned) is kept aside and added to the loaded rows unless they already
hold it; a swap or log-start move instead makes the load query again, since the rows it
read may predate that change. Every change made in memory after its store transaction is
idempotent over rows that already hold it, so a change that the query saw and that is
applied again after the load leaves the index as the store has it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from contextplane.clock import Clock
from contextplane.metadata.records import RangeRecord, RangeSummary
from contextplane.storage.memory import MemoryBudget
from contextplane.storage.object_index import ObjectRanges

log = logging.getLogger(__name__)

FetchRanges = Callable[[], Awaitable[list[RangeRecord]]]


class IndexNotLoaded(RuntimeError):
    """The partition's ranges were needed but are not in memory (`load()` them)."""


@dataclass(slots=True)
class RangeStats:
    """A partition's ranges in summary, kept while its index is not loaded."""

    end_offset: int = -1  # exclusive end of the last range; -1: none
    retained_bytes: int = 0  # -1: unknown (start-up does not sum them)
    range_count: int = 0
    first_max_timestamp: int = -1
    # False once a swap or log-start move changed ranges that were not in memory:
    # retention then loads the index to decide.
    exact: bool = True

    @classmethod
    def of(cls, summary: RangeSummary | None) -> RangeStats:
        if summary is None:
            return cls()
        return cls(
            summary.end_offset,
            summary.retained_bytes,
            summary.range_count,
            summary.first_max_timestamp,
        )

    @classmethod
    def counted(cls, ranges: ObjectRanges) -> RangeStats:
        if not len(ranges):
            return cls()
        return cls(
            ranges[-1].end_offset,
            sum(r.size for r in ranges),
            len(ranges),
            ranges[0].max_timestamp,
        )

    def add(self, record: RangeRecord) -> None:
        if not self.range_count:
            self.first_max_timestamp = record.max_timestamp
        self.end_offset = record.end_offset
        if self.retained_bytes >= 0:
            self.retained_bytes += record.size
        self.range_count += 1


class PartitionIndex:
    __slots__ = (
        "_fetch",
        "_budget",
        "_clock",
        "_ranges",
        "_stats",
        "_loading",
        "_appended",
        "_changes",
        "_closed",
        "used_ms",
        "loads",
    )

    def __init__(
        self,
        ranges: ObjectRanges | None = None,
        stats: RangeStats | None = None,
        fetch: FetchRanges | None = None,
        budget: MemoryBudget | None = None,
        clock: Clock | None = None,
    ) -> None:
        """`ranges` when loaded (counted in `budget`), else `stats`; `fetch` reads the
        ranges from the store (without it the index is never dropped)."""
        self._fetch = fetch
        self._budget = budget
        self._clock = clock
        self._ranges: ObjectRanges | None = None
        self._stats = stats or RangeStats()
        self._loading: asyncio.Future[None] | None = None
        self._appended: list[RangeRecord] | None = None  # uploads during a load
        self._changes = 0  # swaps and log-start moves, to detect one during a load
        self._closed = False
        self.used_ms = clock.monotonic_ms() if clock else 0
        self.loads = 0  # completed store loads (observability, tests)
        if ranges is not None:
            self._install(ranges)

    @classmethod
    def in_memory(cls, records: Iterable[RangeRecord] = ()) -> PartitionIndex:
        """A loaded index that is never dropped (tests, tools)."""
        return cls(ObjectRanges(records))

    # -- state -------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._ranges is not None

    @property
    def ranges(self) -> ObjectRanges:
        """The loaded ranges; raises `IndexNotLoaded` when they are not in memory."""
        if self._ranges is None:
            raise IndexNotLoaded("the partition's object index is not loaded")
        return self._ranges

    @property
    def loaded_ranges(self) -> ObjectRanges | None:
        return self._ranges

    @property
    def stats(self) -> RangeStats:
        """The summary retention decides on (counted from the ranges when loaded)."""
        if self._ranges is not None:
            return RangeStats.counted(self._ranges)
        return self._stats

    @property
    def uploaded_end(self) -> int:
        """The end of the last range (-1: none), loaded or not."""
        if self._ranges is not None:
            return self._ranges[-1].end_offset if len(self._ranges) else -1
        return self._stats.end_offset

    # -- loading and dropping ----------------------------------------------------------

    async def load(self) -> ObjectRanges:
        """The ranges, read from the store first if they are not in memory (one query
        for every caller waiting meanwhile); counts as a use."""
        self._touch()
        while self._ranges is None:
            if self._loading is None:
                self._loading = asyncio.ensure_future(self._load_from_store())
            # Shielded: a caller cancelled (a fetch timing out) leaves the load to others.
            await asyncio.shield(self._loading)
        return self._ranges

    async def _load_from_store(self) -> None:
        assert self._fetch is not None, "an index without a store is always loaded"
        try:
            while True:
                changes = self._changes
                self._appended = []
                records = await self._fetch()
                if changes == self._changes:
                    break
                # A swap or log-start move landed meanwhile: the rows may predate it.
            ranges = ObjectRanges(records)
            for record in self._appended:
                if not len(ranges) or record.base_offset >= ranges[-1].end_offset:
                    ranges.append(record)  # committed after the rows were read
            self._install(ranges)
            self.loads += 1
        finally:
            self._appended = None
            self._loading = None

    def _install(self, ranges: ObjectRanges) -> None:
        self._ranges = ranges
        if self._budget is not None and not self._closed:
            ranges.count_in(self._budget)

    def _touch(self) -> None:
        if self._clock is not None:
            self.used_ms = self._clock.monotonic_ms()

    def drop_if_idle(self, now_ms: int, idle_ms: int) -> bool:
        """Drop the loaded ranges when unused for `idle_ms`, keeping their summary."""
        if self._ranges is None or self._fetch is None or now_ms - self.used_ms < idle_ms:
            return False
        self._stats = RangeStats.counted(self._ranges)
        self._ranges.uncount()
        self._ranges = None
        return True

    def close(self) -> None:
        """The partition is no longer served here: stop counting its ranges."""
        self._closed = True
        if self._ranges is not None:
            self._ranges.uncount()

    # -- changes (each after its store transaction) ------------------------------------

    def append(self, record: RangeRecord) -> None:
        """An upload's range, committed: indexed if loaded, else only summarised."""
        if self._ranges is not None:
            self._ranges.append(record)
            return
        self._stats.add(record)
        if self._appended is not None:
            self._appended.append(record)

    def drop_below(self, offset: int) -> None:
        """The log start moved to `offset` (`ObjectRanges.drop_below`)."""
        if self._ranges is not None:
            self._ranges.drop_below(offset)
            return
        self._changed()

    def replace(self, base_offset: int, end_offset: int, records: list[RangeRecord]) -> None:
        """A cleaner's or compactor's swap (`ObjectRanges.replace`)."""
        if self._ranges is not None:
            self._ranges.replace(base_offset, end_offset, records)
            return
        self._changed()

    def _changed(self) -> None:
        self._changes += 1
        self._stats.exact = False


async def drop_idle_indexes(
    indexes: Callable[[], Iterable[PartitionIndex]], clock: Clock, idle_ms: int
) -> None:
    """The loop that drops indexes unused for `idle_ms`, looking every `idle_ms / 4`."""
    interval_s = max(idle_ms / 4, 100) / 1000
    while True:
        await asyncio.sleep(interval_s)
        now_ms = clock.monotonic_ms()
        dropped = sum(index.drop_if_idle(now_ms, idle_ms) for index in indexes())
        if dropped:
            log.debug("dropped %d idle object indexes", dropped)
