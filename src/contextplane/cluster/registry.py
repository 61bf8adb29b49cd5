"""The broker registry (RFC 0004 §1): this broker's row in the `brokers` table.

`register` runs at start, before any partition is claimed or any listener opens: it
takes a new incarnation and the row of `node.id`, unless a live broker holds that id
(its lease, on the database's clock, has not expired), in which case the start stops
with `DuplicateBrokerRegistration` naming the holder — Kafka's
DUPLICATE_BROKER_REGISTRATION. The heartbeat then renews the lease every
`broker.heartbeat.interval.ms` and reads the live brokers (what Metadata and
DescribeCluster list) in the same transaction, on the store's companion (its own
connection and thread with PostgreSQL, so a long transaction of the broker's never
delays a renewal). A heartbeat that fails is retried at the next interval; one that
finds the row taken by a newer incarnation calls `on_lost`: this process must stop.
A clean stop marks the row stopped, so the id is free and the broker unlisted at once.

Each heartbeat also renews or takes the controller's lease (RFC 0004 §2: the first
broker whose heartbeat finds it expired takes it, with the next controller epoch) and
reads the change generations; `changed` is set when one of them moved, for the
reconciler and the topic table to catch up. On PostgreSQL a commit that moves one also
wakes every broker's registry (metadata/postgres_listener.py), which then heartbeats at
once instead of at the end of its interval: other brokers see a change within
milliseconds, and the interval remains the fallback while notifications are lost.

A broker restarted after a crash (kill -9, power loss) finds its predecessor's lease
still live. The data directory records the incarnation that last registered from it
(`broker.incarnation`); since the broker holds the directory's lock before it registers,
that incarnation's process is gone, and its row is taken at once instead of refusing the
start until the lease lapses.

The dirty protocol's outage path (RFC 0004 §5) runs through the heartbeat: while this
broker is the only live one, its heartbeat sets its row's `unmarked_acks` flag (every
partition it leads then counts as dirty to claims and failover), and for one lease from
that heartbeat's sending, less a heartbeat interval of margin, `may_ack_unmarked` lets
storage acknowledge records of a clean partition whose mark it cannot write. Each
heartbeat writes the marks owed first, in its own transaction; one that clears the flag
(another broker is live) closes the window before it is sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from contextplane.clock import SystemClock
from contextplane.failure_episode import FailureEpisode
from contextplane.metadata.records import (
    BrokerEndpoint,
    BrokerRecord,
    ClusterHeartbeat,
    ControllerRecord,
)
from contextplane.metadata.store import MetadataStore
from contextplane.settings import Settings

log = logging.getLogger(__name__)

INCARNATION_COUNTER = "broker_incarnation"
INCARNATION_FILE = "broker.incarnation"
# Woken heartbeats (a change announced by another broker) start at least this far apart.
WOKEN_GAP_S = 0.05


class OwedMarks(Protocol):
    """The dirty marks storage owes (storage/wal_dirty.py `DirtyMarks`)."""

    def owed(self) -> dict[int, int]: ...

    def owed_written(self, owed: dict[int, int], marked: frozenset[int]) -> None: ...


class DuplicateBrokerRegistration(RuntimeError):
    """Another live broker holds this node.id (the message names it and its lease)."""


class Registry:
    def __init__(
        self, metadata: MetadataStore, settings: Settings, on_lost: Callable[[], None]
    ) -> None:
        self._metadata = metadata
        self._heartbeats = metadata.companion()
        self._node_id = settings.node_id
        self._rack = settings.broker_rack
        self._wal_url = settings.wal_url or None  # another broker recovers an object WAL
        self._zone_proxy = settings.zone_produce_proxy_enable  # peers name it a stand-in
        self._interval_s = settings.broker_heartbeat_interval_ms / 1000
        self._session_ms = settings.broker_session_timeout_ms
        self._on_lost = on_lost
        self._incarnation_file = settings.data_dir / INCARNATION_FILE
        self.incarnation = -1
        # The live brokers as of the last heartbeat, by node id; `generation` moves
        # whenever that list changes (caches of Metadata answers watch it).
        self.brokers: list[BrokerRecord] = []
        self.live_ids: frozenset[int] = frozenset()
        # Those of them offered to clients and peers: bound (`BrokerRecord.bound`).
        self.reachable_ids: frozenset[int] = frozenset()
        self.generation = 0
        # The controller as of the last heartbeat (node -1: none yet), and the change
        # generations it read; `changed` is set whenever those move, `security_changed`
        # too when `generation.security` did (its reload does not wait for partitions).
        self.controller = ControllerRecord(-1, 0)
        self.topics_generation = 0
        self.assignment_generation = 0
        self.security_generation = 0
        self.changed = asyncio.Event()
        self.security_changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Set by a committed change another broker announced: heartbeat now.
        self._woken = asyncio.Event()
        self._last_beat_s = 0.0  # when the last heartbeat started (the loop's clock)
        self.listener = metadata.change_listener(self._woken.set)
        # Since when every heartbeat of this broker's has succeeded, none a session after
        # the one before (the monotonic clock; None: the last one failed), and when the
        # last one did. See `may_expire_brokers`.
        self._steady_since: int | None = None
        self._heard_ms: int | None = None
        self._clock = SystemClock()
        self._renewal = FailureEpisode(
            log,
            f"node {self._node_id}: lease renewal",
            f"retrying every {self._interval_s * 1000:.0f} ms",
            self._clock,
        )
        # Storage's owed marks, once it has opened (before: the flag is left as stored,
        # a predecessor's WAL not yet replayed). Until when (monotonic) records may be
        # acknowledged without their marks; None: not now.
        self.marks: OwedMarks | None = None
        self._unmarked_until: int | None = None
        # This broker's measured load as the JSON each heartbeat writes (cluster/load.py),
        # given once storage has opened: (the monotonic clock in seconds) -> document.
        self.load: Callable[[float], str] | None = None

    async def register(self, endpoints: tuple[BrokerEndpoint, ...]) -> None:
        """Take this node id for a new incarnation, or raise DuplicateBrokerRegistration."""
        self.incarnation = await self._metadata.next_counter(INCARNATION_COUNTER)
        registration = await self._metadata.register_broker(
            self._node_id,
            self.incarnation,
            self._rack,
            endpoints,
            self._session_ms,
            replaces=_recorded(self._incarnation_file),
            wal_url=self._wal_url,
            zone_proxy=self._zone_proxy,
        )
        if not registration.registered:
            holder = registration.broker
            self.incarnation = -1  # nothing of ours to deregister
            where = ", ".join(f"{e.host}:{e.port}" for e in holder.endpoints) or "no endpoint"
            raise DuplicateBrokerRegistration(
                f"node.id {self._node_id} is registered by a live broker at {where}"
                f" (incarnation {holder.incarnation}, lease valid for another"
                f" {holder.lease_remaining_ms} ms): give this broker another node.id,"
                " or stop that one"
            )
        _record(self._incarnation_file, self.incarnation)
        log.info(
            "registered as node %d (incarnation %d%s)",
            self._node_id,
            self.incarnation,
            ", draining: undrain it to place partitions here"
            if registration.broker.state == "draining"
            else "",
        )
        # The first heartbeat at once: the controller's lease is taken at start.
        beat = await self._metadata.cluster_heartbeat(
            self._node_id, self.incarnation, self._session_ms, self._controller_epoch()
        )
        if beat is None:
            self._lost()
            return
        self._heard(beat)
        # Renewals start now: opening the partitions may take longer than the lease.
        if self._heartbeats is not self._metadata:
            await self._heartbeats.open()
        self._task = asyncio.create_task(self._run(), name="broker-heartbeat")
        if self.listener is not None:
            self.listener.start()

    async def publish(self, endpoints: tuple[BrokerEndpoint, ...]) -> None:
        """Publish the endpoints the listeners bound (a port 0 is known only then)."""
        if not await self._metadata.set_broker_endpoints(
            self._node_id, self.incarnation, endpoints
        ):
            self._lost()
            return
        self._update(await self._metadata.live_brokers())

    @property
    def is_controller(self) -> bool:
        return self.controller.node_id == self._node_id and self.incarnation >= 0

    def may_expire_brokers(self) -> bool:
        """Whether the controller may declare lapsed leases dead (RFC 0004 §5): only once
        its own heartbeats have reached the store for one full session, since it
        registered or since its last failed (or a session late) heartbeat. After an
        outage of the store every lease has lapsed at once; by then every broker that
        is alive has renewed its own. A broker that was steady for that long before it
        took the controller over (its predecessor died) may expire at once: the store
        was reachable all along, and a lease that lapsed meanwhile was not renewed."""
        steady = self._steady_since
        return (
            self.is_controller
            and steady is not None
            and self._clock.monotonic_ms() - steady >= self._session_ms
        )

    def may_ack_unmarked(self) -> bool:
        """Whether storage may acknowledge a record whose dirty mark it cannot write: the
        last heartbeat that reached the store set this broker's `unmarked_acks` flag,
        and the lease it renewed is certainly still valid by this broker's clock."""
        until = self._unmarked_until
        return until is not None and self._clock.monotonic_ms() < until

    def _controller_epoch(self) -> int:
        """The epoch this incarnation holds the controller at (-1: it does not)."""
        return self.controller.epoch if self.controller.node_id == self._node_id else -1

    async def stop(self) -> None:
        """Stop renewing and mark the row stopped (when it is still this incarnation's);
        a controller resigns, so another broker takes over at its next heartbeat."""
        if self.listener is not None:
            await self.listener.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            if self._heartbeats is not self._metadata:
                await self._heartbeats.close()
        if self.incarnation >= 0:
            held = self._controller_epoch()
            incarnation, self.incarnation = self.incarnation, -1
            self._unmarked_until = None
            owed = self.marks.owed() if self.marks is not None else None
            try:
                if held >= 0:
                    await self._metadata.resign_controller(self._node_id, held)
                await self._metadata.deregister_broker(self._node_id, incarnation, owed)
            except Exception as exc:  # the lease then lapses by itself
                log.warning("node %d: could not deregister (%s)", self._node_id, exc)

    async def _run(self) -> None:
        while True:
            await self._next_beat()
            owed, unmarked = self._outage_path()
            sent_ms = self._clock.monotonic_ms()
            try:
                # Bounded: a renewal still unanswered after a session is a failed one.
                async with asyncio.timeout(self._session_ms / 1000):
                    beat = await self._heartbeats.cluster_heartbeat(
                        self._node_id,
                        self.incarnation,
                        self._session_ms,
                        self._controller_epoch(),
                        owed,
                        unmarked,
                        self._load_document(sent_ms),
                    )
            except Exception as exc:
                self._steady_since = None
                self._renewal.failed(exc)
                continue
            self._renewal.worked()
            if beat is None:
                self._lost()
                return
            if self.marks is not None and owed is not None:
                self.marks.owed_written(owed, beat.owed_marked)
            if unmarked:
                # The lease runs from the transaction's time, after `sent_ms`; one
                # interval of margin for the acknowledgement's own way out.
                self._unmarked_until = sent_ms + self._session_ms - int(self._interval_s * 1000)
            self._heard(beat)

    async def _next_beat(self) -> None:
        """Wait for the interval to end or a change to be announced, whichever first. A
        burst of announcements costs at most two reads: those that arrive while a read
        runs all set the one event, and the next read covers them together. Woken
        heartbeats start at least WOKEN_GAP_S apart: a client repeating a cheap change
        (a group config, a topic created and deleted) wakes every broker each time, and
        each heartbeat is a write and a reconciler pass on every one of them."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._interval_s):
                await self._woken.wait()
            gap_s = self._last_beat_s + WOKEN_GAP_S - loop.time()
            if gap_s > 0:
                await asyncio.sleep(gap_s)
        except TimeoutError:
            pass
        # Cleared before the read: a commit announced after it wakes the next one.
        self._woken.clear()
        self._last_beat_s = loop.time()

    def _load_document(self, now_ms: int) -> str | None:
        """The load to publish (None: none measured yet, the row's left as it is)."""
        if self.load is None:
            return None
        try:
            return self.load(now_ms / 1000)
        except Exception as exc:  # noqa: BLE001 - the lease matters more than the load
            log.warning("node %d: measuring the load failed (%r)", self._node_id, exc)
            return None

    def _outage_path(self) -> tuple[dict[int, int] | None, bool | None]:
        """What the next heartbeat writes of the outage path: the marks owed, and the
        `unmarked_acks` flag (None: left as stored). The flag is set only while this
        broker is the only live one: with another, a claimer could miss a record
        acknowledged without its mark, so the window closes before a heartbeat that
        clears it is sent."""
        if self.marks is None or not self._metadata.shared:
            return None, None
        alone = self.live_ids <= {self._node_id}
        if not alone:
            self._unmarked_until = None
        return self.marks.owed(), alone

    def _heard(self, beat: ClusterHeartbeat) -> None:
        self._update(beat.brokers)
        if beat.controller != self.controller:
            if beat.controller.node_id == self._node_id:
                log.info(
                    "node %d is the controller (epoch %d)", self._node_id, beat.controller.epoch
                )
            elif self.controller.node_id == self._node_id:
                log.warning(
                    "node %d is no longer the controller (node %d took it, epoch %d)",
                    self._node_id,
                    beat.controller.node_id,
                    beat.controller.epoch,
                )
            self.controller = beat.controller
            self.generation += 1  # Metadata and DescribeCluster name the controller
        now_ms = self._clock.monotonic_ms()
        # A heartbeat a session after the one before (a paused process, a stalled loop)
        # counts as a failed one: the store may have been out meanwhile, unseen.
        if (
            self._steady_since is None
            or self._heard_ms is None
            or now_ms - self._heard_ms > self._session_ms
        ):
            self._steady_since = now_ms
        self._heard_ms = now_ms
        if (beat.topics_generation, beat.assignment_generation, beat.security_generation) != (
            self.topics_generation,
            self.assignment_generation,
            self.security_generation,
        ):
            if beat.security_generation != self.security_generation:
                self.security_changed.set()
            self.topics_generation = beat.topics_generation
            self.assignment_generation = beat.assignment_generation
            self.security_generation = beat.security_generation
            self.changed.set()

    def _update(self, live: list[BrokerRecord]) -> None:
        # The lease left changes at every read: compare what clients are told.
        if [_listed(b) for b in live] != [_listed(b) for b in self.brokers]:
            self.generation += 1
        self.brokers = live
        self.live_ids = frozenset(b.node_id for b in live)
        self.reachable_ids = frozenset(b.node_id for b in live if b.bound)

    def _lost(self) -> None:
        # The row is no longer this incarnation's: its lease expired (the process paused
        # or cut off past the session) and the controller gave its partitions to others,
        # or a new incarnation of the node id took it then. Either way it is fenced.
        log.error(
            "node %d: incarnation %d no longer holds its registration: its lease lapsed"
            " (paused or cut off longer than broker.session.timeout.ms=%d) and others lead"
            " its partitions, or a newer start of node.id %d took it over; stopping (start"
            " it again to rejoin)",
            self._node_id,
            self.incarnation,
            self._session_ms,
            self._node_id,
        )
        self._on_lost()


def _listed(broker: BrokerRecord) -> tuple[int, str | None, tuple[BrokerEndpoint, ...], bool]:
    """What Metadata's cached answers depend on: a change moves the generation. The zone
    proxy's flag too: stand-ins are named from it (broker/zone_proxy.py)."""
    return broker.node_id, broker.rack, broker.endpoints, broker.zone_proxy


def _recorded(path: Path) -> int:
    """The incarnation that last registered from this data directory (-1: none)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return -1


def _record(path: Path, incarnation: int) -> None:
    """Remember this incarnation in the data directory; without it (a full disk) a restart
    after a crash waits for the lease instead of taking the row at once."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text(f"{incarnation}\n")
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("could not record incarnation %d in %s (%s)", incarnation, path, exc)
