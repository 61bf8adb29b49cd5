"""Object compaction's loop (RFC 0003, "1. Object compaction"): every
`object.compaction.interval.ms` it plans (compaction_plan.py) and runs each task, one
output object each:

1. hold the rewrite locks of the task's streams (the log cleaner takes them too);
2. read the input ranges straight from the object store, not through the block cache
   (compaction must not evict consumers' data): per input object one ranged GET per span
   of needed ranges (ranges closer than `OBJECT_COMPACTION_SPAN_GAP_BYTES` share one),
   paced by `object.compaction.read.bytes.per.second`, with the spans and the output
   reserved in the memory budget's in-flight share, at most half of it (uploads and
   reads always have the other half);
3. build the output (object_format.py): every range copied whole, no batch parsed;
4. PUT it, its key in `InFlightKeys` from before the PUT until the swap returned (the
   orphan sweep leaves it alone meanwhile), then `swap_objects`: per stream epoch- and
   range-checked, one transaction; an output none of whose streams was kept is deleted;
5. replace the swapped streams' ranges in memory (`ObjectRanges.replace`).

A crash before the swap leaves an object nothing references (the orphan sweep deletes
it); after it, the inputs wait in the deletion queue for `file.delete.delay.ms`, so reads
that found them finish. A swap that raised is not undone: whether it committed or not,
the metadata store is right and the output is either referenced or the sweep's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from contextplane.clock import Clock
from contextplane.java_numbers import stored_int
from contextplane.limits import OBJECT_COMPACTION_SPAN_GAP_BYTES
from contextplane.metadata.records import (
    CompactedObject,
    CompactedRange,
    ObjectSwap,
    RangeRecord,
    SwapOutcome,
)
from contextplane.metadata.store import MetadataStore
from contextplane.settings import Settings
from contextplane.storage.cleaner_throttle import IoThrottle
from contextplane.storage.compaction_plan import PlanConfig, StreamLayout, Task, plan
from contextplane.storage.memory import MemoryBudget
from contextplane.storage.object_format import (
    StreamChunk,
    build_object,
    index_bytes_max,
    object_key,
    parts_size,
)
from contextplane.storage.objectstore import ObjectStore
from contextplane.storage.orphan_sweep import InFlightKeys
from contextplane.storage.partition import PartitionLog
from contextplane.storage.rewrite_locks import StreamRewriteLocks
from contextplane.tasks import repeat_every

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CompactorStats:
    passes: int = 0
    tasks: int = 0
    refused: int = 0  # outputs no stream of which could be swapped
    bytes_read: int = 0
    bytes_written: int = 0
    objects_written: int = 0  # its PUTs: rewrites, apart from ingest's


def spans_of(ranges: Iterable[RangeRecord], gap: int) -> list[tuple[int, int]]:
    """[start, end) byte spans covering `ranges` of one object: ranges at most `gap`
    apart share a span."""
    spans: list[tuple[int, int]] = []
    for record in sorted(ranges, key=lambda r: r.position):
        start, end = record.position, record.position + record.size
        if spans and start - spans[-1][1] <= gap:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def retention_of(configs: dict[str, str], settings: Settings) -> tuple[int, int]:
    """The topic's (retention.ms, retention.bytes); (-1, -1) when its cleanup.policy has
    no `delete` (retention deletes nothing then)."""
    policy = configs.get("cleanup.policy", settings.log_cleanup_policy)
    if "delete" not in [item.strip() for item in policy.split(",")]:
        return -1, -1
    return (
        stored_int(configs.get("retention.ms", settings.retention_ms)),
        stored_int(configs.get("retention.bytes", settings.retention_bytes)),
    )


class ObjectCompactor:
    def __init__(
        self,
        settings: Settings,
        metadata: MetadataStore,
        objects: ObjectStore,
        clock: Clock,
        budget: MemoryBudget,
        partitions: Callable[[], Iterable[PartitionLog]],
        topic_configs: Callable[[str], dict[str, str]],
        in_flight: InFlightKeys,
        locks: StreamRewriteLocks,
        delete_delay_ms: Callable[[str], int],
        on_unreferenced: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._metadata = metadata
        self._objects = objects
        self._clock = clock
        self._budget = budget
        self._partitions = partitions
        self._topic_configs = topic_configs
        self._in_flight = in_flight
        self._locks = locks
        self._delete_delay_ms = delete_delay_ms
        self._on_unreferenced = on_unreferenced
        self.throttle = IoThrottle(settings.object_compaction_read_bytes_per_second, clock)
        self.stats = CompactorStats()

    async def run(self) -> None:
        await repeat_every(
            self._settings.object_compaction_interval_ms / 1000,
            self.compact_once,
            "object compaction pass",
            log,
        )

    def plan_config(self) -> PlanConfig:
        """The settings, with outputs bounded so that one task (its input spans and its
        output) stays within compaction's part of the budget's in-flight share."""
        settings = self._settings
        bound = max(1, self._budget.compaction_limit // 2)
        return PlanConfig(
            min_age_ms=settings.object_compaction_min_age_ms,
            max_objects=settings.object_compaction_max_objects,
            stream_split_bytes=settings.object_compaction_stream_split_bytes,
            stream_object_bytes=min(settings.object_compaction_stream_object_bytes, bound),
            merged_bytes=min(settings.object_compaction_merged_bytes, bound),
            live_ratio=settings.object_compaction_live_ratio,
            part_bytes=min(settings.object_read_part_bytes, settings.object_read_span_bytes),
            range_bytes=settings.upload_bytes,
        )

    async def compact_once(self) -> int:
        """One pass: plan, then run every task; returns how many outputs were swapped."""
        settings = self._settings
        now_ms = self._clock.wall_ms()
        self.stats.passes += 1
        config = self.plan_config()
        candidates = await self._metadata.compaction_candidates(
            now_ms - config.min_age_ms, config.live_ratio, config.max_objects, config.range_bytes
        )
        # Only the partitions with ranges in a candidate are laid out (their indexes
        # loaded): the others have nothing to rewrite this pass.
        wanted = {r.stream_id for o in candidates for r in o.ranges}
        led: dict[int, PartitionLog] = {}
        layouts: dict[int, StreamLayout] = {}
        for partition in list(self._partitions()):
            if partition.deleted or partition.stream_id not in wanted:
                continue
            ranges = await partition.index.load()
            if partition.deleted or not len(ranges):
                continue
            configs = self._topic_configs(partition.topic)
            led[partition.stream_id] = partition
            layouts[partition.stream_id] = StreamLayout(
                list(ranges),
                stored_int(configs.get("segment.bytes", settings.segment_bytes)),
                stored_int(configs.get("segment.ms", settings.segment_ms)),
                *retention_of(configs, settings),
            )
        if not layouts:
            return 0
        tasks = plan(candidates, layouts, now_ms, config)
        if not tasks:
            return 0
        log.info(
            "object compaction: %d tasks planned over %d objects",
            len(tasks),
            len({key for task in tasks for key in task.input_keys}),
        )
        swapped = 0
        for task in tasks:
            swapped += await self.run_task(task, led)
        return swapped

    async def run_task(self, task: Task, led: dict[int, PartitionLog]) -> bool:
        """Read, build, PUT and swap one output (module doc); True when it was swapped."""
        started = self._clock.monotonic_ms()
        streams = {piece.stream_id for piece in task.pieces}
        async with self._locks.hold_all(streams):
            spans = {
                key: spans_of(
                    [r for p in task.pieces for r in p.sources if r.object_key == key],
                    OBJECT_COMPACTION_SPAN_GAP_BYTES,
                )
                for key in task.input_keys
            }
            read_bytes = sum(end - start for s in spans.values() for start, end in s)
            held = read_bytes + task.size + index_bytes_max(len(task.pieces))
            # Compaction's part of the share: uploads and reads keep the other half.
            async with self._budget.reserve(held, compaction=True):
                output, data = await self._build(task, spans)
                outcome = await self._put_and_swap(task, output, data, led)
            await self._apply(task, output, outcome, led)
        log.info(
            "object compaction: %d objects into 1 %s object %s: %d bytes read, %d written,"
            " %d partitions swapped, %d ms",
            len(task.input_keys),
            task.kind.value,
            output.key,
            read_bytes,
            output.size,
            len(outcome.swapped),
            self._clock.monotonic_ms() - started,
        )
        return bool(outcome.swapped)

    async def _build(
        self, task: Task, spans: dict[str, list[tuple[int, int]]]
    ) -> tuple[CompactedObject, list[bytes | memoryview]]:
        by_key: dict[str, list[RangeRecord]] = {}
        for piece in task.pieces:
            for r in piece.sources:
                by_key.setdefault(r.object_key, []).append(r)
        views: dict[tuple[str, int], memoryview] = {}  # (key, position) -> the range's bytes
        for key, key_spans in spans.items():
            for start, end in key_spans:
                data = await self._objects.get_range(key, start, end)
                if len(data) != end - start:
                    raise ValueError(f"{key} [{start}, {end}): read {len(data)} bytes")
                self.stats.bytes_read += len(data)
                await self.throttle.maybe_throttle(len(data))
                for r in by_key[key]:
                    if start <= r.position < end:
                        views[(key, r.position)] = data[r.position - start :][: r.size]
        chunks = [
            StreamChunk(
                piece.stream_id,
                piece.base_offset,
                piece.end_offset,
                piece.max_timestamp,
                [views[(r.object_key, r.position)] for r in piece.sources],
            )
            for piece in task.pieces
        ]
        data, index = build_object(chunks)
        sequence = await self._metadata.next_counter("object_sequence")
        ranges = [
            CompactedRange(
                e.stream_id, e.base_offset, e.end_offset, e.position, e.size, e.max_timestamp,
                piece.created_ms, tuple((r.base_offset, r.object_key) for r in piece.sources),
            )
            for e, piece in zip(index, task.pieces, strict=True)
        ]  # fmt: skip
        key = object_key(self._settings.node_id, sequence)
        return CompactedObject(key, parts_size(data), task.created_ms, 1, ranges), data

    async def _put_and_swap(
        self,
        task: Task,
        output: CompactedObject,
        data: list[bytes | memoryview],
        led: dict[int, PartitionLog],
    ) -> SwapOutcome:
        streams = {piece.stream_id for piece in task.pieces}
        topics = {led[s].topic for s in streams}
        swap = ObjectSwap(
            [output],
            {s: led[s].leader_epoch for s in streams},
            self._clock.wall_ms() + max(self._delete_delay_ms(t) for t in topics),
        )
        self._in_flight.add(output.key)
        try:
            await self._objects.put(output.key, data)
            self.stats.objects_written += 1
            self.stats.bytes_written += output.size
            return await self._metadata.swap_objects(swap)
        finally:
            self._in_flight.discard(output.key)

    async def _apply(
        self,
        task: Task,
        output: CompactedObject,
        outcome: SwapOutcome,
        led: dict[int, PartitionLog],
    ) -> None:
        for key in outcome.refused:
            await self._objects.delete(key)  # never referenced: no reader has it
            self.stats.refused += 1
        if outcome.epoch_moved or outcome.ranges_moved:
            log.info(
                "object compaction: swap of %s left out %d partitions (leader epoch moved or"
                " topic deleted: %s; ranges changed since read: %s)%s",
                output.key,
                len(outcome.epoch_moved) + len(outcome.ranges_moved),
                sorted(outcome.epoch_moved),
                sorted(outcome.ranges_moved),
                "; the object was deleted" if outcome.refused else "",
            )
        if not outcome.swapped:
            return
        self.stats.tasks += 1
        for piece, new in zip(task.pieces, output.ranges, strict=True):
            if piece.stream_id not in outcome.swapped:
                continue
            partition = led[piece.stream_id]
            record = RangeRecord(
                new.stream_id, new.base_offset, new.end_offset, output.key, new.position,
                new.size, new.max_timestamp, new.created_ms,
            )  # fmt: skip
            keep = [record] if record.end_offset > partition.log_start_offset else []
            partition.index.replace(piece.base_offset, piece.end_offset, keep)
        if outcome.unreferenced:
            self._on_unreferenced()
