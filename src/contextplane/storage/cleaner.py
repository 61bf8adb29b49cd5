"""The log cleaner: compacted topics (`cleanup.policy` lists `compact`) keep each key's
latest record (RFC 0002, "Compacted topics"; the rules are compaction.py's).

One task. Every `log.cleaner.backoff.ms` (or at once after a pass that cleaned) it takes
the dirtiest partition that is due (`min.cleanable.dirty.ratio`, `max.compaction.lag.ms`)
and cleans it in one pass:

1. map: the keys of the dirty section (from the partition's first dirty offset, kept in
   the metadata store, to the cleanable end), range by range, until the map holds
   `log.cleaner.dedupe.buffer.size` worth of keys; the pass cleans up to the record where
   the map stopped (the range holding it is rewritten whole, its later records kept) and
   the next pass goes on from there, as Kafka's cleaner does;
2. clean: the ranges from the log start to that point, in groups of at most
   `upload.bytes`, each group's survivors written as one new single-partition object
   (original offsets, gaps between them);
3. swap: each new object is PUT (held in flight, so the orphan sweep leaves it alone),
   then one metadata transaction replaces the group's ranges by the new object's, checked
   against the leader epoch and against the ranges read (retention may have moved the
   log start meanwhile: then nothing changes and the object is deleted); the replaced
   objects wait `file.delete.delay.ms` before deletion (object_deleter.py), so fetches
   that found them finish. The last group's swap also stores the new first dirty offset.
   A group in which nothing changes is not rewritten.

Every read and PUT is paced by `log.cleaner.io.max.bytes.per.second` (cleaner_throttle.py).
Every broker setting is read where it is used, so a dynamic broker config (KIP-226:
message.max.bytes, the cleaner's) applies from the next read, as Kafka's
LogCleaner.reconfigure applies it by restarting its threads.
Parsing and rewriting records runs in a worker thread, one range at a time, so the event
loop keeps serving. A crash before a swap leaves an object nothing references (the orphan
sweep's); after it, the old objects are in the deletion queue. Either way every record is
where it was, or in the new object, never in neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from contextplane.clock import Clock
from contextplane.java_numbers import stored_double, stored_int
from contextplane.metadata.records import RangeCommit, RangeRecord, RangeSwap
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.decompress import DecompressedTooLarge, DecompressionError
from contextplane.protocol.records import iter_batch_headers
from contextplane.settings import Settings
from contextplane.storage.aborted_reads import aborted_overlapping
from contextplane.storage.cleaner_throttle import IoThrottle
from contextplane.storage.compaction import (
    MAP_ENTRY_BYTES,
    AbortedIndex,
    CleanerConfig,
    OffsetMap,
    TransactionsSeen,
    chunked,
    clean_batches,
    cleanable_end,
    dirty_ratio,
    map_batches,
    must_clean,
)
from contextplane.storage.object_format import (
    StreamChunk,
    build_object,
    object_key,
    parts_size,
)
from contextplane.storage.objectstore import ObjectStore
from contextplane.storage.orphan_sweep import InFlightKeys
from contextplane.storage.partition import PartitionLog
from contextplane.storage.rewrite_locks import StreamRewriteLocks
from contextplane.tasks import log_round_failure

log = logging.getLogger(__name__)

FIRST_DIRTY = "first_dirty_offset"
# What reading a stored batch's records raises when they are not what their header says
# (a batch MirrorAppend took without walking its records, or a corrupted object).
_PARSE_ERRORS = (
    IndexError,
    ValueError,
    struct.error,
    DecompressionError,
    DecompressedTooLarge,
)

_Result = TypeVar("_Result")


class UnreadableBatches(Exception):
    """A partition's stored records could not be parsed for cleaning."""


async def _parsing(partition: PartitionLog, parse: Callable[..., _Result], *args: Any) -> _Result:
    """`parse(*args)` in a worker thread; a parse failure named as the partition's."""
    try:
        return await asyncio.to_thread(parse, *args)
    except _PARSE_ERRORS as exc:
        raise UnreadableBatches(
            f"the records of {partition.topic}-{partition.partition} cannot be read for "
            f"cleaning ({type(exc).__name__}: {exc})"
        ) from exc


def is_compacted(configs: dict[str, str], settings: Settings) -> bool:
    """Whether the topic's `cleanup.policy` (log.cleanup.policy when it sets none) lists
    `compact`."""
    policy = configs.get("cleanup.policy", settings.log_cleanup_policy)
    return "compact" in [item.strip() for item in policy.split(",")]


def cleaner_config(configs: dict[str, str], settings: Settings) -> CleanerConfig:
    """The topic's cleaning configs; the broker's log.cleaner.* defaults where it sets none
    (as Kafka's LogConfig falls back to them)."""
    return CleanerConfig(
        min_cleanable_dirty_ratio=stored_double(
            configs.get("min.cleanable.dirty.ratio", settings.log_cleaner_min_cleanable_ratio)
        ),
        min_compaction_lag_ms=stored_int(
            configs.get("min.compaction.lag.ms", settings.log_cleaner_min_compaction_lag_ms)
        ),
        max_compaction_lag_ms=stored_int(
            configs.get("max.compaction.lag.ms", settings.log_cleaner_max_compaction_lag_ms)
        ),
        delete_retention_ms=stored_int(
            configs.get("delete.retention.ms", settings.log_cleaner_delete_retention_ms)
        ),
        segment_bytes=stored_int(configs.get("segment.bytes", settings.segment_bytes)),
        segment_ms=stored_int(configs.get("segment.ms", settings.segment_ms)),
    )


@dataclass(slots=True)
class CleanerStats:
    passes: int = 0
    swaps: int = 0
    bytes_read: int = 0  # of the dirty sections mapped
    bytes_written: int = 0
    objects_written: int = 0  # its PUTs: rewrites, apart from ingest's
    seconds: float = 0.0


class Cleaner:
    def __init__(
        self,
        settings: Settings,
        metadata: MetadataStore,
        objects: ObjectStore,
        clock: Clock,
        partitions: Callable[[], Iterable[PartitionLog]],
        topic_configs: Callable[[str], dict[str, str]],
        in_flight: InFlightKeys,
        delete_delay_ms: Callable[[str], int],
        on_unreferenced: Callable[[], None],
        forget_cached_below: Callable[[PartitionLog, int], None],
    ) -> None:
        self._settings = settings
        self._metadata = metadata
        self._objects = objects
        self._clock = clock
        self._partitions = partitions
        self._topic_configs = topic_configs
        self._in_flight = in_flight
        self._delete_delay_ms = delete_delay_ms
        self._on_unreferenced = on_unreferenced
        self._forget_cached_below = forget_cached_below
        self._first_dirty: dict[int, int] = {}
        # Streams whose records could not be read, with the bound they were read within.
        self._uncleanable: dict[int, int] = {}
        self._loaded = False
        self.stats = CleanerStats()
        self.throttle = IoThrottle(settings.log_cleaner_io_max_bytes_per_second, clock)
        # The setting the throttle was last given: a dynamic change replaces its rate.
        self._rate = settings.log_cleaner_io_max_bytes_per_second
        self.wakeup = asyncio.Event()
        # Held while a partition is cleaned; object compaction takes them too.
        self.locks = StreamRewriteLocks()

    async def run(self) -> None:
        while True:
            self.wakeup.clear()
            cleaned = False
            try:
                cleaned = await self.clean_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next pass tries again
                log_round_failure(log, "log cleaner pass", exc)
            if not cleaned:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.log_cleaner_backoff_ms / 1000):
                        await self.wakeup.wait()

    def _limit(self, configs: dict[str, str]) -> int:
        """What a stored batch's records decompress to at most: they were validated within
        the topic's max.message.bytes when produced. As Kafka's Cleaner, which grows its
        buffers to the larger of that and the broker's message.max.bytes, read here on
        every pass, so a dynamic change applies at once (LogCleaner.reconfigure)."""
        broker = self._settings.message_max_bytes
        topic = stored_int(configs.get("max.message.bytes", broker))
        return max(topic, broker) * self._settings.message_max_decompression_ratio

    async def _load(self) -> None:
        if not self._loaded:
            states = await self._metadata.cleaner_states()
            self._first_dirty = {
                stream: int(state.get(FIRST_DIRTY, 0)) for stream, state in states.items()
            }
            self._loaded = True

    def first_dirty_offset(self, partition: PartitionLog) -> int:
        """Where the partition's dirty section starts: below it, the log is clean."""
        return self._first_dirty.get(partition.stream_id, 0)

    async def clean_once(self) -> bool:
        """Clean the dirtiest due partition; False when none is due."""
        await self._load()
        now_ms = self._clock.wall_ms()
        best: tuple[float, PartitionLog, CleanerConfig, int] | None = None
        for partition in list(self._partitions()):
            configs = self._topic_configs(partition.topic)
            if partition.deleted or not is_compacted(configs, self._settings):
                continue
            failed_within = self._uncleanable.get(partition.stream_id)
            if failed_within is not None and self._limit(configs) <= failed_within:
                continue  # tried again only once the bound grew (a dynamic change)
            if not partition.index.loaded and not partition.index.stats.range_count:
                continue  # nothing uploaded: no need to load it
            ranges = await partition.index.load()
            if partition.deleted or not len(ranges):
                continue
            config = cleaner_config(configs, self._settings)
            end = cleanable_end(ranges, partition.last_stable_offset, now_ms, config)
            first_dirty = max(self._first_dirty.get(partition.stream_id, 0), ranges[0].base_offset)
            if not must_clean(ranges, first_dirty, end, now_ms, config):
                continue
            ratio = dirty_ratio(ranges, first_dirty, end)
            if best is None or ratio > best[0]:
                best = (ratio, partition, config, end)
        if best is None:
            return False
        _, partition, config, end = best
        try:
            await self.clean_partition(partition, config, end)
        except UnreadableBatches as exc:
            # Kafka's cleaner marks such a partition uncleanable and cleans the others:
            # retried, it would be the dirtiest again at every pass, forever.
            limit = self._limit(self._topic_configs(partition.topic))
            self._uncleanable[partition.stream_id] = limit
            log.error("%s: left uncompacted until the broker restarts or its bound grows", exc)
        return True

    async def clean_partition(
        self, partition: PartitionLog, config: CleanerConfig, end: int
    ) -> None:
        """Clean the partition up to `end` (module doc), holding its rewrite lock."""
        async with self.locks.hold(partition.stream_id):
            await self._clean_partition(partition, config, end)

    async def _clean_partition(
        self, partition: PartitionLog, config: CleanerConfig, end: int
    ) -> None:
        started = self._clock.monotonic_ms()
        now_ms = self._clock.wall_ms()
        ranges = await partition.index.load()
        if not len(ranges):
            return
        first_dirty = max(self._first_dirty.get(partition.stream_id, 0), ranges[0].base_offset)
        limit = self._limit(self._topic_configs(partition.topic))
        aborted = AbortedIndex(await aborted_overlapping(self._metadata, partition, 0, end))
        offset_map = OffsetMap(
            max(1, self._settings.log_cleaner_dedupe_buffer_size // MAP_ENTRY_BYTES)
        )
        mapped_end = first_dirty
        for record in list(ranges.from_offset(first_dirty)):
            if record.end_offset > end:
                break
            data = await self._read(record)
            full_at = await _parsing(
                partition, map_batches, data, offset_map, aborted, limit, first_dirty
            )
            self.stats.bytes_read += record.size
            if full_at is not None:
                mapped_end = full_at  # the map is full: the next pass goes on from here
                break
            mapped_end = record.end_offset
        if mapped_end <= first_dirty:
            return
        # Up to the range the map stopped in: its records past `mapped_end` are newer than
        # every mapped one, so they survive as they are, still dirty (as in Kafka).
        section = [r for r in ranges if r.base_offset < mapped_end]
        groups = chunked(section, self._settings.upload_bytes)
        txns = TransactionsSeen()
        for number, group in enumerate(groups):
            last = number == len(groups) - 1
            survivors: list[bytes] = []
            changed = False
            for record in group:
                data = await self._read(record)
                cleaned = await _parsing(
                    partition,
                    clean_batches,
                    data,
                    offset_map,
                    aborted,
                    txns,
                    now_ms,
                    config.delete_retention_ms,
                    limit,
                )
                survivors.extend(cleaned.batches)
                changed = changed or cleaned.changed
            state = {FIRST_DIRTY: mapped_end if last else first_dirty}
            # The last group is swapped anyway: its swap stores the new first dirty offset.
            if (changed or last) and not await self._swap(partition, group, survivors, state):
                return  # the partition changed under us: the next pass starts over
        self._first_dirty[partition.stream_id] = mapped_end
        self.stats.passes += 1
        self.stats.seconds += (self._clock.monotonic_ms() - started) / 1000
        log.info(
            "cleaned %s-%d up to offset %d in %d ms",
            partition.topic,
            partition.partition,
            mapped_end,
            self._clock.monotonic_ms() - started,
        )

    async def _read(self, record: RangeRecord) -> memoryview:
        data = await self._objects.get_range(
            record.object_key, record.position, record.position + record.size
        )
        await self._paced(len(data))
        return data

    async def _paced(self, size: int) -> None:
        """Pace `size` bytes read or written, at the rate set now (a dynamic
        log.cleaner.io.max.bytes.per.second applies from the next read or PUT)."""
        rate = self._settings.log_cleaner_io_max_bytes_per_second
        if rate != self._rate:
            self._rate = self.throttle.bytes_per_second = rate
        await self.throttle.maybe_throttle(size)

    async def _swap(
        self,
        partition: PartitionLog,
        group: list[RangeRecord],
        survivors: list[bytes],
        state: dict[str, int],
    ) -> bool:
        """PUT the survivors as one object and swap it for `group` (module doc, step 3)."""
        base, end = group[0].base_offset, group[-1].end_offset
        created_ms = min(r.created_ms for r in group)  # segments roll as before
        key, size, ranges = "", 0, []
        data: list[bytes | memoryview] = []
        if survivors:
            headers = iter_batch_headers(survivors[0])
            last_headers = iter_batch_headers(survivors[-1])
            first_base = headers[0].base_offset
            last_end = last_headers[0].base_offset + last_headers[0].last_offset_delta + 1
            max_ts = max(h.max_timestamp for b in survivors for h in iter_batch_headers(b))
            data, index = build_object(
                [StreamChunk(partition.stream_id, first_base, last_end, max_ts, survivors)]
            )
            sequence = await self._metadata.next_counter("object_sequence")
            key = object_key(self._settings.node_id, sequence)
            size = parts_size(data)
            ranges = [
                RangeCommit(
                    e.stream_id, e.base_offset, e.end_offset, e.position, e.size, e.max_timestamp
                )
                for e in index
            ]
        swap = RangeSwap(
            stream_id=partition.stream_id,
            epoch=partition.leader_epoch,
            base_offset=base,
            end_offset=end,
            replaced=[(r.base_offset, r.object_key) for r in group],
            key=key,
            size=size,
            created_ms=created_ms,
            ranges=ranges,
            delete_due_ms=self._clock.wall_ms() + self._delete_delay_ms(partition.topic),
            cleaner_state=dict(state),
        )
        try:
            if key:
                self._in_flight.add(key)
                await self._objects.put(key, data)
                self.stats.objects_written += 1
                self.stats.bytes_written += size
                await self._paced(size)
            swapped = await self._metadata.swap_ranges(swap)
        finally:
            if key:
                self._in_flight.discard(key)
        if not swapped:
            if key:
                await self._objects.delete(key)  # never referenced: no reader has it
            return False
        self.stats.swaps += 1
        partition.index.replace(
            base,
            end,
            [
                RangeRecord(
                    r.stream_id, r.base_offset, r.end_offset, key, r.position, r.size,
                    r.max_timestamp, created_ms,
                )
                for r in ranges
                if r.end_offset > partition.log_start_offset
            ],
        )  # fmt: skip
        self._forget_cached_below(partition, end)
        self._on_unreferenced()
        return True
