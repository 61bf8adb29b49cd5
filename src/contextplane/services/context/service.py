"""The context service on the event loop: the apply loop on its thread, `get` with
freshness, and read fences that wait for the apply loop to pass an offset vector
(RFC 0006 §1)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from contextplane.clock import Clock, SystemClock
from contextplane.failure_episode import FailureEpisode
from contextplane.services.context import errors
from contextplane.services.context.applier import Applier, ApplierConfig
from contextplane.services.context.as_of import AsOfSettings, PastState, PointInTime
from contextplane.services.context.as_of_time import check_timestamp
from contextplane.services.context.ends import EndOffsets, merged
from contextplane.services.context.freshness import (
    Freshness,
    PartitionFreshness,
    Position,
    TopicPartition,
    freshness,
    is_stale,
    unmet,
)
from contextplane.services.context.merge import Origin, RecordAt, decode_entity
from contextplane.services.context.owner_lookup import OwnerLookup
from contextplane.services.context.partitions import entity_partition
from contextplane.services.context.snapshots import Snapshots, Snapshotter
from contextplane.services.context.store import LocalStore
from contextplane.services.context.views import View

log = logging.getLogger("contextplane.context")

# How often the sources' ends are asked and views with a freshness target are checked for
# the stale/recovered log lines.
FRESHNESS_CHECK_S = 1.0
# One asking of the ends at most this long (a leader that does not answer keeps its
# partition's last known end until the next check).
ENDS_ASK_S = 5.0
# A fenced read waits at most this long (a caller asking more is refused, not clamped: it
# would otherwise believe it had waited what it asked).
FENCE_WAIT_MS_MAX = 30_000
FENCE_WAIT_MS_DEFAULT = 5_000
# Fenced reads waiting at once; past it a read is answered 503 at once.
FENCE_WAITERS_MAX = 1_000
FENCE_PARTITIONS_MAX = 1_000
JOIN_S = 10.0


@dataclass(frozen=True)
class EntityAnswer:
    view: str
    entity: str
    state: dict[str, Any] | None  # None: no such entity (yet, or any longer)
    changed_by: Origin | None
    freshness: Freshness
    as_of: dict[TopicPartition, int] | None = None  # set on a point-in-time answer
    as_of_ms: int | None = None  # set when the point in time was given as a timestamp
    # The changelog record holding the state answered (a current read whose store knows
    # it; a point-in-time state is folded from the sources and has none).
    changelog: RecordAt | None = None


class ContextService:
    def __init__(
        self,
        views: dict[str, View],
        config: ApplierConfig,
        clock: Clock | None = None,
        as_of: AsOfSettings | None = None,
    ) -> None:
        self.views = views
        self._changelog_topic = config.changelog_topic
        self._clock = clock or SystemClock()
        self._applier = Applier(views, config, self._applied_on_thread)
        settings = as_of or AsOfSettings()
        self._snapshots = Snapshots(config.data_dir / "snapshots", settings.snapshots_kept)
        self._snapshotter = Snapshotter(
            self._snapshots, self._applier.store_path, settings.snapshot_every_records
        )
        common = {"bootstrap.servers": config.bootstrap, **config.client_config}
        self._owners = OwnerLookup(
            common, config.group, lambda: self._applier.partition_count, lambda: self._applier.owned
        )
        self._ends = EndOffsets(common)
        self._asked_ends: dict[TopicPartition, int] = {}  # the watch's, merged each check
        self._point_in_time = PointInTime(
            common, config.name, self._snapshots, settings, self._clock
        )
        # Point-in-time reads block on Kafka: their own threads, a bounded number at once
        # (a slot is given back when the read's thread ends, not when its caller leaves).
        self._as_of_pool = ThreadPoolExecutor(settings.concurrent_max, "context-as-of")
        self._as_of_slots = threading.BoundedSemaphore(settings.concurrent_max)
        self._positions: dict[TopicPartition, Position] = {}
        self._partitions: frozenset[TopicPartition] = frozenset()
        self._waiters: list[tuple[dict[TopicPartition, int], asyncio.Future[None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._reads: LocalStore | None = None
        self._watch: asyncio.Task[None] | None = None
        self.stopped = asyncio.Event()  # the apply loop ended by itself (see `failure`)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._positions = await asyncio.to_thread(self._applier.start)
        self._partitions = frozenset(self._applier.partitions)
        self._reads = LocalStore(self._applier.store_path)
        self._thread = threading.Thread(target=self._applier.run, name="context-apply", daemon=True)
        self._thread.start()
        self._snapshotter.start()
        self._watch = asyncio.create_task(self._watch_freshness())

    @property
    def failure(self) -> str | None:
        return self._applier.failure

    def _applied_on_thread(self, positions: dict[TopicPartition, Position]) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed under a stopping service
            self._loop.call_soon_threadsafe(self._applied, positions)

    def _applied(self, positions: dict[TopicPartition, Position]) -> None:
        self._positions = positions
        if self.failure is not None:
            self.stopped.set()
        still = []
        for fence, waiter in self._waiters:
            if waiter.done():
                continue
            if self.failure is not None:
                waiter.set_exception(errors.not_applying(self.failure))
            elif not unmet(positions, fence):
                waiter.set_result(None)
            else:
                still.append((fence, waiter))
        self._waiters = still

    async def get(
        self,
        view: str,
        entity: str,
        min_offsets: dict[TopicPartition, int] | None = None,
        timeout_ms: int = FENCE_WAIT_MS_DEFAULT,
        as_of: dict[TopicPartition, int] | None = None,
        as_of_ms: int | None = None,
    ) -> EntityAnswer:
        """The entity's state and freshness; with `min_offsets`, only once the record at
        each (topic, partition) offset is applied, waiting at most `timeout_ms`; with
        `as_of`, the state once exactly the records below each offset were applied; with
        `as_of_ms`, once every record stamped up to it was and none after
        (`as_of_time.py`)."""
        declared = self._view(view)
        if as_of is not None or as_of_ms is not None:
            if min_offsets:
                raise errors.bad_as_of("as_of and min_offsets exclude each other")
            if as_of is not None and as_of_ms is not None:
                raise errors.bad_as_of("as_of is an offset vector or a timestamp, not both")
            if as_of is not None:
                return await self._get_as_of(declared, entity, as_of)
            assert as_of_ms is not None
            return await self._get_as_of_time(declared, entity, as_of_ms)
        if not 0 <= timeout_ms <= FENCE_WAIT_MS_MAX:
            raise errors.bad_fence(f"timeout_ms must be 0 to {FENCE_WAIT_MS_MAX}, got {timeout_ms}")
        if self.failure is not None:
            raise errors.not_applying(self.failure)
        if min_offsets:
            self._check_fence(declared, min_offsets, timeout_ms)
        if self._applier.owned is not None:
            await self._owner_check(view, entity, min_offsets or {})
        if min_offsets and unmet(self._positions, min_offsets):
            await self._wait(view, min_offsets, timeout_ms)
        assert self._reads is not None, "get before start"
        raw, at, positions = self._reads.entity_located(view, entity)
        stored = None if raw is None else decode_entity(raw)
        return EntityAnswer(
            view,
            entity,
            None if stored is None else stored.state,
            None if stored is None else stored.changed_by,
            self._freshness(declared, positions),
            changelog=None
            if stored is None or at is None or at[1] is None
            else RecordAt(self._changelog_topic, at[0], at[1]),
        )

    async def _get_as_of(
        self, view: View, entity: str, as_of: dict[TopicPartition, int]
    ) -> EntityAnswer:
        """A point-in-time read. A partition of the view that `as_of` leaves out counts
        as 0 (none of its records): the answer depends on the vector alone."""
        if len(as_of) > FENCE_PARTITIONS_MAX:
            raise errors.bad_as_of(f"as_of names at most {FENCE_PARTITIONS_MAX} partitions")
        mine = sorted(tp for tp in self._partitions if tp[0] in view.topics)
        for (topic, partition), offset in as_of.items():
            if (topic, partition) not in mine:
                raise errors.bad_as_of(
                    f"view {view.name!r} does not read {topic}[{partition}]"
                    f" (its topics: {', '.join(sorted(view.topics))})"
                )
            if offset < 0:
                raise errors.bad_as_of(f"{topic}[{partition}]: offset {offset} is negative")
        vector = {tp: as_of.get(tp, 0) for tp in mine}
        return await self._past(view, entity, self._point_in_time.read, vector)

    async def _get_as_of_time(self, view: View, entity: str, timestamp_ms: int) -> EntityAnswer:
        """A point-in-time read at a timestamp, resolved to a vector over every source
        partition of the view; the answer names both."""
        check_timestamp(timestamp_ms, self._clock.wall_ms())
        mine = sorted(tp for tp in self._partitions if tp[0] in view.topics)
        answer = await self._past(
            view, entity, self._point_in_time.read_at_time, mine, timestamp_ms
        )
        return dataclasses.replace(answer, as_of_ms=timestamp_ms)

    async def _past(
        self, view: View, entity: str, read: Callable[..., PastState], *where: Any
    ) -> EntityAnswer:
        """`read(view, entity, *where)` on an as_of thread, within the bound on reads at
        once, as an answer."""
        if not self._as_of_slots.acquire(blocking=False):
            raise errors.too_many_as_of(self._point_in_time.settings.concurrent_max)
        try:
            running = self._as_of_pool.submit(read, view, entity, *where)
        except BaseException:
            self._as_of_slots.release()
            raise
        running.add_done_callback(lambda _: self._as_of_slots.release())
        past = await asyncio.wrap_future(running)
        log.debug(
            "as_of %s/%s: %d offsets read after %s",
            view.name,
            entity,
            past.scanned,
            past.snapshot or "the log start",
        )
        return EntityAnswer(
            view.name,
            entity,
            None if past.entity is None else past.entity.state,
            None if past.entity is None else past.entity.changed_by,
            Freshness(
                age_ms=None,  # an age of a past state would change with every asking
                newest_event_ms=past.newest_ms,
                lag=None,
                partitions=tuple(
                    PartitionFreshness(t, p, at, None, None) for (t, p), at in past.vector.items()
                ),
            ),
            as_of=past.vector,
        )

    async def _owner_check(self, view: str, entity: str, fence: dict[TopicPartition, int]) -> None:
        """A partitioned instance answers for the partitions it owns: another's entity
        (or fence) is answered 421 naming the owner, one no one owns yet 503."""
        owned = self._applier.owned
        assert owned is not None
        partition = entity_partition(entity, self._applier.partition_count)
        outside = sorted({p for _, p in fence} - owned)
        if partition in owned and not outside:
            return
        wanted = partition if partition not in owned else outside[0]
        owner = (await self._owners.owners()).get(wanted)
        if owner is None or owner.client_id == self._applier.client_id:  # being restored here
            raise errors.partition_moving(view, entity, wanted)
        raise errors.not_owner(view, entity, wanted, dataclasses.asdict(owner))

    def _view(self, view: str) -> View:
        declared = self.views.get(view)
        if declared is None:
            raise errors.unknown_view(view, sorted(self.views))
        return declared

    def _check_fence(
        self, view: View, min_offsets: dict[TopicPartition, int], timeout_ms: int
    ) -> None:
        if len(min_offsets) > FENCE_PARTITIONS_MAX:
            raise errors.bad_fence(f"a fence names at most {FENCE_PARTITIONS_MAX} partitions")
        for (topic, partition), offset in min_offsets.items():
            if topic not in view.topics or (topic, partition) not in self._partitions:
                raise errors.bad_fence(
                    f"view {view.name!r} does not read {topic}[{partition}]"
                    f" (its topics: {', '.join(sorted(view.topics))})"
                )
            if offset < 0:
                raise errors.bad_fence(f"{topic}[{partition}]: offset {offset} is negative")

    async def _wait(self, view: str, fence: dict[TopicPartition, int], timeout_ms: int) -> None:
        if len(self._waiters) >= FENCE_WAITERS_MAX:
            raise errors.too_many_waits(FENCE_WAITERS_MAX)
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        entry = (fence, waiter)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                await waiter
        except TimeoutError:
            raise errors.fence_timeout(view, timeout_ms, unmet(self._positions, fence)) from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _served(self) -> list[TopicPartition]:
        """The source partitions this instance applies (a partitioned one: those owned)."""
        owned = self._applier.owned
        return sorted(tp for tp in self._partitions if owned is None or tp[1] in owned)

    def _freshness(self, view: View, positions: dict[TopicPartition, Position]) -> Freshness:
        mine = {
            tp: positions.get(tp, Position(0, None))
            for tp in self._served()
            if tp[0] in view.topics
        }
        ends = merged(self._applier.watermarks, self._asked_ends)
        fresh = freshness(mine, ends, self._clock.wall_ms())
        target = view.freshness_target_ms
        return dataclasses.replace(fresh, target_ms=target, stale=is_stale(fresh, target))

    def status(self) -> dict[str, Any]:
        """Each view's freshness and skipped records; the records applied since start."""
        assert self._reads is not None, "status before start"
        positions = self._reads.positions()
        skipped = dict(self._applier.skipped)  # one copy: the apply thread adds keys
        owned = self._applier.owned
        return {
            "applied_records": self._applier.applied_records,
            "failure": self.failure,
            "owner_lookups": self._owners.lookups,
            # Partitioned: the partition numbers this instance serves; the single one: null.
            "partitions": None if owned is None else sorted(owned),
            "views": {
                name: {
                    "freshness": self._freshness(view, positions),
                    "skipped": {
                        reason: count for (v, reason), count in sorted(skipped.items()) if v == name
                    },
                }
                for name, view in sorted(self.views.items())
            },
        }

    async def _watch_freshness(self) -> None:
        """Each check asks the sources' ends (ends.py says why the consumer's are not
        enough); the alert: one WARNING line when a view with a target turns stale, one
        INFO line when it is fresh again (the metric says it all along)."""
        assert self._reads is not None
        stale: set[str] = set()
        targeted = {name: view for name, view in self.views.items() if view.freshness_target_ms}
        asking = FailureEpisode(log, "asking the ends of the sources")
        while True:
            await asyncio.sleep(FRESHNESS_CHECK_S)
            try:
                asked = await asyncio.to_thread(self._ends.ask, self._served(), ENDS_ASK_S)
            except Exception as exc:  # the next check asks again
                asking.failed(exc)
            else:
                self._asked_ends = {**self._asked_ends, **asked}
                asking.worked()
            positions = self._reads.positions()
            for name, view in targeted.items():
                fresh = self._freshness(view, positions)
                if fresh.stale and name not in stale:
                    stale.add(name)
                    applied = (
                        "nothing applied yet"
                        if fresh.age_ms is None
                        else f"newest applied event {fresh.age_ms} ms old"
                    )
                    log.warning(
                        "view %s is stale: %s records behind, %s (target %d ms)",
                        name,
                        fresh.lag,
                        applied,
                        view.freshness_target_ms,
                    )
                elif not fresh.stale and name in stale:
                    stale.discard(name)
                    log.info("view %s is fresh again (lag %s)", name, fresh.lag)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        self._applier.stop()
        self._as_of_pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._snapshotter.stop, JOIN_S)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, JOIN_S)
        await asyncio.to_thread(self._applier.close)
        if self._reads is not None:
            self._reads.close()
