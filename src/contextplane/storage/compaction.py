"""The log cleaner's rules, as pure functions over stored batches (Kafka's LogCleaner).

* Which part of a partition may be cleaned (`cleanable_end`): below the last stable
  offset, below the active segment (the newest segment, rolled by `segment.bytes` /
  `segment.ms` as retention.py derives segments from uploaded ranges), and below the
  first range with a record newer than `min.compaction.lag.ms`. Data not yet uploaded is
  in no range, so it is never cleaned.
* Whether to clean it (`dirty_ratio`, `must_clean`): the bytes past the cleaner's
  first dirty offset over all cleanable bytes reach `min.cleanable.dirty.ratio`, or the
  oldest dirty range is older than `max.compaction.lag.ms`.
* The offset map (`OffsetMap`, `map_batches`): each key's latest offset in the dirty
  section, over 16-byte digests of the keys, at most `capacity` keys; a larger dirty
  section is cleaned in several passes, each up to the record where the map filled, as
  Kafka does; records of aborted transactions and control batches are not mapped.
* What survives (`clean_batches`), Kafka's rules: a keyed record whose offset is the
  map's latest for its key (or whose key is not in the map); a keyless record never;
  a tombstone until the delete horizon of its batch has passed (the horizon is set to
  now + `delete.retention.ms` when the cleaner first keeps the tombstone, KIP-534; a
  batch that keeps no tombstone gets no horizon); no record of an aborted transaction;
  a transaction marker until its own delete horizon has passed, a horizon set at the
  first cleaning that finds no batch of its transaction left (Kafka's
  CleanedTransactionMetadata: one cleaning after the last batch went). Offsets are kept (gaps
  remain), and a batch keeps its base offset, last offset delta and codec (Kafka's
  MemoryRecords.filterTo rewrites with the original batch's compression type).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from contextplane.java_numbers import LONG_MAX
from contextplane.metadata.records import RangeRecord
from contextplane.protocol.control_records import marker_type
from contextplane.protocol.record_codec import (
    delete_horizon,
    read_keys,
    read_records,
    write_batch,
)
from contextplane.protocol.records import iter_batch_headers
from contextplane.storage.retention import segments
from contextplane.storage.transactions_index import AbortedTxn

# What one map entry costs in memory (a 16-byte digest as a bytes object, an int and a
# dict slot, measured with tracemalloc: ~137 bytes): log.cleaner.dedupe.buffer.size
# divided by this is the map's capacity. Kafka's map costs 24 bytes per entry.
MAP_ENTRY_BYTES = 140


def key_digest(key: bytes) -> bytes:
    return hashlib.blake2b(key, digest_size=16).digest()


@dataclass(slots=True)
class OffsetMap:
    capacity: int
    latest: dict[bytes, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.latest)

    def get(self, key: bytes) -> int:
        return self.latest.get(key_digest(key), -1)


class AbortedIndex:
    """Whether a transactional batch belongs to an aborted transaction."""

    def __init__(self, aborted: Sequence[AbortedTxn]) -> None:
        self._by_producer: dict[int, list[tuple[int, int]]] = {}
        for txn in aborted:
            self._by_producer.setdefault(txn.producer_id, []).append(
                (txn.first_offset, txn.last_offset)
            )
        for spans in self._by_producer.values():
            spans.sort()

    def __call__(self, producer_id: int, offset: int) -> bool:
        spans = self._by_producer.get(producer_id)
        if not spans:
            return False
        index = bisect.bisect_right(spans, (offset, 1 << 62)) - 1
        return index >= 0 and spans[index][0] <= offset <= spans[index][1]


def iter_batches(data: bytes | memoryview) -> Iterator[memoryview]:
    view = memoryview(data)
    position = 0
    for header in iter_batch_headers(view):
        yield view[position : position + header.total_bytes]
        position += header.total_bytes


def map_batches(
    data: bytes | memoryview,
    offset_map: OffsetMap,
    aborted: AbortedIndex,
    limit: int,
    start: int = 0,
) -> int | None:
    """Add the keys of one range's batches from offset `start` on to the map (latest
    offset wins). When the map is full, the offset of the first record left out: the
    pass cleans up to there and the next one maps from there (Kafka's
    buildOffsetMapForSegment stops at the record that does not fit, whatever the key)."""
    latest = offset_map.latest
    capacity = offset_map.capacity
    for batch in iter_batches(data):
        header, keys = read_keys(batch, limit)
        if header.is_control or (
            header.is_transactional and aborted(header.producer_id, header.base_offset)
        ):
            continue
        for offset, key in keys:
            if offset < start:
                continue
            if len(latest) >= capacity:
                return offset
            latest[key_digest(key)] = offset
    return None


@dataclass(slots=True)
class TransactionsSeen:
    """The producers with a batch of their current transaction in this cleaning (Kafka's
    CleanedTransactionMetadata): a marker whose transaction has no batch left, aborted or
    not, may get its delete horizon; while one is there, even a batch the cleaning
    drops, the marker stays as it is."""

    open: set[int] = field(default_factory=set)

    def batch_seen(self, producer_id: int) -> None:
        self.open.add(producer_id)

    def closed(self, producer_id: int) -> bool:
        """The marker of `producer_id`'s transaction: whether a batch of it was seen."""
        if producer_id in self.open:
            self.open.discard(producer_id)
            return True
        return False


@dataclass(slots=True)
class Cleaned:
    batches: list[bytes]
    changed: bool  # anything dropped or rewritten


def clean_batches(
    data: bytes | memoryview,
    offset_map: OffsetMap,
    aborted: AbortedIndex,
    txns: TransactionsSeen,
    now_ms: int,
    delete_retention_ms: int,
    limit: int,
) -> Cleaned:
    """The batches of one range that survive cleaning (see the module doc)."""
    out: list[bytes] = []
    changed = False
    # A batch's base timestamp is 64 bits: a delete.retention.ms near Long.MAX_VALUE (which
    # Kafka accepts) keeps the tombstone until the latest time there is.
    new_horizon = min(now_ms + delete_retention_ms, LONG_MAX)
    for batch in iter_batches(data):
        header, records = read_records(batch, limit)
        horizon = delete_horizon(header)
        past_horizon = horizon is not None and now_ms >= horizon
        if header.is_control:
            had_batches = txns.closed(header.producer_id)
            if marker_type(batch) is None or (not had_batches and past_horizon):
                changed = True
                continue
            if horizon is None and not had_batches:
                # Kafka's containsMarkerForEmptyTxn: the horizon once no batch is left.
                out.append(write_batch(header, records, new_horizon))
                changed = True
            else:
                out.append(bytes(batch))
            continue
        if header.is_transactional:
            txns.batch_seen(header.producer_id)
            if aborted(header.producer_id, header.base_offset):
                changed = True
                continue
        kept = []
        tombstones = False
        for record in records:
            if record.key is None or record.offset < offset_map.get(record.key):
                continue
            if record.value is None:
                if past_horizon:
                    continue
                tombstones = True
            kept.append(record)
        # Kafka's needToSetDeleteHorizon: only a batch that keeps a tombstone and has
        # no horizon yet gets one; other rewrites keep the batch's horizon or lack of one.
        set_horizon = tombstones and horizon is None
        if not kept:
            changed = True
        elif len(kept) == len(records) and not set_horizon:
            out.append(bytes(batch))
        else:
            out.append(write_batch(header, kept, new_horizon if set_horizon else None))
            changed = True
    return Cleaned(out, changed)


# -- which part of a partition, and when -----------------------------------------------


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    """A topic's cleaning configs (Kafka's names and defaults)."""

    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = 2**63 - 1
    delete_retention_ms: int = 86_400_000
    segment_bytes: int = 1024**3
    segment_ms: int = 7 * 24 * 3600 * 1000


def cleanable_end(
    ranges: Sequence[RangeRecord], last_stable_offset: int, now_ms: int, config: CleanerConfig
) -> int:
    """The end of the cleanable part: every range below it may be rewritten."""
    if not ranges:
        return 0
    active = segments(ranges, config.segment_bytes, config.segment_ms)[-1][0]
    limit = min(last_stable_offset, active.base_offset)
    end = ranges[0].base_offset  # nothing cleanable
    for record in ranges:
        if (
            record.end_offset > limit
            or record.max_timestamp > now_ms - config.min_compaction_lag_ms
        ):
            break
        end = record.end_offset
    return end


def dirty_ratio(ranges: Sequence[RangeRecord], first_dirty: int, end: int) -> float:
    total = dirty = 0
    for record in ranges:
        if record.end_offset > end:
            break
        total += record.size
        if record.end_offset > first_dirty:  # a range a full map cut holds dirty records
            dirty += record.size
    return dirty / total if total else 0.0


def must_clean(
    ranges: Sequence[RangeRecord], first_dirty: int, end: int, now_ms: int, config: CleanerConfig
) -> bool:
    """Whether the dirty part is due: by ratio, or forced by `max.compaction.lag.ms`."""
    dirty = [r for r in ranges if r.end_offset > first_dirty and r.end_offset <= end]
    if not dirty:
        return False
    if dirty_ratio(ranges, first_dirty, end) >= config.min_cleanable_dirty_ratio:
        return True
    return dirty[0].max_timestamp <= now_ms - config.max_compaction_lag_ms


def chunked(ranges: Sequence[RangeRecord], chunk_bytes: int) -> list[list[RangeRecord]]:
    """Consecutive ranges in groups of at most `chunk_bytes` (at least one range each):
    each group is rewritten into one object and swapped in one transaction."""
    groups: list[list[RangeRecord]] = []
    size = 0
    for record in ranges:
        if groups and size + record.size <= chunk_bytes:
            groups[-1].append(record)
            size += record.size
        else:
            groups.append([record])
            size = record.size
    return groups
