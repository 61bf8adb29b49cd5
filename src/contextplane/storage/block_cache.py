"""Object reads for catch-up fetches: coalesced, parallel GETs through a cache of spans.

`read_ranges` serves the ranges of one Fetch's plan (read_plan.py): a range inside a
cached span is a slice of it (no copy); a range inside a span being fetched joins that
GET; the rest are coalesced into spans and fetched concurrently, at most
`object.read.concurrency` GETs at once broker-wide, each within the memory budget's
in-flight share and as parts of at most `object.read.part.bytes`.

Cached spans are kept per object, sorted by start, with no span inside another (a new
span drops the ones it contains), so starts and ends ascend together and the span that
can hold a range is found by one bisection. Least recently used spans go first once the
block cache share of the budget is full; spans read ahead (`prefetch`, readahead.py)
go only after every span already read, and a read-ahead span counts as read only once
every range in it has been returned (it holds the next ranges of many partitions, each
read at its own pace).

A span to read is widened to the rest of its object (`read_plan.widen`) when it already
reads at least half of it, within one part and the room read-ahead may take: the cache
knows how far each object's ranges reach (`learn`: every range loaded or asked for), so
one GET of an object serves the other partitions' ranges in it. The ranges one read asks
of an object are weighed together first (`_spans`): when they fill half of the rest of
it, one GET reads that rest whatever holes lie between them.
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
from contextplane.storage.read_plan import Span, coalesce, split_parts, widen

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
        self._concurrency = concurrency
        self._gets_started = 0  # GETs holding or waiting for a slot
        self.ahead_bytes = 0  # read-ahead spans in flight or cached and not yet read
        self._coalesce_bytes = coalesce_bytes
        self._span_bytes = span_bytes
        self._part_bytes = part_bytes
        self._lru: OrderedDict[SpanKey, memoryview] = OrderedDict()  # spans read
        self._ahead: OrderedDict[SpanKey, memoryview] = OrderedDict()  # read ahead, unread
        # Per read-ahead span: the positions of the ranges returned from it and their
        # bytes. It counts as read only once all of it has been returned: one partition's
        # range read out of a span holding eight made the other seven evictable first.
        self._ahead_served: dict[SpanKey, tuple[set[int], int]] = {}
        self._starts: dict[str, list[int]] = {}  # per object, ascending
        self._ends: dict[str, list[int]] = {}  # per object, in the order of the starts
        self._pending: dict[str, dict[tuple[int, int], asyncio.Task[memoryview]]] = {}
        # Per object, the start of its first known range and the end of its last.
        self._extents: dict[str, tuple[int, int]] = {}
        # Ranges read since start, for /metrics: cached, joined to a GET in flight (a
        # read-ahead's or another reader's), or read by a GET of their own.
        self.hits = 0
        self.joined = 0
        self.misses = 0

    async def read(self, record: RangeRecord) -> memoryview:
        """The bytes of one range."""
        result = (await self.read_ranges([record]))[0]
        if isinstance(result, BaseException):
            raise result
        return result

    async def read_ranges(
        self, records: Sequence[RangeRecord], along: Sequence[RangeRecord] = ()
    ) -> list[memoryview | BaseException]:
        """The bytes of each range, or the error of the GET that was to read it. A range
        of `along` (in offset order, per partition) that lies right after a span being
        read is read by the same GET while the span stays within one part (`_carry`)."""
        results: list[memoryview | BaseException | None] = [None] * len(records)
        waiting: list[tuple[int, asyncio.Task[memoryview], SpanKey]] = []  # index, GET, span
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
        self.hits += len(records) - len(waiting) - len(missing)
        self.joined += len(waiting)
        self.misses += len(missing)
        if missing:
            get_of = self._start_gets(missing, ahead=False, along=along)
            for index, record in enumerate(records):
                if results[index] is None and id(record) in get_of:
                    waiting.append((index, *get_of[id(record)]))
        if waiting:
            # The GETs are shared: a reader that gives up does not cancel them for others.
            await asyncio.wait({task for _, task, _ in waiting})
        for index, task, span in waiting:
            error = task.exception()
            if error is not None:
                results[index] = error
                continue
            record = records[index]
            cached = self._find(record)  # as cached (a carried GET is cached in two)
            if cached is not None:
                self._promote(cached, record)  # a joined read-ahead span read in part
            offset = record.position - span[1]
            results[index] = task.result()[offset : offset + record.size]
        return [r for r in results if r is not None]

    def prefetch(self, records: Sequence[RangeRecord]) -> set[int]:
        """Read ahead: start GETs for the ranges neither cached nor in flight, while fewer
        than half of the GET slots are taken (a fetch's own GETs never queue behind more
        than half of them). Returns the ids of the ranges now cached or being read; the
        rest are left for a later call. Nothing waits on these GETs, and a failed one is
        not cached: a reader that needs its range reads it itself."""
        covered: set[int] = set()
        missing: list[RangeRecord] = []
        for record in records:
            if self._find(record) is not None or self._in_flight(record) is not None:
                covered.add(id(record))
            else:
                missing.append(record)
        covered.update(self._start_gets(missing, ahead=True))
        return covered

    def learn(self, records: Iterable[RangeRecord]) -> None:
        """Note where the objects of `records` hold ranges (a span is widened within)."""
        extents = self._extents
        for record in records:
            start, end = record.position, record.position + record.size
            known = extents.get(record.object_key)
            if known is None:
                extents[record.object_key] = (start, end)
            elif start < known[0] or end > known[1]:
                extents[record.object_key] = (min(start, known[0]), max(end, known[1]))

    def _start_gets(
        self, missing: Sequence[RangeRecord], ahead: bool, along: Sequence[RangeRecord] = ()
    ) -> dict[int, tuple[asyncio.Task[memoryview], SpanKey]]:
        """Start the GETs that read `missing` (neither cached nor in flight), coalesced,
        carried on over `along` and widened; returns, per range id, the GET that reads it
        and its span. Read-ahead starts GETs only while fewer than half of the slots are
        taken."""
        self.learn(missing)
        self.learn(along)
        after = self._after(along)
        get_of: dict[int, tuple[asyncio.Task[memoryview], SpanKey]] = {}
        for span in self._spans(missing):
            rest: list[RangeRecord] = []
            for record in span.ranges:
                joined = self._in_flight(record)  # a span widened just before holds it
                if joined is not None:
                    get_of[id(record)] = joined
                else:
                    rest.append(record)
            if not rest:
                continue
            if len(rest) < len(span.ranges):
                spans = coalesce(rest, self._coalesce_bytes, self._span_bytes)
            else:
                spans = [span]
            for unread in spans:
                unread, carried = self._carry(unread, after)
                for part in split_parts(self._widened(unread), self._part_bytes):
                    if ahead and 2 * self._gets_started >= self._concurrency:
                        return get_of
                    task = self._start_get(part, ahead, carried)
                    key = (part.object_key, part.start, part.end)
                    for record in part.ranges:
                        get_of[id(record)] = (task, key)
        return get_of

    def _after(self, along: Sequence[RangeRecord]) -> dict[tuple[str, int], RangeRecord]:
        """The ranges of `along` neither cached nor in flight, by (object, position)."""
        return {
            (r.object_key, r.position): r
            for r in along
            if self._find(r) is None and self._in_flight(r) is None
        }

    def _carry(self, span: Span, after: dict[tuple[str, int], RangeRecord]) -> tuple[Span, int]:
        """`span` carried on over the ranges of `after` that follow its last range back to
        back (some may lie in it already: a span over the rest of its object), while it
        stays within one part and the bytes added within read-ahead's room (an eighth of
        the share kept free, as `_widened`); and where the carried bytes start (0: none
        carried). A stream object holds one partition's ranges back to back, laid out by
        object compaction as whole parts; a partition's fetch ends where its bound falls,
        inside a part, and the rest of that part, cached as read, was evicted by the
        fetch's other spans before the partition's next fetch read it by a GET of its own
        (3 GETs for an object of 2 parts at 8 MiB per partition and fetch)."""
        if not after or span.size > self._part_bytes:
            return span, 0
        room = self.ahead_room() - self.share_bytes // 8
        asked = end = max(r.position + r.size for r in span.ranges)
        ranges = list(span.ranges)
        while (record := after.get((span.object_key, end))) is not None:
            record_end = record.position + record.size
            if record_end - span.start > self._part_bytes or record_end - span.end > room:
                break
            ranges.append(record)
            end = record_end
        if end == asked:
            return span, 0
        return Span(span.object_key, span.start, max(end, span.end), tuple(ranges)), asked

    def _spans(self, missing: Sequence[RangeRecord]) -> list[Span]:
        """Per object, one span over the rest of the object (`_gap`) when the ranges asked
        for fill at least half of it, within one part and the room `_widened` allows;
        else the ranges coalesced. Coalescing alone cuts an object at every gap of at
        least the coalesce bound (the holes that object compaction leaves, or partitions
        not asked for), and widening each of those spans alone then makes a GET each."""
        by_object: dict[str, list[RangeRecord]] = {}
        for record in missing:
            by_object.setdefault(record.object_key, []).append(record)
        spans: list[Span] = []
        room = self.ahead_room() - self.share_bytes // 8
        for key, records in by_object.items():
            start = min(r.position for r in records)
            end = max(r.position + r.size for r in records)
            union = Span(key, start, end, tuple(sorted(records, key=lambda r: r.position)))
            low, high = self._gap(union)
            asked = sum(r.size for r in records)
            limit = min(self._part_bytes, asked + max(room, 0))
            if high - low <= limit and 2 * asked >= high - low and self._clear(key, low, high):
                spans.append(Span(key, low, high, union.ranges))
                continue
            spans.extend(coalesce(records, self._coalesce_bytes, self._span_bytes))
        return spans

    def _clear(self, key: str, start: int, end: int) -> bool:
        """Whether no cached span and no GET in flight holds bytes of [start, end)."""
        starts = self._starts.get(key)
        if starts:
            index = bisect.bisect_left(starts, end) - 1  # the last cached span before `end`
            if index >= 0 and self._ends[key][index] > start:
                return False
        return all(e <= start or s >= end for s, e in self._pending.get(key, ()))

    def _widened(self, span: Span) -> Span:
        """`span` widened to the rest of its object (`read_plan.widen`), at most one part
        and, beyond its own bytes, no more than read-ahead's room (an eighth of the share
        kept free), so widening never pushes out spans nobody has read yet."""
        room = self.ahead_room() - self.share_bytes // 8
        if room <= 0:
            return span
        gap_start, gap_end = self._gap(span)
        return widen(span, gap_start, gap_end, min(self._part_bytes, span.size + room))

    def _gap(self, span: Span) -> tuple[int, int]:
        """The bytes around `span`, within its object's known ranges, that no cached
        span holds and no GET in flight reads."""
        key, start, end = span.object_key, span.start, span.end
        low, high = self._extents.get(key, (start, end))
        low, high = min(low, start), max(high, end)
        starts = self._starts.get(key)
        if starts:
            ends = self._ends[key]
            index = bisect.bisect_left(starts, end)  # the first cached span from `end` on
            if index < len(starts):
                high = min(high, starts[index])
            if index > 0:  # ends ascend with starts: the last one before reaches furthest
                low = max(low, min(ends[index - 1], start))
        for got_start, got_end in self._pending.get(key, ()):
            if got_end <= start:
                low = max(low, got_end)
            elif got_start >= end:
                high = min(high, got_start)
            else:  # overlapping: no widening on either side
                low, high = start, end
        return low, max(high, end)

    def ahead_room(self) -> int:
        """The block cache share less the read-ahead bytes no reader has used yet (spans
        already read are evicted first, so they make room)."""
        return self._budget.block_cache_limit - self.ahead_bytes

    @property
    def part_bytes(self) -> int:
        """The most one GET reads (a span larger is read as parts)."""
        return self._part_bytes

    @property
    def share_bytes(self) -> int:
        return self._budget.block_cache_limit

    def _find(self, record: RangeRecord) -> SpanKey | None:
        """The cached span that holds `record`."""
        starts = self._starts.get(record.object_key)
        if not starts:
            return None
        index = bisect.bisect_right(starts, record.position) - 1
        if index < 0:
            return None
        end = self._ends[record.object_key][index]
        if record.position + record.size > end:
            return None
        return (record.object_key, starts[index], end)

    def _cached(self, record: RangeRecord) -> memoryview | None:
        key = self._find(record)
        if key is None:
            return None
        data = self._promote(key, record)
        if data is None:
            data = self._lru[key]
            self._lru.move_to_end(key)
        offset = record.position - key[1]
        return data[offset : offset + record.size]

    def _promote(self, key: SpanKey, record: RangeRecord) -> memoryview | None:
        """`record` was read from `key`: once every byte of a read-ahead span has been,
        it is evicted as a read span from then on. The span's bytes when it is still a
        read-ahead one (None: a read span)."""
        data = self._ahead.get(key)
        if data is None:
            return None
        positions, served = self._ahead_served.get(key, (set(), 0))
        if record.position not in positions:
            positions.add(record.position)
            served += record.size
        if served < len(data):
            self._ahead_served[key] = (positions, served)
            return data
        self._ahead_served.pop(key, None)
        del self._ahead[key]
        self.ahead_bytes -= len(data)
        self._lru[key] = data
        return data

    def _in_flight(self, record: RangeRecord) -> tuple[asyncio.Task[memoryview], SpanKey] | None:
        gets = self._pending.get(record.object_key)
        if gets:
            for (start, end), task in gets.items():
                if start <= record.position and record.position + record.size <= end:
                    return task, (record.object_key, start, end)
        return None

    def _start_get(self, span: Span, ahead: bool, carried: int = 0) -> asyncio.Task[memoryview]:
        """One GET of `span`; read ahead from `carried` on when not 0 (`_carry`), the
        whole span when `ahead`."""
        unread = span.start if ahead else carried or span.end  # read ahead from here on
        task = asyncio.get_running_loop().create_task(self._get(span, unread))
        self._pending.setdefault(span.object_key, {})[(span.start, span.end)] = task
        self._gets_started += 1
        self.ahead_bytes += span.end - unread
        task.add_done_callback(lambda t: self._got(span, t, span.end - unread))
        return task

    async def _get(self, span: Span, unread: int) -> memoryview:
        """The span's bytes, cached: those before `unread` as read, the rest as read ahead
        (evicted after every span read: a fetch of many stream objects reads more than
        the share, and the carried bytes must outlive the spans it returned)."""
        key, start, end = span.object_key, span.start, span.end
        async with self._gets, self._budget.reserve(span.size):
            data = await self._objects.get_range(key, start, end)
        self.ahead_bytes -= end - unread  # before the insert counts the cached span
        if unread == start:
            self._insert(key, start, end, data, self._ahead)
        elif unread == end:
            self._insert(key, start, end, data, self._lru)
        else:
            # The read part keeps the whole buffer alive while cached: charged whole. The
            # carried part is a copy, so it is freed alone.
            self._insert(key, start, unread, data, self._lru)
            self._insert(key, unread, end, memoryview(bytes(data[unread - start :])), self._ahead)
        return data

    def _got(self, span: Span, task: asyncio.Task[memoryview], ahead_bytes: int) -> None:
        self._gets_started -= 1
        if task.cancelled() or task.exception() is not None:
            self.ahead_bytes -= ahead_bytes  # a failed read-ahead leaves nothing behind
        gets = self._pending.get(span.object_key)
        if gets is not None:
            gets.pop((span.start, span.end), None)
            if not gets:
                del self._pending[span.object_key]
        if not task.cancelled():
            task.exception()  # retrieved: readers that gave up need not see it

    def _insert(
        self,
        object_key: str,
        start: int,
        end: int,
        data: memoryview,
        tier: OrderedDict[SpanKey, memoryview],
    ) -> None:
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
        key = (object_key, start, end)
        tier[key] = data
        budget.block_cache_bytes += len(data)
        if tier is self._ahead:
            self.ahead_bytes += len(data)
        while budget.block_cache_bytes > budget.block_cache_limit:
            victim = self._victim(key)
            if victim is None:
                break
            self._evict(victim)
        budget.on_shrink()  # the log cache's room shrank

    def _victim(self, keep: SpanKey) -> SpanKey | None:
        """The span to evict first: the least recently used read one, then the oldest
        read-ahead one (never `keep`, the span just inserted)."""
        for tier in (self._lru, self._ahead):
            for key in tier:
                if key != keep:
                    return key
        return None

    def _drop(self, key: SpanKey) -> None:
        self._ahead_served.pop(key, None)
        data = self._lru.pop(key, None)
        if data is None:
            data = self._ahead.pop(key)
            self.ahead_bytes -= len(data)
        self._budget.block_cache_bytes -= len(data)

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
            self._extents.pop(key, None)
            starts = self._starts.pop(key, None)
            ends = self._ends.pop(key, None)
            if starts is None or ends is None:
                continue
            for start, end in zip(starts, ends, strict=True):
                self._drop((key, start, end))
