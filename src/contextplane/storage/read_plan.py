"""Which object ranges one Fetch reads, and how they are grouped into GETs (no I/O).

An upload object holds every partition that had data in its window, laid out stream by
stream, so the next ranges of many partitions of a catch-up lie side by side in the same
objects. Reading them partition by partition costs one GET per range; planning the whole
Fetch at once costs about one GET per object:

* `plan_ranges` chooses the ranges each partition takes: the first partition with data
  in request order takes its next range whatever the bounds (KIP-74; Kafka's
  ReplicaManager.readFromLog reads partitions in request order with minOneMessage until
  one returns data), and that range's object comes first, every partition whose next
  range it holds taking it in the same GET. Then object by object, oldest object first
  (an object's age: the oldest of the next ranges it holds; objects of one age in request
  order), every partition's ranges in that object, each partition within its byte limit,
  whole objects while they fit in the response's (the first object alone may be cut at
  that bound). A partition's ranges are always a prefix of its ranges from its offset, so the
  batches it returns are a prefix of what a read of that partition alone returns. Other
  partitions are filled in the order of their data's age, not the request's: one whose
  next range lies in an object newer than the ones the response fills gets nothing this
  time (reading its one range would cost a GET of a few KiB of an object that a later
  fetch reads whole). It is read when the others reach that object, or sooner when it
  comes first in a request: clients rotate their partitions (the Java consumer moves a
  partition that returned data to the end, librdkafka starts each request one partition
  further), so none starves.
* `coalesce` merges, per object, ranges whose gap is below the coalesce bound into spans
  of at most the span bound (a single range larger than that is a span alone);
  `split_parts` cuts a span into GETs of at most the part bound, at range boundaries.
* `widen` extends a span to the rest of its object (the part neither cached nor being
  read) when the span already reads at least half of that rest: one GET of the object
  then serves every partition with ranges in it, where cutting it to the ranges asked for
  leaves the other partitions' ranges to further GETs (objects cut every 250 ms hold a
  small slice of each of many partitions).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from contextplane.metadata.records import RangeRecord


@dataclass(slots=True)
class PlanPartition:
    """One partition of a Fetch that reads from objects."""

    ranges: Iterator[RangeRecord]  # from the range holding its offset, in offset order
    end: int  # exclusive: the high watermark (read_committed: the last stable offset)
    bytes_max: int  # its partition_max_bytes
    taken: list[RangeRecord] = field(default_factory=list)
    taken_bytes: int = 0
    next: RangeRecord | None = None
    # Its ranges right after the last one taken, in the same object (`plan_ranges`'
    # `after_bytes`): not returned, offered to the GET of the taken ones.
    after: list[RangeRecord] = field(default_factory=list)
    cut: bool = False  # ranges taken were put back (the object did not fit)

    def advance(self) -> RangeRecord | None:
        """The next range below `end`, or None."""
        record = next(self.ranges, None)
        self.next = record if record is not None and record.base_offset < self.end else None
        return self.next


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes [start, end) of one object, read by one GET; the ranges it holds."""

    object_key: str
    start: int
    end: int
    ranges: tuple[RangeRecord, ...]

    @property
    def size(self) -> int:
        return self.end - self.start


def plan_ranges(
    partitions: Sequence[PlanPartition], max_bytes: int, min_one: bool = True, after_bytes: int = 0
) -> None:
    """Fill each partition's `taken` with the ranges it reads (see the module doc).

    With `min_one` (no partition ahead of these in the response returned data), the first
    partition with data in request order takes its next range whatever the bounds
    (KIP-74: Kafka's minOneMessage), and that range's object comes first: every
    partition whose next range it holds takes it, read by the same GET. Then objects
    oldest first, each with every partition whose next range it holds. A range is taken
    while its partition has read less than its `bytes_max` (as the per-partition reader
    keeps reading ranges while it has room), so at most one range past that bound is
    read; but within one object a further range only if it fits: a stream object holds
    a partition's ranges of up to `upload.bytes` back to back, and taking the next one
    past the bound read up to a whole range that the response leaves and the next
    fetch reads again (the span has left the block cache by then). Objects are taken
    whole (every partition's ranges in them) while they fit in
    `max_bytes`; the first that does not is left for a later fetch, unless it is the first
    object, read then up to one range past `max_bytes`.

    A partition whose ranges stop inside an object (its bound reached there) gets in
    `after` its next ranges in that object, up to `after_bytes` in all: the block cache
    reads them with the taken ones to the end of the read part (`BlockCache.read_ranges`'
    `along`), so the partition's next fetch finds them cached rather than reading the
    rest of a part by a GET of its own.
    """
    _plan(partitions, max_bytes, min_one)
    if after_bytes > 0:
        for partition in partitions:
            _offer_after(partition, after_bytes)


def _offer_after(partition: PlanPartition, after_bytes: int) -> None:
    """Fill `after` with the partition's next ranges in the object of its last taken
    range, back to back with it, within `after_bytes`."""
    record = partition.next
    if not partition.taken or partition.cut or record is None:
        return
    if partition.taken_bytes + record.size <= partition.bytes_max:
        return  # stopped by the response, not its own bound: a later fetch reads on
    last = partition.taken[-1]
    end, size = last.position + last.size, 0
    while (
        record is not None
        and record.object_key == last.object_key
        and record.position == end
        and size + record.size <= after_bytes
    ):
        partition.after.append(record)
        size += record.size
        end += record.size
        record = partition.advance()


def _plan(partitions: Sequence[PlanPartition], max_bytes: int, min_one: bool) -> None:
    total = 0

    def take(partition: PlanPartition, record: RangeRecord) -> None:
        nonlocal total
        partition.taken.append(record)
        partition.taken_bytes += record.size
        total += record.size

    for partition in partitions:
        partition.advance()
    first_object = ""  # no object key is empty
    if min_one:
        first = next((p for p in partitions if p.next is not None), None)
        if first is not None and first.next is not None:
            first_object = first.next.object_key
            take(first, first.next)
            first.advance()

    def order(record: RangeRecord) -> tuple[bool, int]:
        """The first partition's object, then oldest first (commit time)."""
        return (record.object_key != first_object, record.created_ms)

    # Per object, the partitions whose next range lies in it. An object is taken when its
    # oldest such range comes up, with every one of them: a compacted object's ranges keep
    # the commit times of the ranges they replaced (retention needs them), so one object
    # holds ranges of several times, and taking only those of one time left the rest (a
    # piece cut where a part or the object ends) to a later fetch, a GET each. Objects of
    # one time go in request order (the first partition waiting on each): a compaction's
    # outputs all have the time of its oldest input, and partitions in order read them in
    # the order they were cut (a partition's data cut at an object's end comes next).
    waiting: dict[str, set[int]] = {}
    heap: list[tuple[tuple[bool, int], int]] = []  # each waiting range's order, its partition

    def wait(index: int, record: RangeRecord) -> None:
        waiting.setdefault(record.object_key, set()).add(index)
        heapq.heappush(heap, (order(record), index))

    for index, p in enumerate(partitions):
        if p.next is not None and p.taken_bytes < p.bytes_max:
            wait(index, p.next)
    whole = False  # whether an object's ranges were all taken
    while heap and total < max_bytes:
        # Every partition's ranges in the object of the oldest range waiting, in request
        # order, the group fixed before any is taken: a partition moving on to the first
        # partition's object must not cut this object short.
        rank, index = heapq.heappop(heap)
        record = partitions[index].next
        if record is None or order(record) != rank:
            continue  # taken already, with the rest of its object
        key = record.object_key
        if index not in waiting.get(key, ()):
            continue
        group = sorted(waiting.pop(key))
        before = total
        added: list[tuple[PlanPartition, RangeRecord]] = []  # in the order taken
        for index in group:
            partition = partitions[index]
            record = partition.next
            while record is not None and record.object_key == key:
                further = partition.taken and partition.taken[-1].object_key == key
                if further and partition.taken_bytes + record.size > partition.bytes_max:
                    break  # a further range of this object only within the bound
                take(partition, record)
                added.append((partition, record))
                record = partition.advance()
                if partition.taken_bytes >= partition.bytes_max:
                    break  # this partition is full
            if (
                record is not None
                and record.object_key != key
                and partition.taken_bytes < partition.bytes_max
            ):
                wait(index, record)
        if total <= max_bytes:
            whole = True
            continue
        # The object does not fit. After whole objects it is left to a later fetch, which
        # reads it whole (not a slice now and the rest in another GET); as the first it
        # is read up to the bound, one range past it, as ranges are taken above.
        keep = 0
        if not whole:
            while keep < len(added) and before < max_bytes:
                before += added[keep][1].size
                keep += 1
        for partition, record in reversed(added[keep:]):
            partition.cut = True  # its `next` is past the ranges put back
            partition.taken.pop()
            partition.taken_bytes -= record.size
            total -= record.size
        break


def coalesce(ranges: Iterable[RangeRecord], coalesce_bytes: int, span_bytes: int) -> list[Span]:
    """Per object, ranges with gaps below `coalesce_bytes` merged into spans of at most
    `span_bytes` (a range alone may be larger). Every range is in exactly one span."""
    by_object: dict[str, list[RangeRecord]] = {}
    for record in ranges:
        by_object.setdefault(record.object_key, []).append(record)
    spans: list[Span] = []
    for key, records in by_object.items():
        records.sort(key=lambda r: r.position)
        group: list[RangeRecord] = []
        start = end = 0
        for record in records:
            record_end = record.position + record.size
            if (
                group
                and record.position - end < coalesce_bytes
                and max(end, record_end) - start <= span_bytes
            ):
                group.append(record)
                end = max(end, record_end)
                continue
            if group:
                spans.append(Span(key, start, end, tuple(group)))
            group, start, end = [record], record.position, record_end
        if group:
            spans.append(Span(key, start, end, tuple(group)))
    return spans


def split_parts(span: Span, part_bytes: int) -> list[Span]:
    """A span cut at range boundaries into parts of at most `part_bytes` (a range alone
    may be larger), each read by its own GET."""
    if span.size <= part_bytes:
        return [span]
    parts: list[Span] = []
    group: list[RangeRecord] = []
    start = end = 0
    for record in span.ranges:
        record_end = record.position + record.size
        if group and max(end, record_end) - start > part_bytes:
            parts.append(Span(span.object_key, start, end, tuple(group)))
            group = []
        if not group:
            start, end = record.position, record_end
        group.append(record)
        end = max(end, record_end)
    parts.append(Span(span.object_key, start, end, tuple(group)))
    return parts


def widen(span: Span, gap_start: int, gap_end: int, max_bytes: int) -> Span:
    """`span` extended to [gap_start, gap_end) (the bytes of its object around it that are
    neither cached nor being read) when it already reads at least half of them and the
    whole is at most `max_bytes`; else `span` itself. The span keeps its ranges: the bytes
    added belong to ranges nobody asked for yet, served from the cache when they are."""
    start, end = min(gap_start, span.start), max(gap_end, span.end)
    if end - start > max_bytes or 2 * span.size < end - start:
        return span
    if (start, end) == (span.start, span.end):
        return span
    return Span(span.object_key, start, end, span.ranges)
