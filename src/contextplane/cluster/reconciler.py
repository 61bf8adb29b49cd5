"""The reconciler (RFC 0004 §2): one task per broker that moves what this broker leads
towards the targets in the metadata store.

It wakes when a heartbeat saw a change generation move (`Registry.changed`): the topic
table is read again when `generation.topics` moved, then the partition rows changed since
the last assignment generation it saw are read, and for each
- targeted here, not led here, and without a live leader (a handover released it, it is
  new, or the controller moved it off a broker whose lease lapsed): opened
  (`StorageEngine.assign`; the claim checks claimability in its own transaction, dirty
  partitions included, so a stale read claims nothing);
- led here and targeted elsewhere: handed over (`StorageEngine.release`: flush its tail
  to objects, then leave it without a leader for its target to claim);
- anything else: its leader as read is remembered for Metadata and for
  NOT_LEADER_OR_FOLLOWER.

A `__consumer_offsets` partition is a group coordinator's shard and a
`__transaction_state` partition a transaction coordinator's (RFC 0004 §3): a shard is
unloaded before its partition is handed over and loaded once it is opened.

A pass that failed (the store or the object store unreachable) is retried a heartbeat
interval later from the same generation; passes never overlap.

The ACLs, SCRAM credentials and client quotas are read again when `generation.security`
moved (`refresh_security`) by a task of their own (`Registry.security_changed`): a
revoked ACL or a deleted user takes effect without waiting behind a pass's handovers
(each up to `partition.move.timeout.ms`), and a failing security read, retried the same
way, holds up no partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from contextplane.cluster.leadership import MoveTimedOut
from contextplane.cluster.registry import Registry
from contextplane.failure_episode import FailureEpisode
from contextplane.metadata.records import PartitionRecord
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.offsets_records import OFFSETS_TOPIC
from contextplane.storage.engine import StorageEngine
from contextplane.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class ShardCoordinator(Protocol):
    """A group or transaction coordinator, as the reconciler drives it."""

    async def load_shard(self, shard: int) -> None: ...
    def unload_shard(self, shard: int) -> None: ...
    def is_loaded(self, shard: int) -> bool: ...


class Reconciler:
    def __init__(
        self,
        metadata: MetadataStore,
        engine: StorageEngine,
        registry: Registry,
        refresh_topics: Callable[[], Awaitable[None]],
        known_topic: Callable[[str], bool],
        unclean_election: Callable[[str], bool],
        node_id: int,
        retry_s: float,
    ) -> None:
        self._metadata = metadata
        self._engine = engine
        self._registry = registry
        self._refresh_topics = refresh_topics
        self._known_topic = known_topic
        self._unclean_election = unclean_election
        self._node_id = node_id
        self._retry_s = retry_s
        self._assignment_seen = 0  # the assignment generation whose rows were all read
        self._topics_seen = -1
        self._security_seen = -1
        # Reads the ACLs, SCRAM credentials and client quotas again (None: not set yet).
        self.refresh_security: Callable[[], Awaitable[None]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._security_task: asyncio.Task[None] | None = None
        # Streams whose handover timed out (stream -> the target it was for).
        self._abandoned: dict[int, int] = {}
        self.passes = 0  # completed passes (tests wait on it)
        # Internal topic -> the coordinator whose shards its partitions are (set once
        # each is up).
        self.coordinators: dict[str, ShardCoordinator] = {}

    @property
    def coordinator(self) -> ShardCoordinator | None:
        """The group coordinator (of `__consumer_offsets`)."""
        return self.coordinators.get(OFFSETS_TOPIC)

    @coordinator.setter
    def coordinator(self, coordinator: ShardCoordinator) -> None:
        self.coordinators[OFFSETS_TOPIC] = coordinator

    def start(self) -> None:
        self._registry.changed.set()  # a first pass at once: rows changed while stopped
        self._registry.security_changed.set()
        self._task = asyncio.create_task(self._run(), name="reconciler")
        self._security_task = asyncio.create_task(self._run_security(), name="security-reload")

    async def stop(self) -> None:
        for task in (self._task, self._security_task):
            await cancel_and_wait(task)
        self._task = self._security_task = None

    async def _run(self) -> None:
        await self._follow(self._registry.changed, self.reconcile, "reconciling the assignment")

    async def _run_security(self) -> None:
        await self._follow(
            self._registry.security_changed,
            self._reload_security,
            "reading the ACLs, users and quotas",
        )

    async def _follow(
        self, changed: asyncio.Event, step: Callable[[], Awaitable[None]], what: str
    ) -> None:
        """Run `step` whenever `changed` is set; a failed one is retried `retry_s` later
        (logged once until it works again)."""
        episode = FailureEpisode(log, what)
        while True:
            await changed.wait()
            changed.clear()
            try:
                await step()
            except Exception as exc:  # noqa: BLE001 - retried from the same generation
                episode.failed(exc)
                await asyncio.sleep(self._retry_s)
                changed.set()
                continue
            episode.worked()

    async def _reload_security(self) -> None:
        generation = self._registry.security_generation
        if generation == self._security_seen or self.refresh_security is None:
            return
        await self.refresh_security()
        self._security_seen = generation

    async def reconcile(self) -> None:
        """One pass: the topic table if it changed, then the rows changed since the last
        pass."""
        topics_generation = self._registry.topics_generation
        if topics_generation != self._topics_seen:
            await self._refresh_topics()
            self._topics_seen = topics_generation
        generation, rows = await self._metadata.assignment_changes(self._assignment_seen)
        if any(not self._known_topic(row.topic) for row in rows):
            await self._refresh_topics()  # created after the heartbeat this pass follows
        to_open: dict[str, list[int]] = {}
        to_release: list[int] = []
        coordinators = dict(self.coordinators)
        shards_out: list[tuple[str, int]] = []  # coordinator shards handed over
        shards_back: list[tuple[str, int]] = []  # led and targeted here (a handover abandoned)
        leaders: dict[tuple[str, int], tuple[int, int]] = {}
        leads = self._engine.leadership.leads
        me = self._node_id
        for row in rows:
            if not self._known_topic(row.topic):
                continue  # deleted since
            if leads(row.stream_id):
                shard = (row.topic, row.partition) if row.topic in coordinators else None
                if self._abandoned.get(row.stream_id) == row.target_node:
                    continue  # left to failover: tried again only for another target
                self._abandoned.pop(row.stream_id, None)
                if row.target_node not in (me, -1):
                    to_release.append(row.stream_id)
                    if shard is not None:
                        shards_out.append(shard)
                else:
                    self._engine.resume(row.stream_id)
                    if shard is not None:
                        shards_back.append(shard)
            elif row.target_node == me and (
                row.leader_node == -1 or (row.leader_node != me and not row.leader_live)
            ):
                # (What this node led itself it reopened at start; a row naming it while
                # it is not led here is this broker's own claim, its reply in flight.)
                to_open.setdefault(row.topic, []).append(row.stream_id)
            elif row.leader_node != me:
                leaders[(row.topic, row.partition)] = (row.leader_node, row.leader_epoch)
        self._engine.note_leaders(leaders)
        for topic, out in shards_out:
            coordinators[topic].unload_shard(out)  # no write once the handover starts
        results = await asyncio.gather(
            *(self._engine.release(stream_id) for stream_id in to_release),
            return_exceptions=True,
        )
        for stream_id, result in zip(to_release, results, strict=True):
            if isinstance(result, MoveTimedOut):
                row = next(r for r in rows if r.stream_id == stream_id)
                target = self._abandoned[stream_id] = row.target_node
                if row.topic in coordinators:
                    shards_back.append((row.topic, row.partition))  # loaded again below
                log.warning(
                    "%s; served here again, its move to node %d left to failover",
                    result,
                    target,
                )
        # One claim for every topic: a dead broker's object WAL is then read once
        # for all the partitions recovered from it (storage/wal_takeover.py).
        opening: list[PartitionRecord] = []
        unclean: set[int] = set()
        for topic, streams in to_open.items():
            opening += await self._records(topic, set(streams))
            if self._unclean_election(topic):
                unclean.update(streams)
        shards_in: list[tuple[str, int]] = []  # shards opened here now (loaded afresh)
        if opening:
            opened = set(await self._engine.assign(opening, frozenset(unclean)))
            shards_in = [
                (r.topic, r.partition)
                for r in opening
                if r.topic in coordinators and r.stream_id in opened
            ]
        shards_in += [(t, s) for t, s in shards_back if not coordinators[t].is_loaded(s)]
        for topic, index in shards_in:
            await coordinators[topic].load_shard(index)
        failures = [
            r for r in results if isinstance(r, BaseException) and not isinstance(r, MoveTimedOut)
        ]
        if failures:
            raise failures[0]
        self._assignment_seen = generation
        self.passes += 1

    async def _records(self, topic: str, streams: set[int]) -> list[PartitionRecord]:
        """The partitions to open as stored now (their epochs and producer state)."""
        return [r for r in await self._metadata.partitions(topic) if r.stream_id in streams]
