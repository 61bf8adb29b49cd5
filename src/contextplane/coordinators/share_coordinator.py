"""The share coordinator (KIP-932): the async shell around share-group membership
(`ShareGroupMachine`), the share partitions (`SharePartition`) and the share sessions.

A share group's membership is served by its `__consumer_offsets` shard's leader, loaded
and dropped with the shard (share_shards.py; members' sessions timed from the load, so
they heartbeat on without rejoining), each save fenced by the shard's leader epoch. Share
partitions are in the metadata store too, loaded at start (the inter-broker share state
APIs are not served; RFC 0008 §2). A membership change is saved before the heartbeat
that made it is answered (a timer's expiry by the timer task), a share partition's
before the ShareFetch / ShareAcknowledge that made it. A timer task expires members'
sessions and records' locks. As in Kafka 4.4, membership and share sessions are apart:
a member that leaves or expires keeps its share session and the records it acquired,
which go back when the session closes (epoch -1, its connection dropped) or their locks
expire.

Every method runs on the event loop thread and changes state without awaiting in the
middle, so nothing needs a lock; only saves await.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from contextplane.clock import Clock, SystemClock
from contextplane.coordinators.share_group import (
    PartitionCounts,
    ShareGroupConfig,
    ShareGroupMachine,
    ShareHeartbeat,
    heartbeat_error,
)
from contextplane.coordinators.share_group_configs import OffsetReset, ShareGroupValues
from contextplane.coordinators.share_partition import Run, SharePartition, Undeliverable
from contextplane.coordinators.share_sessions import ShareSessions
from contextplane.coordinators.share_shards import ShareKey, ShareShards
from contextplane.coordinators.share_stored import encode
from contextplane.errors import CoordinatorFenced
from contextplane.metadata.records import StoredSharePartition
from contextplane.metadata.store import MetadataStore, MetadataStoreUnavailable
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings
from contextplane.tasks import cancel_and_wait, log_round_failure

log = logging.getLogger(__name__)

# Copies undeliverable records to their groups' dead-letter topics (KIP-1191), durably;
# raises when it could not (the records are offered to it again at the next save).
DeadLetterSink = Callable[[list[tuple[ShareKey, list[Undeliverable]]]], Awaitable[None]]

# How soon changes a timer made (expired locks) that could not be saved are tried again.
_SAVE_RETRY_MS = 1_000


@dataclass(frozen=True, slots=True)
class ShareConfig:
    """Kafka's `group.share.*` broker settings."""

    group: ShareGroupConfig = ShareGroupConfig()
    record_lock_duration_ms: int = 30_000
    delivery_count_limit: int = 5
    partition_max_record_locks: int = 2_000
    max_share_sessions: int = 2_000


def share_config(settings: Settings) -> ShareConfig:
    return ShareConfig(
        ShareGroupConfig(
            session_timeout_ms=settings.group_share_session_timeout_ms,
            heartbeat_interval_ms=settings.group_share_heartbeat_interval_ms,
            max_size=settings.group_share_max_size,
            assignment_interval_ms=settings.group_share_assignment_interval_ms,
        ),
        record_lock_duration_ms=settings.group_share_record_lock_duration_ms,
        delivery_count_limit=settings.group_share_delivery_count_limit,
        partition_max_record_locks=settings.group_share_partition_max_record_locks,
        max_share_sessions=settings.group_share_max_share_sessions,
    )


class ShareCoordinator(ShareShards):
    def __init__(
        self,
        store: MetadataStore,
        config: ShareConfig | None = None,
        clock: Clock | None = None,
        group_values: Callable[[str], ShareGroupValues] | None = None,
    ) -> None:
        """`group_values`: a share group's own configs (`GroupConfigs.share_values`);
        without it every group runs with the broker's settings."""
        self._store = store
        self.config = config or ShareConfig()
        clock = clock or SystemClock()
        self.now_ms = clock.monotonic_ms
        self._group_values = group_values
        self.groups = ShareGroupMachine(
            self.now_ms,
            self.config.group,
            self._timing,
            lambda group_id: self.values(group_id).assignment_interval_ms,
        )
        self.partitions: dict[ShareKey, SharePartition] = {}
        self.sessions = ShareSessions(self.config.max_share_sessions)
        self._saved_epochs: dict[ShareKey, int] = {}
        # The share partitions a save or the timer must look at: those handed out or
        # changed since their last save, and those that may hold locks. Never all of them:
        # a broker keeps every share partition it served, idle ones by the thousand.
        self._dirty: set[ShareKey] = set()
        self._locked: set[ShareKey] = set()
        self._partition_counts: PartitionCounts = lambda _topic: 0
        self._existing_topics: Callable[[], Collection[str]] | None = None
        self._wake: asyncio.Event | None = None
        # Resolved when records may have become available again (ShareFetch long polls).
        self._released: set[asyncio.Future[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self.dead_letters: DeadLetterSink | None = None
        # One save at a time: a save must not store an archive whose dead-letter copy
        # another save is still writing.
        self._saving = asyncio.Lock()
        # Membership: one save at a time, the value each group last stored, the groups
        # not stored yet, and those heartbeated here since start (on a store other
        # brokers share, only their expiries are written: every broker loads every group).
        self._saving_groups = asyncio.Lock()
        self._stored_groups: dict[str, bytes] = {}
        self._unsaved_groups: set[str] = set()
        self._served: set[str] = set()
        self.shards = None
        self._refuse = None
        # Share partition -> the (stream, leader epoch) of the topic partition it is served
        # under here, and the reads of share partitions under way (`lead`).
        self._leads: dict[ShareKey, tuple[int, int]] = {}
        self._leading: dict[ShareKey, asyncio.Future[None]] = {}

    # -- a group's own configs ----------------------------------------------------------

    def values(self, group_id: str) -> ShareGroupValues:
        """What the group runs with: its configs, else the broker's settings."""
        if self._group_values is not None:
            return self._group_values(group_id)
        return ShareGroupValues(
            self.config.group.session_timeout_ms,
            self.config.group.heartbeat_interval_ms,
            self.config.record_lock_duration_ms,
            OffsetReset("latest"),
            False,
            self.config.delivery_count_limit,
            self.config.partition_max_record_locks,
            assignment_interval_ms=self.config.group.assignment_interval_ms,
        )

    def _timing(self, group_id: str) -> tuple[int, int]:
        values = self.values(group_id)
        return values.session_timeout_ms, values.heartbeat_interval_ms

    # -- lifecycle ----------------------------------------------------------------------

    async def start(
        self,
        partition_counts: PartitionCounts,
        existing_topics: Callable[[], Collection[str]] | None = None,
    ) -> None:
        """`existing_topics`: the names of the topics there are, now (session expiry
        reassigns from them)."""
        self._partition_counts = partition_counts
        self._existing_topics = existing_topics
        await self._load_groups(self._wanted())
        # Following shards, each share partition is read when its topic partition's
        # leader here first serves it (`lead`); alone, all are loaded now.
        for stored in [] if self.shards is not None else await self._store.share_partitions():
            self._load_partition(stored)
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run_timers(), name="share-coordinator-timers")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def kick(self) -> None:
        """Wake the timer task: a change may have set an earlier deadline (a lock)."""
        if self._wake is not None:
            self._wake.set()

    def _next_deadline(self) -> int | None:
        deadlines = [self.groups.next_deadline()]
        held = [(k, p.next_deadline()) for k, p in self._held(self._locked)]
        self._locked = {k for k, deadline in held if deadline is not None}
        deadlines += [deadline for _, deadline in held]
        if self._unsaved() or self._unsaved_groups:
            deadlines.append(self.now_ms() + _SAVE_RETRY_MS)
        return min((d for d in deadlines if d is not None), default=None)

    async def _run_timers(self) -> None:
        assert self._wake is not None
        while True:
            try:
                existing = self._existing_topics() if self._existing_topics else None
                # An expired member's share session and records stay, as at a leave.
                self.groups.expire_sessions(self._partition_counts, existing)
                self._take_group_changes(timer=True)
                await self.save_groups()
                now = self.now_ms()
                expired = [k for k, p in self._held(self._locked) if p.expire_locks(now)]
                if expired:
                    self._dirty.update(expired)
                    self.notify_released()
                await self.save()
            except Exception as exc:  # noqa: BLE001 - the next deadline retries
                log_round_failure(log, "share coordinator timer", exc)
            deadline = self._next_deadline()
            self._wake.clear()
            delay_s = 60.0 if deadline is None else max(0.0, (deadline - self.now_ms()) / 1000)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay_s):
                    await self._wake.wait()

    # -- membership ---------------------------------------------------------------------

    async def heartbeat(
        self,
        request: ShareHeartbeat,
        partition_counts: PartitionCounts,
        topics_version: int | None = None,
        existing: Collection[str] | None = None,
    ) -> dict[str, Any]:
        """The heartbeat's answer, once what it changed is stored (COORDINATOR_NOT_AVAILABLE
        when the store refused: the member retries, the change is kept and saved by the
        timer task, and a retry at the epoch the member had is accepted)."""
        if self._task is None:
            return heartbeat_error(ErrorCode.coordinator_not_available)
        if (refused := self.refused(request.group_id)) is not None:
            return heartbeat_error(refused)
        self._partition_counts = partition_counts
        response, _left = self.groups.heartbeat(request, partition_counts, topics_version, existing)
        if self.groups.group(request.group_id) is not None:
            self._served.add(request.group_id)
        self.kick()
        self._take_group_changes()
        saved = await self.save_groups()
        # A leave leaves the member's share session and the records it holds alone, as
        # Kafka 4.4 does: they go back when the session closes (epoch -1, its connection
        # dropped) or their locks expire. librdkafka 2.16 sends its last ShareAcknowledge
        # beside the leave, on another connection: it must still find the session.
        if not saved:  # NOT_COORDINATOR when the save found the shard fenced
            refused = self.refused(request.group_id) or ErrorCode.coordinator_not_available
            return heartbeat_error(refused)
        return response

    def _take_group_changes(self, timer: bool = False) -> None:
        changed = self.groups.take_changed()
        if timer and self._store.shared:
            changed &= self._served
        self._unsaved_groups |= changed

    def _stored(self, group_id: str) -> bool:
        group = self.groups.group(group_id)
        value = None if group is None else encode(group)
        return value == self._stored_groups.get(group_id)

    async def save_groups(self) -> bool:
        """Store the membership of every group changed since its last save (deleting
        those gone); False if the store refused (kept to be saved by the timer task)."""
        if not self._unsaved_groups:
            return True  # a steady heartbeat: nothing to write, nothing to wait for
        async with self._saving_groups:
            # Groups whose shard left meanwhile are their new coordinator's to store.
            served, fences = self._fences(sorted(self._unsaved_groups))
            self._unsaved_groups &= set(served)
            writes: dict[str, bytes | None] = {}
            for group_id in served:
                group = self.groups.group(group_id)
                value = None if group is None else encode(group)
                if value != self._stored_groups.get(group_id):
                    writes[group_id] = value
            if writes:
                try:
                    await self._store.save_share_groups(writes, fences)
                except CoordinatorFenced as fenced:
                    # Another broker leads a shard now: the group coordinator unloads it
                    # (and, through `unload_shard`, its share groups).
                    log.warning("share groups: %s; unloading the shard", fenced)
                    if self.shards is not None:
                        self.shards.on_fenced(fenced.stream_id)
                    return False
                except Exception as exc:  # noqa: BLE001 - retried by the timer task
                    log_round_failure(log, "saving share group membership", exc)
                    self.kick()
                    return False
            for group_id, value in writes.items():
                if value is None:
                    self._stored_groups.pop(group_id, None)
                else:
                    self._stored_groups[group_id] = value
            # Unsaved no more only if nothing changed it while the write awaited.
            self._unsaved_groups = {g for g in self._unsaved_groups if not self._stored(g)}
            return True

    def connection_lost(self, key: tuple[str, str], owner: object) -> None:
        """The connection that opened a share session is gone: the session closes and
        its member's records are offered to others at once, as Kafka does."""
        session = self.sessions.sessions.get(key)
        if session is not None and session.owner is owner:
            self.sessions.close(key)
            self.release(*key)

    def release(self, group_id: str, member_id: str) -> None:
        mine = [k for k in self._locked if k[0] == group_id]  # only those hold records
        self._dirty.update(k for k, p in self._held(mine) if p.release_member(member_id))
        self.notify_released()
        self.kick()

    def released_waiter(self) -> asyncio.Future[None]:
        """Resolved at the next release, expiry or acknowledgement (a cancelled one is
        forgotten at once: waiters are bounded by the long polls waiting)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._released.add(waiter)
        waiter.add_done_callback(self._released.discard)
        return waiter

    def notify_released(self) -> None:
        for waiter in list(self._released):
            if not waiter.done():
                waiter.set_result(None)
        self._released.clear()

    # -- share partitions ---------------------------------------------------------------

    def partition(self, key: ShareKey, start_offset: int) -> SharePartition:
        """The share partition, created at `start_offset` (where
        `share.auto.offset.reset` puts a partition the group never fetched); from now on
        it runs with the group's current `share.record.lock.duration.ms`,
        `share.delivery.count.limit` and `share.partition.max.record.locks` (Kafka reads
        them at each use: a lowered limit holds from the next release, a lowered lock
        bound from the next acquisition)."""
        values = self.values(key[0])
        partition = self.partitions.get(key)
        if partition is None:
            partition = self.partitions[key] = SharePartition(
                start_offset,
                values.delivery_count_limit,
                values.partition_max_record_locks,
                values.record_lock_duration_ms,
            )
            partition.state_epoch = 1
        _run_with(partition, values)
        self._dirty.add(key)  # the caller may change it: acquire, acknowledge, move start
        self._locked.add(key)
        return partition

    def existing(self, key: ShareKey) -> SharePartition | None:
        """The share partition if there is one, running with the group's current configs
        (as `partition`)."""
        partition = self.partitions.get(key)
        if partition is not None:
            _run_with(partition, self.values(key[0]))
            self._dirty.add(key)
            self._locked.add(key)
        return partition

    def _loaded(self, stored: StoredSharePartition) -> SharePartition:
        values = self.values(stored.group_id)
        partition = SharePartition.load(
            stored.start_offset,
            [Run(*run) for run in stored.runs],  # type: ignore[arg-type]
            values.delivery_count_limit,
            values.partition_max_record_locks,
            values.record_lock_duration_ms,
        )
        partition.state_epoch = stored.state_epoch
        return partition

    def _load_partition(self, stored: StoredSharePartition) -> None:
        key = (stored.group_id, stored.topic, stored.partition)
        self.partitions[key] = self._loaded(stored)
        self._saved_epochs[key] = stored.state_epoch

    async def described_partitions(
        self, group_ids: Collection[str]
    ) -> dict[ShareKey, SharePartition]:
        """The share partitions of `group_ids` for DescribeShareGroupOffsets: those held
        here (newer than the store's until saved), and the others as stored, unheld: a
        partition is read when its topic partition's leader first serves it, so after a
        restart, or while another broker leads it, only the store has it.
        MetadataStoreUnavailable when the store does not answer."""
        wanted = set(group_ids)
        found = {key: p for key, p in self.partitions.items() if key[0] in wanted}
        for stored in await self._store.share_partitions():
            key = (stored.group_id, stored.topic, stored.partition)
            if stored.group_id in wanted and key not in found:
                found[key] = self._loaded(stored)
        return found

    def _held(self, keys: Collection[ShareKey]) -> list[tuple[ShareKey, SharePartition]]:
        """The share partitions of `keys` still held (one may have gone meanwhile)."""
        return [(k, p) for k in list(keys) if (p := self.partitions.get(k)) is not None]

    def _unsaved(self) -> list[ShareKey]:
        return [
            key
            for key, partition in self._held(self._dirty)
            if self._saved_epochs.get(key) != partition.state_epoch
        ]

    async def save(self) -> bool:
        """Write every share partition changed since its last save, after copying the
        records it archived as undeliverable to the dead-letter topics (so a crash between
        the two can repeat a copy, never lose one); False if either refused (the changes
        stay to be saved by the timer task)."""
        async with self._saving:
            return await self._save()

    async def _copy_undeliverable(self) -> bool:
        taken = [(key, p.take_undeliverable()) for key, p in self._held(self._dirty)]
        taken = [(key, records) for key, records in taken if records]
        if not taken or self.dead_letters is None:
            return True
        try:
            await self.dead_letters(taken)
        except Exception as exc:  # noqa: BLE001 - any failure is retried at the next save
            log_round_failure(log, "copying undeliverable share records", exc)
            for key, records in taken:
                partition = self.partitions.get(key)
                if partition is not None:
                    partition.undeliverable[:0] = records
            self.kick()
            return False
        return True

    async def _save(self) -> bool:
        if not await self._copy_undeliverable():
            return False
        keys = self._unsaved()
        if not keys:
            self._dirty.clear()  # saved, their dead letters copied
            return True
        writes = []
        for key in keys:
            partition = self.partitions[key]
            runs = [
                (r.first_offset, r.last_offset, int(r.state), r.delivery_count)
                for r in partition.runs()
            ]
            writes.append(
                StoredSharePartition(*key, partition.start_offset, partition.state_epoch, runs)
            )
        fences = {self._leads[key] for key in keys if key in self._leads}
        try:
            await self._store.save_share_partitions(writes, fences)
        except CoordinatorFenced as fenced:
            self._lost_lead(fenced.stream_id)
            self.kick()
            return False
        except MetadataStoreUnavailable:
            self.kick()
            return False
        for write in writes:
            key = (write.group_id, write.topic, write.partition)
            # A later change made during the await is saved by the next save.
            self._saved_epochs[key] = max(self._saved_epochs.get(key, 0), write.state_epoch)
        # Clean now unless changed (or given dead letters) while the write awaited.
        self._dirty = {
            k
            for k, p in self._held(self._dirty)
            if self._saved_epochs.get(k) != p.state_epoch or p.undeliverable
        }
        return True

    async def on_topic_deleted(self, topic: str) -> None:
        """A deleted topic's share partitions go, from memory, sessions and the store (a
        topic created again under the name starts afresh)."""
        for key in [k for k in self.partitions if k[1] == topic]:
            del self.partitions[key]
            self._saved_epochs.pop(key, None)
        for session in self.sessions.sessions.values():
            session.partitions = {p for p in session.partitions if p[0] != topic}
        await self._store.delete_share_topic_state(topic)

    def knows(self, group_id: str) -> bool:
        """A share group with members or with share-partition state (a group stored
        before membership was is known by its state until members return)."""
        return self.groups.group(group_id) is not None or any(
            key[0] == group_id for key in self.partitions
        )

    async def delete_group(self, group_id: str) -> ErrorCode:
        """DeleteGroups of a share group: refused while it has members (as Kafka), else
        its share-partition state goes from the store, then from memory."""
        if (refused := self.refused(group_id)) is not None:
            return refused
        group = self.groups.group(group_id)
        if group is not None and group.members:
            return ErrorCode.non_empty_group
        try:
            await self._store.delete_share_group_state(group_id)
        except MetadataStoreUnavailable:
            return ErrorCode.coordinator_not_available  # retriable: nothing was deleted
        self.groups.remove_group(group_id)
        self._served.discard(group_id)
        self._take_group_changes()
        await self.save_groups()  # a refusal is retried by the timer task
        for key in [k for k in self.partitions if k[0] == group_id]:
            del self.partitions[key]
            self._saved_epochs.pop(key, None)
        for key in [k for k in self.sessions.sessions if k[0] == group_id]:
            self.sessions.close(key)
        return ErrorCode.none

    # -- share-group offsets (admin) ----------------------------------------------------

    def has_members(self, group_id: str) -> bool:
        group = self.groups.group(group_id)
        return group is not None and bool(group.members)

    async def alter_offsets(self, group_id: str, starts: dict[tuple[str, int], int]) -> ErrorCode:
        """AlterShareGroupOffsets: each named share partition starts afresh at its new
        SPSO, its in-flight records dropped. Only for a group without members (as Kafka:
        NON_EMPTY_GROUP); stored before the answer (COORDINATOR_NOT_AVAILABLE, retriable,
        when the store refuses: nothing changed)."""
        if self.has_members(group_id):
            return ErrorCode.non_empty_group
        writes = []
        for (topic, index), start in starts.items():
            key = (group_id, topic, index)
            current = self.partitions.get(key)
            epoch = (current.state_epoch if current is not None else 0) + 1
            writes.append(StoredSharePartition(group_id, topic, index, start, epoch, []))
        try:
            await self._store.save_share_partitions(writes)
        except MetadataStoreUnavailable:
            return ErrorCode.coordinator_not_available
        for write in writes:
            key = (group_id, write.topic, write.partition)
            values = self.values(group_id)
            fresh = SharePartition(
                write.start_offset,
                values.delivery_count_limit,
                values.partition_max_record_locks,
                values.record_lock_duration_ms,
            )
            # A change made while the save awaited is replaced: the alter is the latest.
            current = self.partitions.get(key)
            fresh.state_epoch = max(write.state_epoch, current.state_epoch if current else 0)
            self.partitions[key] = fresh
            self._saved_epochs[key] = write.state_epoch
            self._dirty.add(key)
        self.groups.ensure_group(group_id)
        self.groups.initialize(group_id, starts)
        self._take_group_changes()
        await self.save_groups()  # a refusal is retried by the timer task
        self.kick()
        return ErrorCode.none

    async def delete_offsets(self, group_id: str, topics: Collection[str]) -> ErrorCode:
        """DeleteShareGroupOffsets: the topics' share partitions go from the store, then
        memory; a group with members keeps them (NON_EMPTY_GROUP)."""
        if self.has_members(group_id):
            return ErrorCode.non_empty_group
        names = set(topics)
        if not names:
            return ErrorCode.none
        try:
            await self._store.delete_share_group_state(group_id, sorted(names))
        except MetadataStoreUnavailable:
            return ErrorCode.coordinator_not_available
        for key in [k for k in self.partitions if k[0] == group_id and k[1] in names]:
            del self.partitions[key]
            self._saved_epochs.pop(key, None)
        self.groups.uninitialize(group_id, names)
        self._take_group_changes()
        await self.save_groups()  # a refusal is retried by the timer task
        return ErrorCode.none

    # -- describe and list --------------------------------------------------------------

    def describe(self, group_id: str) -> dict[str, Any] | None:
        return self.groups.describe(group_id)

    def list_groups(self, states_filter: Any = (), types_filter: Any = ()) -> list[dict[str, Any]]:
        return self.groups.list_groups(states_filter, types_filter)


def _run_with(partition: SharePartition, values: ShareGroupValues) -> None:
    partition.lock_duration_ms = values.record_lock_duration_ms
    partition.delivery_limit = values.delivery_count_limit
    partition.max_in_flight = values.partition_max_record_locks
