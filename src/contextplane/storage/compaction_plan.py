"""Object compaction's plan (RFC 0003, "1. Object compaction"): which ranges of which
objects are rewritten into which new objects. Pure: no I/O, no clock.

Candidates are level-0 objects (uploads) older than `object.compaction.min.age.ms`,
objects of any level whose referenced bytes fell below `object.compaction.live.ratio` of
their size (their live ranges are rewritten, the dead space goes with the old object),
and compacted objects smaller than an upload (`upload.bytes`, the plan's `range_bytes`).
At most `object.compaction.max.objects` of them, oldest first, per pass. The last
output of a pass is what is left after the full ones (a pass of 5 uploads at 1,000
partitions: 18 + 18 + 4 MiB), read by a GET of its own: kept as it is, a layout made by
short passes costs a GET per pass more than uploads would (136 per GiB). As a candidate it
is merged into the next pass's outputs; it carries the pass's oldest commit time, so it
sorts before the uploads that came after. Alone it is left as it is (a task that only
copies one object is dropped), so nothing is rewritten twice without new data.

Their ranges are grouped per stream into *pieces*: ranges that follow each other in the
stream's log (no other range between them) and lie in one segment as retention derives
segments (retention.segments), at most `upload.bytes` (fetches read whole ranges, so a
compacted range is no larger than an upload's). A piece becomes one range of an output,
with the size, first `created_ms` and largest timestamp of the ranges it replaces, so
retention draws the same segment boundaries after the swap and deletes the same data at
the same time. Ranges in the closed segments retention would delete now
(retention.retention_start) are left out: rewriting them would only race with their
deletion. (Not the whole first closed
segment: with a week's retention it would hold its uploads, oldest first, at the head of
the candidates for a week, and enough of them would stall compaction.)

A stream with at least `object.compaction.stream.split.bytes` in the pass gets stream
objects (its pieces only, at most `object.compaction.stream.object.bytes` each); the
other streams' pieces are packed into merged objects, sorted by stream then offset, at
most `object.compaction.merged.bytes` each. An output is laid out as whole read parts of
at most `object.read.part.bytes` (and `.span.bytes`; by default both one upload, 9 MiB),
as many as its bound holds, each ending at one of its ranges' ends: the reader cuts a
span the same way (`read_plan.coalesce`, `split_parts`: as many ranges as fit), so a
whole read costs one GET per part. Bounded by bytes alone, a 20 MiB output was read as
9 + 9 + 2 MiB, a GET more for the tail. A piece is cut at range boundaries to fit; a
single range larger than a part is a part of its own (ranges are never split).
Each output object is one task; a task that would only copy one object whole (not a
sparse one) is dropped, so a lone upload waits to be merged with the next ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from contextplane.metadata.records import ObjectSummary, RangeRecord
from contextplane.storage.retention import retention_start, segments


@dataclass(frozen=True, slots=True)
class PlanConfig:
    min_age_ms: int
    max_objects: int
    stream_split_bytes: int
    stream_object_bytes: int
    merged_bytes: int
    live_ratio: float
    # The largest range an output holds (upload.bytes, an upload's largest): a fetch
    # reads a whole range, so ranges grow no larger than uploads make them.
    range_bytes: int
    # The reader's GET bound (object.read.part.bytes and .span.bytes, the smaller).
    part_bytes: int


@dataclass(frozen=True, slots=True)
class StreamLayout:
    """A stream's whole log (every range, in offset order) and its segment configs."""

    ranges: Sequence[RangeRecord]
    segment_bytes: int
    segment_ms: int
    retention_ms: int = -1  # -1 for both when the topic's cleanup.policy has no `delete`
    retention_bytes: int = -1


class OutputKind(Enum):
    STREAM = "stream"
    MERGED = "merged"


@dataclass(frozen=True, slots=True)
class Piece:
    """Consecutive ranges of one stream in one segment: one range of an output."""

    stream_id: int
    sources: tuple[RangeRecord, ...]

    @property
    def base_offset(self) -> int:
        return self.sources[0].base_offset

    @property
    def end_offset(self) -> int:
        return self.sources[-1].end_offset

    @property
    def size(self) -> int:
        return sum(r.size for r in self.sources)

    @property
    def max_timestamp(self) -> int:
        return max(r.max_timestamp for r in self.sources)

    @property
    def created_ms(self) -> int:
        return self.sources[0].created_ms


@dataclass(frozen=True, slots=True)
class Task:
    """One output object and the pieces it is built from, in their order in it."""

    kind: OutputKind
    pieces: tuple[Piece, ...]

    @property
    def size(self) -> int:
        return sum(p.size for p in self.pieces)

    @property
    def input_keys(self) -> list[str]:
        return sorted({r.object_key for p in self.pieces for r in p.sources})

    @property
    def created_ms(self) -> int:
        return min(p.created_ms for p in self.pieces)


def candidates(
    objects: Iterable[ObjectSummary], now_ms: int, config: PlanConfig
) -> list[ObjectSummary]:
    """The objects this pass may rewrite: old enough, and an upload, sparse, or smaller
    than an upload; the oldest `max_objects` of them."""
    cutoff = now_ms - config.min_age_ms
    unique = {o.key: o for o in objects}.values()
    eligible = [
        o
        for o in unique
        if o.created_ms <= cutoff
        and o.ranges
        and (
            o.level == 0 or o.live_bytes < config.live_ratio * o.size or o.size < config.range_bytes
        )
    ]
    eligible.sort(key=lambda o: (o.created_ms, o.key))
    return eligible[: config.max_objects]


def plan(
    objects: Iterable[ObjectSummary],
    streams: Mapping[int, StreamLayout],
    now_ms: int,
    config: PlanConfig,
) -> list[Task]:
    chosen: dict[int, list[RangeRecord]] = {}
    picked = candidates(objects, now_ms, config)
    for summary in picked:
        for record in summary.ranges:
            if record.stream_id in streams:
                chosen.setdefault(record.stream_id, []).append(record)
    tasks: list[Task] = []
    merged: list[Piece] = []
    for stream_id in sorted(chosen):
        pieces = stream_pieces(
            stream_id, chosen[stream_id], streams[stream_id], now_ms, config.range_bytes
        )
        if sum(p.size for p in pieces) >= config.stream_split_bytes:
            tasks += pack(OutputKind.STREAM, pieces, config.stream_object_bytes, config.part_bytes)
        else:
            merged += pieces
    tasks += pack(OutputKind.MERGED, merged, config.merged_bytes, config.part_bytes)
    by_key = {o.key: o for o in picked}
    return [t for t in tasks if not copies_one_object(t, by_key, config.live_ratio)]


def copies_one_object(task: Task, objects: Mapping[str, ObjectSummary], live_ratio: float) -> bool:
    """Whether `task` would only copy one object that is not sparse, every range of it:
    nothing to gain (a lone upload waits to be merged with the next ones)."""
    keys = task.input_keys
    if len(keys) != 1:
        return False
    summary = objects[keys[0]]
    taken = sum(len(p.sources) for p in task.pieces)
    return taken == len(summary.ranges) and summary.live_bytes >= live_ratio * summary.size


def doomed_end(layout: StreamLayout, now_ms: int) -> int | None:
    """The offset below which retention deletes the stream's ranges now, if any."""
    return retention_start(
        layout.ranges, now_ms, layout.retention_ms, layout.retention_bytes,
        layout.segment_bytes, layout.segment_ms,
    )  # fmt: skip


def stream_pieces(
    stream_id: int,
    records: Iterable[RangeRecord],
    layout: StreamLayout,
    now_ms: int,
    range_bytes: int,
) -> list[Piece]:
    """`records` (ranges of the stream in the chosen objects) as pieces: runs that are
    consecutive in the stream's log and in one segment, of at most `range_bytes` (or one
    range), those retention deletes now left out. A record the layout does not hold (it
    moved since it was read) is left out."""
    position: dict[tuple[int, str], tuple[int, int]] = {}  # -> (index in log, segment)
    derived = segments(layout.ranges, layout.segment_bytes, layout.segment_ms)
    index = 0
    for number, segment in enumerate(derived):
        for record in segment:
            position[(record.base_offset, record.object_key)] = (index, number)
            index += 1
    doomed = doomed_end(layout, now_ms)
    located = sorted(
        (
            (position[(r.base_offset, r.object_key)], r)
            for r in records
            if (r.base_offset, r.object_key) in position
        ),
        key=lambda item: item[0],
    )
    pieces: list[Piece] = []
    run: list[RangeRecord] = []
    last: tuple[int, int] | None = None
    for (index, number), record in located:
        if doomed is not None and record.end_offset <= doomed:
            continue
        if (
            run
            and last is not None
            and (
                index != last[0] + 1
                or number != last[1]
                or sum(r.size for r in run) + record.size > range_bytes
            )
        ):
            pieces.append(Piece(stream_id, tuple(run)))
            run = []
        run.append(record)
        last = (index, number)
    if run:
        pieces.append(Piece(stream_id, tuple(run)))
    return pieces


def pack(kind: OutputKind, pieces: Sequence[Piece], limit: int, part: int) -> list[Task]:
    """`pieces` in order into outputs of at most `limit` bytes made of `limit // part`
    parts (at least one) of at most `part` bytes, a piece cut at range boundaries where a
    part is full (a range alone larger than a part is a part, and larger than `limit` an
    output)."""
    part = min(part, limit)
    parts_max = max(1, limit // part)
    tasks: list[Task] = []
    current: list[Piece] = []
    size = 0  # bytes in `current`
    parts = 0  # the parts of `current` before the one being filled
    filled = 0  # bytes in the part being filled

    for piece in pieces:
        run: list[RangeRecord] = []
        for record in piece.sources:
            over = size + record.size > limit
            if filled and (filled + record.size > part or over):
                # The part is full: the piece's range ends with it (the reader cuts here).
                if run:
                    current.append(Piece(piece.stream_id, tuple(run)))
                    run = []
                parts, filled = parts + 1, 0
                if parts == parts_max or over:
                    tasks.append(Task(kind, tuple(current)))
                    current, size, parts = [], 0, 0
            run.append(record)
            filled += record.size
            size += record.size
        if run:
            current.append(Piece(piece.stream_id, tuple(run)))
    if current:
        tasks.append(Task(kind, tuple(current)))
    return tasks
