"""Read-ahead for catch-up reads, sized to each stream's consumption rate (RFC 0003, 2d).

One `StreamReadahead` per stream being read from objects (not per connection: consumers
of one partition share it). After each read it knows the next offset it expects and a
window: the bytes the stream's readers consume in the time a GET takes to come back,
`rate × horizon`, where the rate is an exponentially weighted average of the bytes read
per second over about 2 s and the horizon is 2 × the p99 GET latency the object store
observed, clamped to [`object.read.ahead.min.bytes`, `object.read.ahead.max.bytes`]. A
read at any other offset than where the last one left off is a seek: the rate and the
window start over. (AutoMQ's `StreamReader.Readahead` grows by 512 KiB per miss up to
32 MiB; here the window follows the rate instead of counting misses.)

`Readahead` holds them, bounded by the number of live partitions, each dropped after
60 s unread. After a fetch has started its own GETs, the ranges that bring every stream
read by it up to its window are read ahead in one batch through `BlockCache.prefetch`,
so one span serves many partitions at once (widened to the rest of its object like a
fetch's, block_cache.py: the other partitions' ranges in it are not left to another GET).
A stream reads ahead only while the block cache has room for its window plus an eighth
of the share (spans nobody read yet are never pushed out by more read-ahead), and the
GETs take slots only while fewer than half are used. Nothing awaits read-ahead: a fetch
awaits only its own spans (joining an in-flight read-ahead GET for one of them), and a
failed read-ahead GET is dropped.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

from contextplane import limits
from contextplane.clock import Clock
from contextplane.metadata.records import RangeRecord
from contextplane.storage.block_cache import BlockCache
from contextplane.storage.objectstore import GetLatency
from contextplane.storage.partition import PartitionLog

# The rate averages over about this long (the EWMA's time constant).
RATE_TAU_MS = 2_000
# A stream unread for this long is forgotten.
IDLE_MS = 60_000


class StreamReadahead:
    """What one stream's readers read last, their rate, and how far ahead is read."""

    __slots__ = (
        "ahead_bytes",
        "ahead_end",
        "from_offset",
        "next_offset",
        "partition",
        "rate_sum",
        "read_ms",
        "window",
    )

    def __init__(self, partition: PartitionLog, now_ms: int, window: int) -> None:
        self.partition = partition
        self.from_offset = -1  # where the last read started
        self.next_offset = -1  # where it left off (the end of its last range)
        self.rate_sum = 0.0  # bytes read, each decayed by exp(-age / RATE_TAU_MS)
        self.read_ms = now_ms
        self.window = window
        self.ahead_end = -1  # ranges below this offset are cached or being read
        self.ahead_bytes = 0  # of those, the bytes past `next_offset`

    @property
    def rate(self) -> float:
        """Bytes read per second, averaged over about RATE_TAU_MS."""
        return self.rate_sum * 1000 / RATE_TAU_MS

    def read(self, offset: int, taken: Sequence[RangeRecord], now_ms: int) -> bool:
        """A read at `offset` took the ranges `taken`; returns whether it was a seek."""
        seek = self.next_offset >= 0 and not self.from_offset <= offset <= self.next_offset
        size = sum(record.size for record in taken)
        if seek:
            self.rate_sum = 0.0
            self.ahead_end, self.ahead_bytes = -1, 0
        else:
            decay = math.exp(-max(now_ms - self.read_ms, 0) / RATE_TAU_MS)
            self.rate_sum *= decay
            # The bytes read that had been read ahead are behind the reader now.
            self.ahead_bytes -= sum(r.size for r in taken if r.end_offset <= self.ahead_end)
        self.rate_sum += size
        self.read_ms = now_ms
        self.from_offset = offset
        self.next_offset = taken[-1].end_offset
        if self.next_offset >= self.ahead_end:
            self.ahead_end, self.ahead_bytes = self.next_offset, 0
        self.ahead_bytes = max(self.ahead_bytes, 0)
        return seek

    def resize(self, horizon_ms: int, min_bytes: int, max_bytes: int) -> None:
        self.window = min(max(int(self.rate * horizon_ms / 1000), min_bytes), max_bytes)

    def wanted(self) -> list[RangeRecord]:
        """The ranges past what is read ahead that bring it up to the window."""
        want = self.window - self.ahead_bytes
        result: list[RangeRecord] = []
        ranges = self.partition.index.loaded_ranges  # None: dropped idle, nothing to read
        if want <= 0 or self.partition.deleted or ranges is None:
            return result
        for record in ranges.from_offset(self.ahead_end):
            if record.base_offset < self.ahead_end:
                continue  # the range holding ahead_end was read already
            result.append(record)
            want -= record.size
            if want <= 0:
                break
        return result

    def advance(self, wanted: Sequence[RangeRecord], covered: set[int]) -> None:
        """The prefix of `wanted` in `covered` is cached or being read."""
        for record in wanted:
            if id(record) not in covered:
                return
            self.ahead_end = record.end_offset
            self.ahead_bytes += record.size


class Readahead:
    """The read-ahead of every stream read from objects (see the module doc)."""

    def __init__(
        self,
        blocks: BlockCache,
        latency: GetLatency,
        clock: Clock,
        live_partitions: Callable[[], int],
        min_bytes: int = limits.OBJECT_READ_AHEAD_MIN_BYTES,
        max_bytes: int = limits.OBJECT_READ_AHEAD_MAX_BYTES,
        enabled: bool = True,
    ) -> None:
        self._blocks = blocks
        self._latency = latency
        self._clock = clock
        self._live_partitions = live_partitions
        self.min_bytes = min_bytes
        self.max_bytes = max(min_bytes, max_bytes)
        self.enabled = enabled
        self.streams: OrderedDict[int, StreamReadahead] = OrderedDict()  # least recent first
        self._due: dict[int, StreamReadahead] = {}  # read since the last run
        self._scheduled = False

    def read(self, partition: PartitionLog, offset: int, taken: Sequence[RangeRecord]) -> None:
        """A fetch reads `taken` (from objects) for `partition` from `offset`."""
        if not self.enabled or not taken:
            return
        now_ms = self._clock.monotonic_ms()
        self._forget_idle(now_ms)
        stream = self.streams.pop(partition.stream_id, None)
        if stream is None or stream.partition is not partition:
            if len(self.streams) >= max(self._live_partitions(), 1):
                self.streams.popitem(last=False)
            stream = StreamReadahead(partition, now_ms, self.min_bytes)
        self.streams[partition.stream_id] = stream
        if stream.read(offset, taken, now_ms):
            stream.window = self.min_bytes
        else:
            stream.resize(2 * self._latency.p99_ms(), self.min_bytes, self.max_bytes)
        self._due[partition.stream_id] = stream

    def schedule(self) -> None:
        """Read ahead once the caller has started its own GETs (it is about to await)."""
        if self._due and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.run)

    def run(self) -> None:
        """Read ahead for the streams read since the last run, as room and slots allow."""
        self._scheduled = False
        due, self._due = self._due, {}
        room = self._blocks.ahead_room() - self._blocks.share_bytes // 8
        batch: list[tuple[StreamReadahead, list[RangeRecord]]] = []
        for stream in due.values():
            if room < stream.window:
                continue  # no room: this stream reads ahead at its next read
            wanted = stream.wanted()
            if wanted:
                batch.append((stream, wanted))
                room -= sum(record.size for record in wanted)
        if not batch:
            return
        # Oldest objects first, as a fetch's plan reads them.
        records = sorted(
            (record for _, wanted in batch for record in wanted),
            key=lambda r: (r.created_ms, r.object_key, r.position),
        )
        covered = self._blocks.prefetch(records)
        for stream, wanted in batch:
            stream.advance(wanted, covered)

    def _forget_idle(self, now_ms: int) -> None:
        while self.streams:
            stream = next(iter(self.streams.values()))
            if now_ms - stream.read_ms < IDLE_MS:
                return
            self.streams.popitem(last=False)
