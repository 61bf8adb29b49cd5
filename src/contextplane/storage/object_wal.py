"""The write-ahead log in object storage (`wal.url`, RFC 0004 §4): each group commit is
one object PUT, and an append is durable once the PUT holding it (and every earlier
one) has returned.

Appends queue in memory; on the loop's next turn one PUT takes what is queued (at most
`max_object_bytes`, at least one entry), framed exactly as the file WAL frames entries
(`file_wal.entry_head`: the batches themselves are parts of the PUT, not copied), while
later appends gather for the next. At most `max_in_flight` PUTs run at once; futures
resolve in append order, so an object whose PUT finished waits for every earlier one.

Objects are named `<node_id>/<incarnation>/<sequence>-<start>-<end>-<floor>`
(zero-padded: a listing sorts them in write order), start and end being the WAL
positions of their first byte and past their last, and floor the log's start (the
oldest object not trimmed) when the PUT was issued: everything below it is in uploaded
objects. Positions are the file WAL's: byte positions across objects.

A failed PUT (an error, or no answer within the store's request bound) fails every entry
not yet durable, as the file WAL does: the owner takes back their offsets (the producers
get KAFKA_STORAGE_ERROR and retry) and the next append writes again from the durable end.
A failed PUT may still have landed, as may PUTs in flight beside it: those objects
are *superseded* by whatever is written next from the same position, and deleted.

Recovery lists this node's objects, oldest incarnation first: objects starting below the
highest floor named are dropped (trimmed, or superseded below it), then an object is
dropped when a later one starts at or before it (it was superseded), and the log is the
contiguous run from the oldest object kept (an object past a hole was in flight beside a
PUT that never landed: never acknowledged). A new incarnation writes on from that run's
end. Trimmed objects are deleted only once a durable object names a floor at or past
them, so whatever a failed or partial deletion leaves lies below a recorded floor; they
and superseded objects then go in bulk (S3 DeleteObjects: one request per 1,000 keys),
one request at most every `DELETE_INTERVAL_NS`.

A clean stop that uploaded everything (`empty`) PUTs an empty object at the durable end
naming it as floor (start = end = floor), then deletes every other object in bulk: once
that marker is durable everything else lies below its floor or starts at or past its
start (superseded), so whatever a failed, partial or interrupted deletion leaves is
dropped by the next recovery. The next start, or another broker's takeover, reads
nothing, and the next incarnation writes on from the same end.

Memory: the entries held until their PUT returns are counted in the memory budget
(`MemoryBudget.wal_bytes`, pinned), so produce admission refuses before they outgrow it.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from contextplane.clock import Clock, elapsed_ns
from contextplane.latency_histogram import LatencyHistogram
from contextplane.protocol.records import parse_header
from contextplane.settings import Settings
from contextplane.storage.file_wal import (
    BATCH_OFFSET_IN_ENTRY,
    FileWal,
    entry_head,
    scan_entries,
)
from contextplane.storage.memory import MemoryBudget
from contextplane.storage.object_wal_names import (
    WalObject,
    parse_key,
    plan_recovery,
    wal_object_key,
)
from contextplane.storage.objectstore import ObjectStore, open_object_store
from contextplane.storage.paced_deletes import KEYS_MAX, delete_paced
from contextplane.storage.wal import WalEntry, WalWriteError, WriteAheadLog

log = logging.getLogger(__name__)

# Deletions gather for this long into one round (then paced, `paced_deletes.py`):
# nothing waits for them, and a deletion beside the PUTs slowed them (SeaweedFS:
# produce p50 ~2.5x with a deletion after every upload).
DELETE_INTERVAL_NS = 5 * 1_000_000_000
_LIST_PAGE_KEYS = 1_000
# A read-back GET spans several batches of one object when it reads at most this many
# bytes no batch asked for.
_READ_GAP_BYTES = 64 * 1024


def open_wal(
    settings: Settings, budget: MemoryBudget, clock: Clock, incarnation: int | None
) -> WriteAheadLog:
    """The WAL `wal.url` names: segment files under the data directory by default."""
    if not settings.wal_url:
        return FileWal(
            settings.data_dir / "wal",
            segment_bytes=settings.wal_segment_bytes,
            fsync=settings.wal_fsync,
        )
    return ObjectWal(
        open_object_store(settings.wal_url, settings.object_store_request_timeout_ms, clock),
        settings.node_id,
        incarnation,
        settings.wal_object_max_in_flight,
        settings.wal_object_max_bytes,
        budget,
    )


def refuse_local_wal_backlog(settings: Settings, uploaded_end: Callable[[int], int | None]) -> None:
    """With `wal.url` set, raise if the file WAL under the data directory holds entries
    past their partition's uploaded end (`uploaded_end(stream_id)`, None: not led here):
    the object WAL does not read them, so a start must not go on without them."""
    directory = settings.data_dir / "wal"
    if not settings.wal_url or not any(directory.glob("*.wal")):
        return
    local = FileWal(directory, segment_bytes=settings.wal_segment_bytes)
    try:
        left = 0
        for entry in local.recover():
            end = uploaded_end(entry.stream_id)
            header = parse_header(entry.batch)
            if end is not None and entry.base_offset + header.last_offset_delta + 1 > end:
                left += 1
    finally:
        local.close()
    if left:
        raise WalWriteError(
            f"wal.url is set, but the write-ahead log under {directory} holds {left} entries"
            " not yet in objects: start once without wal.url and stop cleanly (the stop"
            " uploads them), then set it"
        )


@dataclass(slots=True, eq=False)
class _Put:
    obj: WalObject
    parts: list[bytes]
    waiters: list[asyncio.Future[None]]
    generation: int
    returned: bool = False
    done: bool = False


@dataclass(slots=True)
class _Pending:
    parts: list[bytes] = field(default_factory=list)  # head, batch, head, batch, ...
    sizes: list[int] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    bytes: int = 0


class ObjectWal:
    """`WriteAheadLog` (wal.py) in an object store under `<node_id>/`."""

    def __init__(
        self,
        store: ObjectStore,
        node_id: int,
        incarnation: int | None = None,
        max_in_flight: int = 4,
        max_object_bytes: int = 8 * 1024 * 1024,
        budget: MemoryBudget | None = None,
        on_failure: Callable[[int, BaseException], None] | None = None,
        delete_interval_ns: int = DELETE_INTERVAL_NS,
    ) -> None:
        """`incarnation` names this process's objects (the registry's, which grows);
        None: one past the newest found at recovery."""
        self._store = store
        self._node_id = node_id
        self._incarnation = incarnation
        self._max_in_flight = max_in_flight
        self._max_object_bytes = max_object_bytes
        self._budget = budget
        self.on_failure = on_failure
        self._recovered = False
        self._sequence = 0
        self._generation = 0  # bumped by each failure: PUTs of an older one are void
        self._pending = _Pending()
        self._in_flight: deque[_Put] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self._written_end = 0  # past the last entry handed to a PUT
        self._durable_end = 0
        self._objects: list[WalObject] = []  # durable and kept, in position order
        self.listed: list[WalObject] = []  # what recovery listed
        self._starts: list[int] = []  # their start positions
        self._pins: dict[str, int] = {}  # key -> reads holding it
        self._trimmed: list[WalObject] = []  # out of the log, not yet deleted
        self._superseded: list[str] = []  # to delete
        self._floor = 0  # the highest floor a durable object names
        self._deleting = False
        self._delete_task: asyncio.Task[None] | None = None
        self._emptying = False  # a clean stop deletes: no background deletion beside it
        self._delete_interval_ns = delete_interval_ns
        self._deleted_at_ns = -delete_interval_ns
        self.puts = 0
        self.failures = 0
        self.last_error: BaseException | None = None
        # Each PUT's duration, for /metrics and the bench.
        self.put_latency = LatencyHistogram()

    # -- recovery ----------------------------------------------------------------------

    async def recover_pages(self, max_bytes: int | None = None) -> AsyncIterator[list[WalEntry]]:
        """The log's entries, one object's at a time (GETs run ahead, at most
        `max_in_flight`); then the log is open for appends. With `max_bytes`, a log
        longer than that raises before anything is read (another broker's recovery of
        this WAL reads at most its backlog bound); `listed` holds every object listed."""
        listed: list[WalObject] = []
        async for page in self._store.list_pages(f"{self._node_id}/", _LIST_PAGE_KEYS):
            for info in page:
                obj = parse_key(info.key)
                if obj is None:
                    log.warning("object WAL: ignoring %s (not a WAL object's name)", info.key)
                else:
                    listed.append(obj)
        kept, dropped = plan_recovery(listed)
        self.listed = listed
        if max_bytes is not None and kept and kept[-1].end - kept[0].start > max_bytes:
            raise WalWriteError(
                f"object WAL of node {self._node_id}: {kept[-1].end - kept[0].start} bytes"
                f" past its last upload, more than the {max_bytes} a recovery reads"
            )
        if self._incarnation is None:
            self._incarnation = 1 + max((o.incarnation for o in listed), default=0)
        elif any(o.incarnation >= self._incarnation for o in listed):
            raise WalWriteError(
                f"object WAL of node {self._node_id}: incarnation {self._incarnation} is not"
                " newer than the objects already written"
            )
        self._superseded.extend(o.key for o in dropped)
        reads: deque[asyncio.Task[memoryview]] = deque()
        upcoming = iter(kept)
        recovered: list[WalObject] = []
        try:
            while True:
                while len(reads) < self._max_in_flight:
                    obj = next(upcoming, None)
                    if obj is None:
                        break
                    reads.append(asyncio.ensure_future(self._read_whole(obj)))
                if not reads:
                    break
                obj = kept[len(recovered)]
                data = await reads.popleft()
                entries, used, _ = scan_entries(bytes(data), obj.start)
                if obj.start + used != obj.end:
                    # Not what a PUT writes (a store that lost bytes): the log ends here.
                    log.warning("object WAL: %s is damaged; the log ends before it", obj.key)
                    self._superseded.extend(o.key for o in kept[len(recovered) :])
                    break
                recovered.append(obj)
                yield entries
        finally:
            for read in reads:
                read.cancel()
        self._objects = recovered
        self._starts = [o.start for o in recovered]
        self._floor = max((o.floor for o in listed), default=0)
        # Never below the floor: an object starting there would be dropped as trimmed.
        self._durable_end = self._written_end = recovered[-1].end if recovered else self._floor
        self._recovered = True
        if dropped:
            log.info("object WAL: %d superseded objects to delete", len(dropped))
        self._start_deletes()

    async def _read_whole(self, obj: WalObject) -> memoryview:
        if obj.end == obj.start:
            return memoryview(b"")  # a clean stop's marker: nothing to read
        return await self._store.get_range(obj.key, 0, obj.end - obj.start)

    # -- appends -----------------------------------------------------------------------

    @property
    def end_position(self) -> int:
        return self._written_end + self._pending.bytes

    @property
    def durable_position(self) -> int:
        return self._durable_end

    @property
    def start_position(self) -> int:
        return self._objects[0].start if self._objects else self._durable_end

    @property
    def incarnation(self) -> int | None:
        return self._incarnation

    def append(
        self, stream_id: int, base_offset: int, batch: bytes
    ) -> tuple[int, asyncio.Future[None]]:
        assert self._recovered, "recover_pages() first"
        head = entry_head(stream_id, base_offset, batch)
        size = len(head) + len(batch)
        position = self.end_position
        pending = self._pending
        pending.parts += (head, batch)
        pending.sizes.append(size)
        pending.bytes += size
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        pending.waiters.append(waiter)
        if self._budget is not None:
            self._budget.wal_bytes += size
        if not self._scheduled and len(self._in_flight) < self._max_in_flight:
            # On the next turn: the appends of one request (and of others handled in
            # this turn) share the PUT.
            self._scheduled = True
            loop.call_soon(self._start_puts)
        return position, waiter

    def _start_puts(self) -> None:
        self._scheduled = False
        pending = self._pending
        while pending.sizes and len(self._in_flight) < self._max_in_flight:
            count, size = 0, 0
            while count < len(pending.sizes) and (
                count == 0 or size + pending.sizes[count] <= self._max_object_bytes
            ):
                size += pending.sizes[count]
                count += 1
            start, end = self._written_end, self._written_end + size
            incarnation, sequence = self._incarnation, self._sequence
            floor = self.start_position
            assert incarnation is not None
            obj = WalObject(
                incarnation,
                sequence,
                start,
                end,
                floor,
                wal_object_key(self._node_id, incarnation, sequence, start, end, floor),
            )
            self._sequence += 1
            put = _Put(obj, pending.parts[: 2 * count], pending.waiters[:count], self._generation)
            del pending.parts[: 2 * count], pending.waiters[:count], pending.sizes[:count]
            pending.bytes -= size
            self._written_end += size
            self._in_flight.append(put)
            task = asyncio.get_running_loop().create_task(self._put(put))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _put(self, put: _Put) -> None:
        started = elapsed_ns()
        error: Exception | None = None
        try:
            await self._store.put(put.obj.key, put.parts)
        except Exception as exc:  # an outage, a timeout: every later entry fails
            error = exc
        self.put_latency.observe((elapsed_ns() - started) / 1e9)
        self._returned(put, error)

    def _returned(self, put: _Put, error: Exception | None) -> None:
        put.returned = True
        if put.generation != self._generation:
            # Failed with an earlier PUT: whatever landed is superseded.
            self._supersede(put.obj.key)
            return
        if error is not None:
            self._fail(error)
            return
        put.done = True
        self.puts += 1
        budget = self._budget
        while self._in_flight and self._in_flight[0].done:
            durable = self._in_flight.popleft()
            self._durable_end = durable.obj.end
            self._floor = max(self._floor, durable.obj.floor)
            self._objects.append(durable.obj)
            self._starts.append(durable.obj.start)
            if budget is not None:
                budget.wal_bytes -= durable.obj.end - durable.obj.start
            for waiter in durable.waiters:
                if not waiter.done():
                    waiter.set_result(None)
        if self._pending.sizes and not self._scheduled:
            self._start_puts()
        if self._trimmed and self._trimmed[0].end <= self._floor:
            self._start_deletes()

    def _fail(self, exc: BaseException) -> None:
        """Fail every entry past the durable end (in flight and queued), tell the owner
        synchronously, and write again from the durable end."""
        self.failures += 1
        self.last_error = exc
        self._generation += 1
        abandoned = list(self._in_flight)
        self._in_flight.clear()
        pending, self._pending = self._pending, _Pending()
        waiters = [w for put in abandoned for w in put.waiters] + pending.waiters
        if self._budget is not None:
            self._budget.wal_bytes -= (self._written_end - self._durable_end) + pending.bytes
        self._written_end = self._durable_end
        for put in abandoned:
            if put.returned:  # the failed one (it may have landed all the same)
                self._supersede(put.obj.key)
            # The others are superseded when they return.
        log.warning("object WAL write failed (%s); %d appends failed", exc, len(waiters))
        if self.on_failure is not None:
            self.on_failure(self._durable_end, exc)
        error = WalWriteError(f"write-ahead log write failed: {exc}")
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()  # retrieved: a caller that gave up must not log it

    # -- reads -------------------------------------------------------------------------

    def open_batches(self, batches: Sequence[tuple[int, int]]) -> _ObjectRead:
        """Pin the objects holding each (entry position, batch size) batch; their bytes
        are read by ranged GETs in `_ObjectRead.read`."""
        spans: list[tuple[WalObject, int, int]] = []  # object, offset in it, size
        for position, size in batches:
            index = bisect.bisect_right(self._starts, position) - 1
            start = position + BATCH_OFFSET_IN_ENTRY
            if index < 0 or start + size > self._objects[index].end:
                raise WalWriteError(f"WAL entry at {position} is not in the log")
            obj = self._objects[index]
            spans.append((obj, start - obj.start, size))
        for obj, _, _ in spans:
            self._pins[obj.key] = self._pins.get(obj.key, 0) + 1
        return _ObjectRead(self, spans)

    def _unpin(self, spans: list[tuple[WalObject, int, int]]) -> None:
        for obj, _, _ in spans:
            left = self._pins[obj.key] - 1
            if left:
                self._pins[obj.key] = left
            else:
                del self._pins[obj.key]
        if self._trimmed or self._superseded:
            self._start_deletes()

    async def _get(self, key: str, start: int, end: int) -> memoryview:
        return await self._store.get_range(key, start, end)

    # -- trimming ----------------------------------------------------------------------

    def trim(self, position: int, reclaim_active: bool = False) -> int:
        """Objects wholly before `position` leave the log now; they are deleted in the
        background once a durable object names a floor past them and no read holds
        them."""
        count = 0
        while self._objects and self._objects[0].end <= position:
            self._trimmed.append(self._objects.pop(0))
            self._starts.pop(0)
            count += 1
        if self._trimmed or self._superseded:
            self._start_deletes()
        return count

    def _supersede(self, key: str) -> None:
        self._superseded.append(key)
        self._start_deletes()

    def _start_deletes(self) -> None:
        if self._deleting or self._emptying or not self._recovered:
            return
        self._deleting = True
        task = asyncio.get_running_loop().create_task(self._delete_due())
        self._delete_task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _delete_due(self) -> None:
        """Superseded objects, and trimmed ones below the recorded floor that no read
        holds, in paced bulk requests (`_delete_round`); what a failure leaves is tried
        again at the next trim, read or durable PUT."""
        try:
            wait_ns = self._deleted_at_ns + self._delete_interval_ns - elapsed_ns()
            if wait_ns > 0:
                await asyncio.sleep(wait_ns / 1e9)
            while True:
                due = set(self._superseded)
                due.update(
                    o.key for o in self._trimmed if o.end <= self._floor and o.key not in self._pins
                )
                if not due:
                    break
                await self._delete_round(sorted(due))
        except OSError as exc:
            log.info("object WAL: deleting objects failed (%s); retried later", exc)
        finally:
            self._deleting = False

    async def _delete_round(self, due: list[str]) -> None:
        """The keys deleted leave the lists even when a later request fails (a key
        deleted twice is harmless)."""
        gone: set[str] = set()
        try:
            await delete_paced(self._store, due, gone)
        finally:
            self._deleted_at_ns = elapsed_ns()
            self._superseded = [k for k in self._superseded if k not in gone]
            self._trimmed = [o for o in self._trimmed if o.key not in gone]

    # -- a clean stop ------------------------------------------------------------------

    async def empty(self, uploaded_end: int) -> int:
        """A clean stop whose uploads reached `uploaded_end`: when that is the end of
        the log and every entry is durable, PUT the marker (see the module doc), then
        delete every other object known, `KEYS_MAX` keys a request. Returns how
        many were deleted; raises the store's error (what is left is dropped at the
        next start). The caller bounds it in time and closes the WAL after it."""
        if not self._all_durable_below(uploaded_end):
            return 0  # the next start needs the log
        self._emptying = True
        # Deletion runs here from now on; PUTs of a failed generation still out are
        # superseded when they return, so wait for them to know their keys.
        if self._delete_task is not None:
            self._delete_task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if not self._all_durable_below(uploaded_end):
            # Appended meanwhile: a marker now would supersede it.
            self._emptying = False
            return 0
        # No await from here to the PUT: an append after it is PUT later and so
        # supersedes the marker instead.
        end = self._durable_end
        doomed = [o.key for o in (*self._trimmed, *self._objects)] + self._superseded
        only_marker = [(o.start, o.end) for o in self._objects] == [(end, end)]
        if not doomed or (only_marker and not self._trimmed and not self._superseded):
            return 0  # nothing written, or already only the marker
        assert self._incarnation is not None
        key = wal_object_key(self._node_id, self._incarnation, self._sequence, end, end, end)
        self._sequence += 1
        await self._store.put(key, [])
        marker = WalObject(self._incarnation, self._sequence - 1, end, end, end, key)
        gone = set(doomed)
        self._objects = [marker, *(o for o in self._objects if o.key not in gone)]
        self._starts = [o.start for o in self._objects]
        self._floor = max(self._floor, end)
        deleted = 0
        for first in range(0, len(doomed), KEYS_MAX):
            await self._store.delete_many(doomed[first : first + KEYS_MAX])
            deleted = min(len(doomed), first + KEYS_MAX)
        self._trimmed, self._superseded = [], []
        return deleted

    def _all_durable_below(self, uploaded_end: int) -> bool:
        """Nothing queued or in flight, and every durable entry uploaded."""
        return (
            self._recovered
            and not self._pending.sizes
            and not self._in_flight
            and uploaded_end >= self._durable_end
        )

    def free_bytes(self) -> int:
        """An object store does not fill up as a disk does."""
        return 1 << 62

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


class _ObjectRead:
    """Batches pinned by `ObjectWal.open_batches`, read by ranged GETs: the batches of
    one object together when little else lies between them."""

    def __init__(self, wal: ObjectWal, spans: list[tuple[WalObject, int, int]]) -> None:
        self._wal = wal
        self._spans = spans

    async def read(self) -> list[bytes]:
        spans = self._spans
        try:
            groups: list[list[int]] = []  # indexes of spans read by one GET
            for index, (obj, offset, _) in enumerate(spans):
                if groups:
                    last_obj, last_offset, last_size = spans[groups[-1][-1]]
                    gap = offset - (last_offset + last_size)
                    if last_obj is obj and 0 <= gap <= _READ_GAP_BYTES:
                        groups[-1].append(index)
                        continue
                groups.append([index])
            reads = await asyncio.gather(*(self._read_group(g) for g in groups))
            result: list[bytes] = [b""] * len(spans)
            for group, (base, data) in zip(groups, reads, strict=True):
                for index in group:
                    _, offset, size = spans[index]
                    result[index] = bytes(data[offset - base : offset - base + size])
            return result
        finally:
            self.close()

    async def _read_group(self, group: list[int]) -> tuple[int, memoryview]:
        obj, first, _ = self._spans[group[0]]
        _, last, size = self._spans[group[-1]]
        return first, await self._wal._get(obj.key, first, last + size)

    def close(self) -> None:
        spans, self._spans = self._spans, []
        if spans:
            self._wal._unpin(spans)
