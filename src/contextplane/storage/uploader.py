"""The uploader: durable, not-yet-uploaded batches → one object at a time → metadata →
WAL trim.

Each object takes the oldest un-uploaded batches in WAL order, across partitions, until
its data reaches `upload.bytes`: the batch that crosses it is the object's last (as
Kafka's `segment.bytes` rolls on the next append), so its data is over by at most one
batch (its index comes on top), and after an outage the backlog goes up as a series of
bounded objects and the WAL can be trimmed from its head as they land.
Batches whose bytes left memory are read back from the WAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

from contextplane import limits
from contextplane.clock import Clock
from contextplane.cluster.leadership import Leadership
from contextplane.metadata.records import CommitOutcome, ObjectCommit, RangeCommit, RangeRecord
from contextplane.metadata.store import MetadataStore, MetadataStoreUnavailable
from contextplane.settings import Settings
from contextplane.storage.log_cache import LogCache
from contextplane.storage.object_format import (
    IndexEntry,
    StreamChunk,
    build_object,
    object_key,
    parts_size,
)
from contextplane.storage.objectstore import ObjectStore
from contextplane.storage.orphan_sweep import InFlightKeys
from contextplane.storage.partition import CachedBatch, PartitionLog, state_delta
from contextplane.storage.wal_dirty import DirtyMarks

log = logging.getLogger(__name__)

# Back-off between failed uploads grows to this (an outage is retried, not hammered).
_RETRY_BACKOFF_MAX_S = 5.0
# A clean stop's drain: retries at most a second apart, and gives up once the metadata
# store has stayed out of reach this long (a killed backend or a restart is over within
# it; an outage is not, and a stop should not wait for one).
_DRAIN_BACKOFF_MAX_S = 1.0
_DRAIN_STORE_OUTAGE_S = 10.0


def select_for_upload(
    partitions: Iterable[PartitionLog], upload_bytes: int
) -> list[tuple[PartitionLog, list[CachedBatch]]]:
    """The oldest durable un-uploaded batches (by WAL position) up to and including the
    one that brings the object's data to `upload_bytes`; each partition's share is a
    prefix of its pending batches.

    Cutting after the crossing batch rather than before it fills objects to `upload_bytes`
    whatever the batch size (cutting before left ~1 MB batches' objects at 7.7 of 8 MiB,
    and a PUT more per GiB); the data is over by at most that one batch. The index comes
    on top, as Kafka's `segment.bytes` counts the log and not its index files: counted
    in, its bound (55 bytes a stream) took ~0.5 MiB of each object's data at 10,000
    partitions, and pending bytes (data) reached `upload.bytes` before an object did."""

    def keyed(index: int, partition: PartitionLog) -> Iterator[tuple[int, int, CachedBatch]]:
        for batch in partition.pending_upload():
            yield batch.wal_position, index, batch

    ordered = list(partitions)
    chosen: dict[int, list[CachedBatch]] = {}
    total = 0
    for _, index, batch in heapq.merge(*(keyed(i, p) for i, p in enumerate(ordered))):
        if total >= upload_bytes:
            break  # the last batch taken reached the bound
        chosen.setdefault(index, []).append(batch)
        total += batch.size
    return [(ordered[i], batches) for i, batches in sorted(chosen.items())]


@dataclass(slots=True)
class _Upload:
    """An object put in the object store and the commit that publishes it."""

    chunks: list[tuple[PartitionLog, list[CachedBatch]]]
    index: list[IndexEntry]
    key: str
    object_size: int
    commit: ObjectCommit
    settled: dict[int, Callable[[], None]]  # per stream: the producer state written
    # Streams the commit was to clear, dropped from it after a try whose outcome is
    # unknown (wal_dirty.py): cleared after the retry if still fully uploaded.
    unclear: frozenset[int] = frozenset()


def _retrieve(upload: asyncio.Future[int]) -> None:
    """An upload whose loop was cancelled ends unobserved: its failure is logged here
    (the WAL keeps the data), not left as a never-retrieved exception."""
    if not upload.cancelled() and upload.exception() is not None:
        log.warning("object upload failed during shutdown: %s", upload.exception())


async def _durable_to(partition: PartitionLog, end_offset: int) -> None:
    """Until `partition` is durable to `end_offset`, or has no such offset any more (a
    failed write's batches were taken back, which notifies)."""
    while partition.high_watermark < min(end_offset, partition.next_offset):
        if partition.deleted:
            return
        await partition.waiter()


# How close to its age bound a pending byte counts as due (see _until_due).
_AGE_SLACK_S = 0.001


class Uploader:
    def __init__(
        self,
        settings: Settings,
        metadata: MetadataStore,
        objects: ObjectStore,
        clock: Clock,
        log_cache: LogCache,
        leadership: Leadership,
        partitions: Callable[[], Iterable[PartitionLog]],
        delete_orphans: Callable[[list[str]], Awaitable[None]],
        in_flight: InFlightKeys,
        before_upload: Callable[[], None],
        after_upload: Callable[[], None],
        dirty: DirtyMarks | None = None,
    ) -> None:
        """`partitions` lists those with un-uploaded batches; `before_upload` runs before
        each attempt (the metadata reserve comes back), `after_upload` after each object
        (WAL trim)."""
        self._settings = settings
        self._metadata = metadata
        self._objects = objects
        self._clock = clock
        self._log_cache = log_cache
        self._leadership = leadership
        self._partitions = partitions
        self._delete_orphans = delete_orphans
        self._in_flight = in_flight
        self._before_upload = before_upload
        self._after_upload = after_upload
        self._dirty = dirty
        self.wakeup = asyncio.Event()
        self.failures = 0  # in a row: the back-off's exponent
        # Since start, for /metrics: objects committed, their bytes, attempts that failed.
        self.objects_committed = 0
        self.bytes_committed = 0
        self.failed_attempts = 0
        # One upload at a time: two would pick the same pending batches.
        self._uploading = asyncio.Lock()
        self._upload: asyncio.Future[int] | None = None  # the loop's, maybe outliving it
        self._unsettled: _Upload | None = None  # put, its commit's outcome unknown
        # Event-loop time the oldest pending byte counts its age from (None: none pending).
        self._pending_since: float | None = None

    def abandon(self) -> None:
        """Cancel an upload that outlived the loop and the drain's deadline; the WAL
        keeps its batches."""
        if self._upload is not None:
            self._upload.cancel()

    async def run(self) -> None:
        """Upload once an object's worth is pending or the oldest pending byte is
        `upload.interval.ms` old; back to back while a backlog remains."""
        uploaded = 0
        took_nothing = False
        while True:
            # Back to back while a full object's worth is waiting (catching up after an
            # outage); otherwise once the size or the age bound is reached.
            if not uploaded or not self._full_object_pending():
                await self._until_due(pause_first=took_nothing)
            self.wakeup.clear()
            self._before_upload()
            uploaded = 0
            took_nothing = False
            # The upload is a task of its own, so that cancelling this loop (the engine's
            # close) cannot abandon it between its metadata commit, which the store's
            # worker thread finishes anyway, and marking its batches uploaded: the final
            # drain would upload them again and collide with the committed ranges. It
            # holds the upload lock to the end, so the drain waits for it.
            self._upload = upload = asyncio.ensure_future(self.upload_once())
            try:
                uploaded = await asyncio.shield(upload)
            except asyncio.CancelledError:
                upload.add_done_callback(_retrieve)
                raise
            except Exception as exc:  # noqa: BLE001 - keep the WAL; retry after a back-off
                self.failures += 1
                self.failed_attempts += 1
                backoff = min(self._check_s * 2**self.failures, _RETRY_BACKOFF_MAX_S)
                log.warning(
                    "object upload failed (%d in a row; %d bytes wait in the WAL): %s",
                    self.failures,
                    self._log_cache.pending_bytes,
                    exc,
                )
                await asyncio.sleep(backoff)
            else:
                self.failures = 0
                took_nothing = not uploaded

    @property
    def _check_s(self) -> float:
        """How often pending bytes are looked at, and the base of retry back-offs and a
        flush's waits (no more than the age bound itself)."""
        return min(self._settings.upload_interval_ms, limits.UPLOAD_CHECK_MS) / 1000

    @property
    def _object_bytes(self) -> int:
        """An object's worth: `upload.bytes`, or less if the memory budget's share for it
        is smaller (pending bytes live in the log cache, and an upload reserves twice its
        object's size of the in-flight share: memory.py). An object exceeds it by at most
        its last batch (select_for_upload)."""
        share = self._log_cache.budget.in_flight_limit // 2
        return min(self._settings.upload_bytes, share)

    def _full_object_pending(self) -> bool:
        return self._log_cache.pending_bytes >= self._object_bytes

    async def _until_due(self, pause_first: bool = False) -> None:
        """Wait until an object's worth is pending (the appender wakes us at
        `upload.bytes`) or the oldest pending byte has waited `upload.interval.ms`.

        A byte's age counts from when a check first found it pending (checks are at most
        `limits.UPLOAD_CHECK_MS` apart, and read one counter: idle partitions cost
        nothing), or from the last object's selection for what it left behind."""
        loop = asyncio.get_running_loop()
        interval_s, check_s = self._settings.upload_interval_ms / 1000, self._check_s
        if pause_first:
            # The last try took nothing although bytes were due (none durable yet, or no
            # memory to build the object): not again before a check or a wake-up, or the
            # loop would spin without yielding time.
            await self._wake_or(check_s)
        while True:
            # The metadata reserve comes back as soon as there is room, idle or not.
            self._before_upload()
            now = loop.time()
            if not self._log_cache.pending_bytes:
                self._pending_since = None
            elif self._pending_since is None:
                self._pending_since = now
            if self._full_object_pending():
                await self._writes_in_flight(check_s)
                return
            if self._pending_since is not None:
                age_s = now - self._pending_since
                # Within a millisecond counts as due: a timer set for the rest of the age
                # can fire a float's rounding short of it, and waiting that remainder
                # again would not move a virtual clock (the simulation's) at all.
                if age_s >= interval_s - _AGE_SLACK_S:
                    return
                wait_s = min(check_s, interval_s - age_s)
            else:
                wait_s = check_s
            await self._wake_or(wait_s)

    async def _wake_or(self, seconds: float) -> None:
        """Until the appender wakes us or `seconds` pass; the wake-up is then cleared: it
        is looked at again, not taken as due (one set during the last upload may be
        stale: that upload took the bytes that set it)."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation
        # that arrives as the wake-up fires, and the loop would outlive the engine's
        # close (or a simulated crash) forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wakeup.wait()
        self.wakeup.clear()

    async def _writes_in_flight(self, bound_s: float) -> None:
        """Wait (at most `bound_s`) for the WAL writes in flight: the append that reached
        the size wakes us before it is durable, and an object takes durable batches
        only, so without this it would go short of full. Each partition is waited for up
        to its last offset now, not its first write to land: one append's batches may
        take several WAL writes."""
        writing = [
            _durable_to(p, p.next_offset)
            for p in self._log_cache.pending.values()
            if p.high_watermark < p.next_offset
        ]
        if writing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(bound_s):
                    await asyncio.gather(*writing)

    async def drain(self) -> None:
        """Upload until nothing durable is pending (a clean stop); retries failures with
        a back-off, and gives up once the metadata store has been out of reach for
        `_DRAIN_STORE_OUTAGE_S`: nothing can be published until it returns, and the WAL
        keeps the rest for the next start (each failed try leaves an orphan object)."""
        failures = 0
        unreachable_since: float | None = None
        while True:
            try:
                if not await self.upload_once():
                    return
                failures, unreachable_since = 0, None
            except Exception as exc:  # noqa: BLE001 - the WAL keeps the data
                failures += 1
                if isinstance(exc, MetadataStoreUnavailable):
                    now = asyncio.get_running_loop().time()
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since >= _DRAIN_STORE_OUTAGE_S:
                        log.warning(
                            "final upload given up: the metadata store is out of reach"
                            " (%s); %d bytes stay in the WAL for the next start",
                            exc,
                            self._log_cache.pending_bytes,
                        )
                        return
                log.warning("final upload failed, retrying: %s", exc)
                await asyncio.sleep(min(self._check_s * 2**failures, _DRAIN_BACKOFF_MAX_S))

    async def upload_once(self) -> int:
        """Upload one object of the oldest pending batches; returns its size (0: none)."""
        async with self._uploading:
            return await self._upload_once()

    async def flush(self, partition: PartitionLog) -> None:
        """Upload every batch of one partition (a handover's flush: RFC 0004 §6), waiting
        for its WAL writes in flight; the caller has stopped its appends. Objects of this
        partition alone, so the flush moves only its tail; an upload failure is raised."""
        wait_s = self._check_s
        while not partition.deleted and partition.object_end_offset < partition.next_offset:
            if partition.high_watermark < partition.next_offset:
                # Not durable yet (or taken back after a failed write, which notifies).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await partition.waiter()
                continue
            async with self._uploading:
                uploaded = await self._upload_once(partition)
            if not uploaded:
                await asyncio.sleep(wait_s)  # nothing it could take yet: no busy loop

    async def _upload_once(self, only: PartitionLog | None = None) -> int:
        # A commit whose outcome is unknown goes first, as it was: the same key, so that
        # the store recognises it if it did commit (commit_object is idempotent by key).
        retry = self._unsettled is not None
        upload = self._unsettled or await self._put_object(only)
        if upload is None:
            return 0
        # Until its outcome is known (a failed call's reply may be lost after the commit)
        # the key stays in flight, out of the orphan sweep's reach.
        self._unsettled = upload
        if retry:
            log.info("object %s: retrying its commit", upload.key)
        try:
            outcome = await self._metadata.commit_object(upload.commit)
        except BaseException:
            self._commit_unknown(upload)
            raise
        self._unsettled = None
        self.objects_committed += 1
        self.bytes_committed += upload.object_size
        self._in_flight.discard(upload.key)
        return await self._settle(upload, outcome)

    def _commit_unknown(self, upload: _Upload) -> None:
        """The commit failed and may have been committed all the same: the marks it was
        to clear count as cleared, and its retry clears none (a mark written or owed
        meanwhile must outlive it)."""
        clear = upload.commit.clear_dirty
        if self._dirty is None or not clear:
            return
        upload.commit.clear_dirty = frozenset()
        upload.unclear |= clear
        self._dirty.commit_unknown(p for p, _ in upload.chunks if p.stream_id in clear)

    async def _put_object(self, only: PartitionLog | None = None) -> _Upload | None:
        """Put one object of the oldest pending batches (of `only`, if given); None when
        nothing is pending."""
        settings, log_cache = self._settings, self._log_cache
        partitions = self._partitions() if only is None else [only]
        chunks = select_for_upload(partitions, self._object_bytes)
        if not chunks:
            return None
        if only is None:
            # What this object leaves pending counts its age from now: it came after the
            # batches taken, or was not durable yet (a WAL write in flight).
            self._pending_since = asyncio.get_running_loop().time()
        size = sum(b.size for _, batches in chunks for b in batches)
        key = ""
        try:
            # The batches read back and the object built from them.
            async with log_cache.budget.reserve(2 * size):
                stream_chunks = []
                for partition, batches in chunks:
                    data = await log_cache.batch_bytes(batches, reserved=True)
                    stream_chunks.append(
                        StreamChunk(
                            partition.stream_id,
                            batches[0].base_offset,
                            batches[-1].end_offset,
                            max(b.max_timestamp for b in batches),
                            data,
                        )
                    )
                data, index = build_object(stream_chunks)
                del stream_chunks
                # A durable counter: a key is never reused, even for an upload that failed.
                sequence = await self._metadata.next_counter("object_sequence")
                key = object_key(settings.node_id, sequence)
                # The orphan sweep leaves the key alone from before its PUT until its
                # commit's outcome is known (orphan_sweep.py).
                self._in_flight.add(key)
                await self._objects.put(key, data)
                object_size = parts_size(data)
                del data
        except BaseException:
            self._in_flight.discard(key)
            raise
        return self._prepare_commit(chunks, index, key, object_size)

    def _prepare_commit(
        self,
        chunks: list[tuple[PartitionLog, list[CachedBatch]]],
        index: list[IndexEntry],
        key: str,
        object_size: int,
    ) -> _Upload:
        created_ms = self._clock.wall_ms()
        # Producer state as of each range's end: a later batch may not be durable yet
        # (it would be "deduplicated" at an offset lost in a crash); replay adds those.
        deltas = {
            p.stream_id: state_delta(p, e.end_offset)
            for (p, _), e in zip(chunks, index, strict=True)
        }
        commit = ObjectCommit(
            key=key,
            size=object_size,
            created_ms=created_ms,
            ranges=[
                RangeCommit(
                    e.stream_id, e.base_offset, e.end_offset, e.position, e.size, e.max_timestamp
                )
                for e in index
            ],
            epochs={p.stream_id: p.leader_epoch for p, _ in chunks},
            producer_states={stream_id: delta for stream_id, (delta, _) in deltas.items()},
            clear_dirty=frozenset(
                p.stream_id
                for (p, _), e in zip(chunks, index, strict=True)
                if self._dirty is not None and self._dirty.clearing(p, e.end_offset)
            ),
        )
        settled = {stream_id: settle for stream_id, (_, settle) in deltas.items()}
        return _Upload(chunks, index, key, object_size, commit, settled)

    async def _settle(self, upload: _Upload, outcome: CommitOutcome) -> int:
        """What the committed object changes here: ranges, uploaded batches, leadership."""
        log_cache = self._log_cache
        chunks, index, key = upload.chunks, upload.index, upload.key
        created_ms = upload.commit.created_ms
        # Fenced partitions are released here: they stop acknowledging, and their ranges
        # stay out of the index (the new leader uploads that data).
        self._leadership.check_commit(outcome)
        if self._dirty is not None:
            for partition, _ in chunks:
                if partition.stream_id in upload.commit.clear_dirty:
                    self._dirty.cleared(
                        partition, outcome.replayed or partition.stream_id in outcome.committed
                    )
        if not outcome.object_published:
            await self._delete_orphans([key])
        for (partition, batches), entry in zip(chunks, index, strict=True):
            if partition.deleted or partition.stream_id not in outcome.committed:
                continue  # its bytes were forgotten with the topic or the leadership
            partition.object_end_offset = entry.end_offset
            upload.settled[partition.stream_id]()  # the touches written are settled
            partition.index.append(
                RangeRecord(
                    entry.stream_id,
                    entry.base_offset,
                    entry.end_offset,
                    key,
                    entry.position,
                    entry.size,
                    entry.max_timestamp,
                    created_ms,
                )
            )
            log_cache.mark_uploaded(partition, batches)
        if self._dirty is not None and upload.unclear:
            self._dirty.clear_uploaded(
                p for p, _ in chunks if p.stream_id in upload.unclear & outcome.committed
            )
        self._after_upload()
        return upload.object_size
