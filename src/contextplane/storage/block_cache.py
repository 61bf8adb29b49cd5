"""Object reads for catch-up fetches: coalesced, parallel GETs through a cache of spans.

`read_ranges` serves the ranges of one Fetch's plan (read_plan.py): a range inside a
cached span is a slice of it (no copy); a range inside a span being fetched joins that
GET; the rest are coalesced into spans and fetched concurrently, at most
`object.read.concurrency` GETs at once broker-wide, each within the memory budget's
in-flight share and as parts of at most `object.read.part.bytes`.

Cached spans are kept per object, sorted by start, with no span inside another (a new
span drops the ones it contains), so starts and ends ascend together and the span that
can hold a range is found by one bisection. Least recently used spans go first once the
block cache share of the budget is full.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from contextplane import limits
from contextplane.metadata.records import RangeRecord
from contextplane.storage.memory import MemoryBudget
from contextplane.storage.objectstore import ObjectStore
from contextplane.storage.read_plan import Span, coalesce, split_parts

SpanKey = tuple[str, int, int]  # object key, start, end


class BlockCache:
    def __init__(
        self,
        objects: ObjectStore,
        budget: MemoryBudget,
        concurrency: int = limits.OBJECT_READ_CONCURRENCY,
        coalesce_bytes: int = limits.OBJECT_READ_COALESCE_BYTES,
        span_bytes: int = limits.OBJECT_READ_SPAN_BYTES,
        part_bytes: int = limits.OBJECT_READ_PART_BYTES,
    ) -> None:
        self._objects = objects
        self._budget = budget
        self._gets = asyncio.Semaphore(concurrency)
        self._coalesce_bytes = coalesce_bytes
        self._span_bytes = span_bytes
        self._part_bytes = part_bytes
        self._lru: OrderedDict[SpanKey, memoryview] = OrderedDict()
        self._starts: dict[str, list[int]] = {}  # per object, ascending
        self._ends: dict[str, list[int]] = {}  # per object, in the order of the starts
        self._pending: dict[str, dict[tuple[int, int], asyncio.Task[memoryview]]] = {}

    async def read(self, record: RangeRecord) -> memoryview:
        """The bytes of one range."""
        result = (await self.read_ranges([record]))[0]
        if isinstance(result, BaseException):
            raise result
        return result

    async def read_ranges(self, records: Sequence[RangeRecord]) -> list[memoryview | BaseException]:
        """The bytes of each range, or the error of the GET that was to read it."""
        results: list[memoryview | BaseException | None] = [None] * len(records)
        waiting: list[tuple[int, asyncio.Task[memoryview], int]] = []  # index, GET, start
        missing: list[RangeRecord] = []
        for index, record in enumerate(records):
            data = self._cached(record)
            if data is not None:
                results[index] = data
                continue
            joined = self._in_flight(record)
            if joined is not None:
                waiting.append((index, *joined))
            else:
                missing.append(record)
        if missing:
            spans = coalesce(missing, self._coalesce_bytes, self._span_bytes)
            get_of: dict[int, tuple[asyncio.Task[memoryview], int]] = {}
            for span in spans:
                for part in split_parts(span, self._part_bytes):
                    task = self._start_get(part)
                    for record in part.ranges:
                        get_of[id(record)] = (task, part.start)
            for index, record in enumerate(records):
                if results[index] is None and id(record) in get_of:
                    waiting.append((index, *get_of[id(record)]))
        if waiting:
            # The GETs are shared: a reader that gives up does not cancel them for others.
            await asyncio.wait({task for _, task, _ in waiting})
        for index, task, start in waiting:
            error = task.exception()
            if error is not None:
                results[index] = error
                continue
            record = records[index]
            offset = record.position - start
            results[index] = task.result()[offset : offset + record.size]
        return [r for r in results if r is not None]

    def _cached(self, record: RangeRecord) -> memoryview | None:
        starts = self._starts.get(record.object_key)
        if not starts:
            return None
        index = bisect.bisect_right(starts, record.position) - 1
        if index < 0:
            return None
        end = self._ends[record.object_key][index]
        if record.position + record.size > end:
            return None
        key = (record.object_key, starts[index], end)
        self._lru.move_to_end(key)
        offset = record.position - starts[index]
        return self._lru[key][offset : offset + record.size]

    def _in_flight(self, record: RangeRecord) -> tuple[asyncio.Task[memoryview], int] | None:
        gets = self._pending.get(record.object_key)
        if gets:
            for (start, end), task in gets.items():
                if start <= record.position and record.position + record.size <= end:
                    return task, start
        return None

    def _start_get(self, span: Span) -> asyncio.Task[memoryview]:
        task = asyncio.get_running_loop().create_task(self._get(span))
        self._pending.setdefault(span.object_key, {})[(span.start, span.end)] = task
        task.add_done_callback(lambda t: self._got(span, t))
        return task

    async def _get(self, span: Span) -> memoryview:
        async with self._gets, self._budget.reserve(span.size):
            data = await self._objects.get_range(span.object_key, span.start, span.end)
        self._insert(span.object_key, span.start, span.end, data)
        return data

    def _got(self, span: Span, task: asyncio.Task[memoryview]) -> None:
        gets = self._pending.get(span.object_key)
        if gets is not None:
            gets.pop((span.start, span.end), None)
            if not gets:
                del self._pending[span.object_key]
        if not task.cancelled():
            task.exception()  # retrieved: readers that gave up need not see it

    def _insert(self, object_key: str, start: int, end: int, data: memoryview) -> None:
        starts = self._starts.setdefault(object_key, [])
        ends = self._ends.setdefault(object_key, [])
        index = bisect.bisect_right(starts, start) - 1
        if index >= 0 and ends[index] >= end:
            return  # a cached span already holds it
        # Drop the spans the new one contains (they start at or after it and end by its end).
        first = bisect.bisect_left(starts, start)
        last = first
        while last < len(starts) and ends[last] <= end:
            self._drop((object_key, starts[last], ends[last]))
            last += 1
        del starts[first:last], ends[first:last]
        starts.insert(first, start)
        ends.insert(first, end)
        budget = self._budget
        self._lru[(object_key, start, end)] = data
        budget.block_cache_bytes += len(data)
        while budget.block_cache_bytes > budget.block_cache_limit and len(self._lru) > 1:
            self._evict(next(iter(self._lru)))
        budget.on_shrink()  # the log cache's room shrank

    def _drop(self, key: SpanKey) -> None:
        self._budget.block_cache_bytes -= len(self._lru.pop(key))

    def _evict(self, key: SpanKey) -> None:
        object_key, start, _ = key
        self._drop(key)
        starts = self._starts[object_key]
        index = bisect.bisect_left(starts, start)
        del starts[index]
        del self._ends[object_key][index]
        if not starts:
            del self._starts[object_key], self._ends[object_key]

    def forget_objects(self, keys: Iterable[str]) -> None:
        """Drop the cached spans of deleted objects."""
        for key in set(keys):
            starts = self._starts.pop(key, None)
            ends = self._ends.pop(key, None)
            if starts is None or ends is None:
                continue
            for start, end in zip(starts, ends, strict=True):
                self._drop((key, start, end))
