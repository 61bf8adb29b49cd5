"""Recovery of a dead broker's object WAL by this broker (RFC 0004 §4).

When the controller gives this broker a dead broker D's dirty partitions (D registered
an object WAL, `brokers.wal_url`), the claim takes them at epoch + 1 and keeps them
dirty at the new epoch (`SqlEngine.claim_leadership`). They are not served until
recovered: D's WAL is listed and read as D's own restart reads it
(`ObjectWal.recover_pages`, at most `wal.backlog.bytes` of it, plus the PUTs in flight
and one request past it), entries of other
streams and entries below each partition's object end are skipped, and the rest are
appended to this broker's own WAL; once durable there they are replayed into the
partitions (`recovery.replay`), so they are uploaded, trimmed, read back and replayed
after a restart of this broker as its own appends are. Then the partitions are served.

The claim also names every other expired broker's object WAL not yet marked recovered,
read after D's: a recoverer that died before its copies were durable leaves the rest in
the WAL it was reading, and its own WAL holds copies at the same offsets, of which replay
keeps one.

A failure (a GET, the listing, this broker's WAL, the metadata store) throws the
partitions' state away and tries again with backoff, the partitions offline meanwhile:
nothing is served half-recovered, nothing acknowledged is given up. Entries appended to
this broker's WAL by a failed attempt are appended again by the next; replay keeps the
first copy of each offset, so a restart of this broker does not duplicate them.

Once none of D's partitions is dirty any more (`finish_wal_recovery`, which also marks
the incarnation recovered) the objects listed are deleted; objects D wrote after the
listing were never acknowledged (see RFC 0004 §5) and are left to D's next start, whose
replay drops the entries of partitions led elsewhere and whose trimming deletes them once
it has uploaded and written again (if D never returns they stay: the controller's sweep
of recovered incarnations is not built).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable

from contextplane.clock import Clock
from contextplane.metadata.records import PartitionRecord, WalSource
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.records import parse_header
from contextplane.settings import Settings
from contextplane.storage.log_cache import LogCache
from contextplane.storage.object_wal import ObjectWal
from contextplane.storage.objectstore import ObjectStore, open_object_store
from contextplane.storage.paced_deletes import delete_paced
from contextplane.storage.partition import PartitionLog
from contextplane.storage.partition_logs import release_memory
from contextplane.storage.recovery import replay
from contextplane.storage.wal import WalEntry, WriteAheadLog

log = logging.getLogger(__name__)

_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 30.0

# Fresh partition logs for the claimed records (their object ends read now).
BuildPartitions = Callable[[list[PartitionRecord]], Awaitable[dict[int, PartitionLog]]]
# Settle the recovered partitions' dirty marks and serve them.
ServePartitions = Callable[[dict[int, PartitionLog], list[PartitionRecord]], Awaitable[None]]
OpenStore = Callable[[str], ObjectStore]


class WalTakeover:
    def __init__(
        self,
        settings: Settings,
        metadata: MetadataStore,
        wal: WriteAheadLog,
        log_cache: LogCache,
        clock: Clock,
        build: BuildPartitions,
        serve: ServePartitions,
        open_store: OpenStore | None = None,
    ) -> None:
        self._settings = settings
        self._metadata = metadata
        self._wal = wal
        self._log_cache = log_cache
        self._build = build
        self._serve = serve
        self._open_store = open_store or (
            lambda url: open_object_store(url, settings.object_store_request_timeout_ms, clock)
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.recovering: set[int] = set()  # streams claimed, not served yet
        self._active: dict[WalSource, int] = {}  # recoveries in progress per WAL
        self.recovered = 0  # WAL recoveries completed, deletion included (tests wait on it)

    def read_bound(self) -> int:
        """The most of a WAL a recovery reads: the backlog its broker's admission allows,
        plus the objects in flight and one request past it."""
        settings = self._settings
        return (
            settings.wal_backlog_bytes
            + (settings.wal_object_max_in_flight + 1) * settings.wal_object_max_bytes
            + settings.message_max_bytes
        )

    def start(self, sources: tuple[WalSource, ...], records: list[PartitionRecord]) -> None:
        """Recover `records` (claimed here) from `sources` in the background: the WAL of
        their dead leader first, then any other unrecovered one (see `_run`)."""
        self.recovering.update(r.stream_id for r in records)
        for source in sources:
            self._active[source] = self._active.get(source, 0) + 1
        task = asyncio.create_task(
            self._run(sources, records), name=f"wal-takeover-{sources[0].node_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, sources: tuple[WalSource, ...], records: list[PartitionRecord]) -> None:
        """Replay every source into fresh partitions, then serve them; any failure starts
        over. A later source holds copies of an earlier one's entries at the same offsets
        (a recoverer that died mid-recovery appended some to its own WAL): replay keeps
        the first copy of each offset, whichever WAL it came from."""
        backoff = _BACKOFF_FIRST_S
        stores: dict[str, ObjectStore] = {}
        dead = sources[0].node_id
        log.info(
            "recovering %d partitions from node %d's object WAL (streams %s)%s",
            len(records),
            dead,
            ", ".join(str(r.stream_id) for r in records[:20]),
            "".join(f", then node {s.node_id}'s" for s in sources[1:]),
        )
        while True:
            partitions: dict[int, PartitionLog] = {}
            listed: dict[WalSource, list[str]] = {}
            replayed = 0
            try:
                partitions = await self._build(records)
                for source in sources:
                    store = stores.get(source.wal_url)
                    if store is None:
                        store = stores[source.wal_url] = self._open_store(source.wal_url)
                    replayed += await self._replay(source, store, partitions, listed)
                await self._serve(partitions, records)
                break
            except Exception as exc:  # noqa: BLE001 - offline until a retry succeeds
                self._discard(partitions.values())
                log.warning(
                    "recovering node %d's object WAL failed (%r); its %d partitions stay"
                    " offline, retrying in %.1f s",
                    dead,
                    exc,
                    len(records),
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(2 * backoff, _BACKOFF_MAX_S)
        self.recovering.difference_update(partitions)
        log.info(
            "recovered %d partitions from node %d's object WAL (%d entries replayed)",
            len(partitions),
            dead,
            replayed,
        )
        for source in sources:
            self._active[source] -= 1
            await self._finish(source, stores[source.wal_url], listed[source])
        self.recovered += 1

    async def _replay(
        self,
        source: WalSource,
        store: ObjectStore,
        partitions: dict[int, PartitionLog],
        listed: dict[WalSource, list[str]],
    ) -> int:
        """Replay one WAL into `partitions`; `listed[source]` gets the keys of its
        objects (of its recorded incarnation and older)."""
        wal = ObjectWal(store, source.node_id, None, self._settings.wal_object_max_in_flight)
        try:
            pages = wal.recover_pages(self.read_bound())
            replayed = await replay(self._appended(pages, partitions), partitions, self._log_cache)
        finally:
            wal.close()
        listed[source] = [o.key for o in wal.listed if o.incarnation <= source.incarnation]
        return replayed

    async def _appended(
        self, pages: AsyncIterable[Iterable[WalEntry]], partitions: dict[int, PartitionLog]
    ) -> AsyncIterator[list[WalEntry]]:
        """The entries of `partitions` past their object ends, each appended to this
        broker's WAL and yielded, at its position there, once durable."""
        async for entries in pages:
            kept = []
            for entry in entries:
                partition = partitions.get(entry.stream_id)
                if partition is None:
                    continue  # a stream not recovered here
                end = entry.base_offset + parse_header(entry.batch).last_offset_delta + 1
                if end > partition.object_end_offset:
                    kept.append(entry)
            if not kept:
                continue
            writes = [self._wal.append(e.stream_id, e.base_offset, e.batch) for e in kept]
            await asyncio.gather(*(durable for _, durable in writes))
            yield [
                WalEntry(
                    position,
                    position + entry.end_position - entry.position,
                    entry.stream_id,
                    entry.base_offset,
                    entry.batch,
                )
                for (position, _), entry in zip(writes, kept, strict=True)
            ]

    def _discard(self, partitions: Iterable[PartitionLog]) -> None:
        for partition in partitions:
            partition.deleted = True
            self._log_cache.drop_partition(partition)
            release_memory(partition)

    async def _finish(self, source: WalSource, store: ObjectStore, keys: list[str]) -> None:
        """Delete the dead broker's WAL once none of its partitions is dirty (another
        recoverer may still be at work on some: the last one deletes)."""
        if self._active[source]:
            return  # another recovery of it still reads it
        del self._active[source]
        try:
            if not await self._metadata.finish_wal_recovery(source.node_id, source.incarnation):
                return
            await delete_paced(store, keys, set())  # beside this broker's own WAL PUTs
            log.info(
                "node %d's object WAL (incarnation %d) is recovered: %d objects deleted",
                source.node_id,
                source.incarnation,
                len(keys),
            )
        except Exception as exc:  # noqa: BLE001 - left for that node's next start
            log.warning("deleting node %d's recovered object WAL failed (%r)", source.node_id, exc)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
