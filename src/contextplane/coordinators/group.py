"""The group coordinator: the async shell around `GroupStateMachine`.

It owns what the pure machine does not: one asyncio task that fires the machine's timers
when they are due, asyncio futures for parked JoinGroup / SyncGroup requests, and the
committed offsets, which live in the metadata store so that they survive a restart
(committed_offsets.py; which member may commit is decided here).
Classic groups are stored where Kafka writes their GroupMetadataValue
(`ClassicGroupSaver`) and loaded at start Stable at their generation, so members go on
heartbeating; a group known only from its committed offsets is loaded as Empty. KIP-848
consumer groups are stored whole (`ConsumerGroupSaver`): loaded at start, each change
saved before the heartbeat that names it is answered.

Groups of both protocols live here: classic ones in `GroupStateMachine`, KIP-848 consumer
groups in `ConsumerGroupMachine`. A group id is one or the other: an Empty group of one
kind becomes the other kind when a member of the other protocol joins it (Kafka's
upgrade and downgrade of empty groups); one with members converts as Kafka's online
upgrade and downgrade allow (group_conversion.py).

Every method runs on the event loop thread and never awaits in the middle of a state
change, so the machine needs no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from contextplane.clock import Clock, SystemClock
from contextplane.coordinators.classic_stored import ClassicGroupSaver
from contextplane.coordinators.committed_offsets import CommittedOffsets, OffsetCommitEntry
from contextplane.coordinators.consumer_group.group import ConsumerGroup
from contextplane.coordinators.consumer_group.machine import (
    ConsumerGroupMachine,
    PartitionCounts,
)
from contextplane.coordinators.consumer_group.messages import (
    ConsumerGroupConfig,
    ConsumerHeartbeat,
    heartbeat_error,
)
from contextplane.coordinators.consumer_group.regex import NO_TOPICS, RegexTopics
from contextplane.coordinators.consumer_group.views import (
    classic_view,
    describe_error,
    describe_group,
)
from contextplane.coordinators.consumer_group_regexes import RegexResolver
from contextplane.coordinators.consumer_group_saver import ConsumerGroupSaver
from contextplane.coordinators.group_configs import GroupConfigs
from contextplane.coordinators.group_conversion import GroupConversion
from contextplane.coordinators.group_loading import ShardLoading
from contextplane.coordinators.group_shards import GroupShards, ShardLeases
from contextplane.coordinators.group_state import (
    CoordinatorConfig,
    Group,
    GroupStateMachine,
    JoinRequest,
    SyncRequest,
    join_error,
    sync_error,
)
from contextplane.coordinators.group_state.stored import group_metadata
from contextplane.coordinators.group_state.views import describe_group_error
from contextplane.coordinators.offsets_journal import NoJournal, OffsetsJournal
from contextplane.errors import DependencyUnavailable, KafkaError
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings
from contextplane.tasks import cancel_and_wait, log_round_failure

log = logging.getLogger(__name__)
# How soon a consumer group's state that could not be saved is tried again.
_SAVE_RETRY_MS = 1_000

# Kafka's offsets.retention.check.interval.ms default: how often Empty groups without
# committed offsets are forgotten.
GROUP_CLEANUP_INTERVAL_MS = 600_000


class GroupCoordinator(ShardLoading):
    def __init__(
        self,
        store: MetadataStore,
        config: CoordinatorConfig,
        clock: Clock | None = None,
        journal: OffsetsJournal | None = None,
        consumer_config: ConsumerGroupConfig | None = None,
        settings: Settings | None = None,
        leases: ShardLeases | None = None,
    ) -> None:
        """`settings`: the broker's, bounding the groups' own configs. `leases`: the
        `__consumer_offsets` partitions led here (group_shards.py); None serves all."""
        self._store = store
        self.shards = GroupShards(leases)
        # Called with each shard loaded (the offsets topic's writer repairs its copy).
        self.shard_loaded: list[Callable[[int], Awaitable[None]]] = []
        # Called with each shard unloaded (the share coordinator drops its share groups).
        self.shard_unloaded: list[Callable[[int], None]] = []
        self._loading: dict[int, asyncio.Future[None]] = {}  # shards being loaded
        clock = clock or SystemClock()
        self._now_ms = clock.monotonic_ms
        self._wall_ms = clock.wall_ms
        self.offsets = CommittedOffsets(store, journal or NoJournal(), self._now_ms, self._wall_ms)
        self.state = GroupStateMachine(self._now_ms, config)
        self.state.set_group_stored_listener(self._group_stored)
        self.classic = ClassicGroupSaver(store, self.state, self._now_ms)
        self.consumer = ConsumerGroupMachine(self._now_ms, consumer_config)
        self.saver = ConsumerGroupSaver(store, self.consumer, self._now_ms)
        self.configs = GroupConfigs(store, self.consumer, settings)
        self.regexes = RegexResolver(self.consumer, lambda group_id: self.saver.save([group_id]))
        self.classic.shards = self.saver.shards = self.shards
        self.shards.on_fenced = self._fenced_stream
        self.conversion = GroupConversion(
            self.state, self.consumer, self.classic, self.saver, self._now_ms
        )
        self._wake: asyncio.Event | None = None
        # Saves of classic members' JoinGroups in consumer groups, answered when done.
        self._background: set[asyncio.Future[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._active = False
        self._next_cleanup_ms = 0
        # The deadline the timer task sleeps until, or None while it is not sleeping.
        self._sleeping_until: int | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.configs.load()
        await self._load(self.shards.led())
        self._wake = asyncio.Event()
        self._next_cleanup_ms = self._now_ms() + GROUP_CLEANUP_INTERVAL_MS
        self._active = True
        self._task = asyncio.create_task(self._run_timers(), name="group-coordinator-timers")

    async def stop(self) -> None:
        self._active = False
        await cancel_and_wait(self._task)
        self._task = None
        await self.regexes.stop()
        await self.classic.flush()
        self.state.shutdown(ErrorCode.not_coordinator)
        self.consumer.shutdown()

    def _group_stored(self, group: Group) -> None:
        metadata = group_metadata(group, self._wall_ms())
        self.classic.stored(group.group_id, metadata)
        self.offsets.journal.group_stored(group.group_id, metadata)

    @property
    def active(self) -> bool:
        return self._active

    def _kick(self) -> None:
        """Wake the timer task if a state change scheduled a timer earlier than the one it
        sleeps until (most changes, e.g. heartbeats, only push deadlines later); start the
        regex resolutions it asked for."""
        self.regexes.start_due()
        if self._wake is None or self._sleeping_until is None:
            return
        deadline = self._next_deadline()
        if deadline is not None and deadline < self._sleeping_until:
            self._wake.set()

    def _next_deadline(self) -> int | None:
        deadlines = [self.state.next_deadline(), self.consumer.next_deadline()]
        deadlines.append(self.classic.next_save_ms())
        if self.saver.unsaved:
            deadlines.append(self._now_ms() + _SAVE_RETRY_MS)
        return min((d for d in deadlines if d is not None), default=None)

    async def _run_timers(self) -> None:
        assert self._wake is not None
        while True:
            try:
                self.state.fire_due_timers()
                self.consumer.fire_due_timers()
                await self.conversion.downgrade_due()
                await self.classic.flush()
                self.saver.take_timer_changes()
                await self.saver.retry()
                if self._now_ms() >= self._next_cleanup_ms:
                    self._next_cleanup_ms = self._now_ms() + GROUP_CLEANUP_INTERVAL_MS
                    await self.cleanup_groups()
            except Exception as exc:  # noqa: BLE001 - the next deadline retries
                log_round_failure(log, "group coordinator timer", exc)
            deadline = self._next_deadline()
            deadline = (
                self._next_cleanup_ms if deadline is None else min(deadline, self._next_cleanup_ms)
            )
            self._wake.clear()
            delay_s = max(0.0, (deadline - self._now_ms()) / 1000)
            if delay_s == 0:
                await asyncio.sleep(0)
                continue
            self._sleeping_until = deadline
            try:
                # Not wait_for: on Python 3.11 it drops a cancellation that arrives as
                # the wake-up fires, and stop() would wait for this loop forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay_s):
                        await self._wake.wait()
            finally:
                self._sleeping_until = None

    async def cleanup_groups(self) -> list[str]:
        """Forget Empty groups that have no committed offsets (Kafka's periodic group
        metadata cleanup)."""
        candidates = self.state.removable_empty_groups() + self.consumer.removable_empty_groups()
        if not candidates:
            return []
        with_offsets = set(await self._store.groups_with_offsets())
        removed = [g for g in candidates if g not in with_offsets]
        for group_id in removed:
            self.classic.remove_group(group_id)
            self._forget_consumer_group(group_id)
        await self.saver.save(removed)
        await self.classic.flush()
        if removed:
            log.info("removed %d empty groups without offsets", len(removed))
        return removed

    def _waiter(self) -> tuple[asyncio.Future[dict[str, Any]], Callable[[dict[str, Any]], None]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def complete(response: dict[str, Any]) -> None:
            if not future.done():
                self.classic.answer(future, response)

        return future, complete

    # -- membership ---------------------------------------------------------------------

    def join_group(
        self,
        request: JoinRequest,
        partitions: PartitionCounts | None = None,
        topics_version: int | None = None,
        regex_topics: RegexTopics = NO_TOPICS,
    ) -> asyncio.Future[dict[str, Any]]:
        """`partitions`, `topics_version`, `regex_topics`: the topic table, as for a
        ConsumerGroupHeartbeat, for a classic member joining a consumer group."""
        future, waiter = self._waiter()
        if (refused := self._refused(request.group_id)) is not None:
            waiter(join_error(request.member_id, refused))
            return future
        consumer_group = self.consumer.group(request.group_id)
        if consumer_group is not None:
            if consumer_group.members:
                self._join_consumer_group(
                    consumer_group, request, waiter, partitions, topics_version, regex_topics
                )
                return future
            # Downgrade of an empty group; its rows are deleted by the timer task.
            self._forget_consumer_group(request.group_id)
            if self._wake is not None:
                self._wake.set()
        with self.classic.serving(request.group_id):
            self.state.join(request, waiter)
        self._kick()
        return future

    def _join_consumer_group(
        self,
        group: ConsumerGroup,
        request: JoinRequest,
        waiter: Callable[[dict[str, Any]], None],
        partitions: PartitionCounts | None,
        topics_version: int | None,
        regex_topics: RegexTopics,
    ) -> None:
        """A classic member in a consumer group (Kafka's compatible path): answered once
        the group's new state is saved."""
        config = self.state.config
        if (
            not config.session_timeout_ms_min
            <= request.session_timeout_ms
            <= config.session_timeout_ms_max
        ):
            waiter(join_error(request.member_id, ErrorCode.invalid_session_timeout))
            return
        if partitions is None:
            partitions = group.known_partitions()
        response = self.consumer.classic.join(
            group, request, partitions, topics_version, regex_topics
        )
        self._after_consumer_change(request.group_id, response, waiter)

    def _after_consumer_change(
        self,
        group_id: str,
        response: dict[str, Any],
        waiter: Callable[[dict[str, Any]], None],
    ) -> None:
        """Save the consumer group (or its downgrade) before the response leaves."""
        self.saver.served(group_id)
        self._kick()

        async def save_then_answer() -> None:
            await self.conversion.downgrade_due()
            saved = await self.saver.save([group_id])
            waiter(
                response
                if saved
                else {**response, "error_code": ErrorCode.coordinator_not_available}
            )

        task = asyncio.ensure_future(save_then_answer())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def sync_group(self, request: SyncRequest) -> asyncio.Future[dict[str, Any]]:
        future, waiter = self._waiter()
        if (refused := self._refused(request.group_id)) is not None:
            waiter(sync_error(refused))
            return future
        consumer_group = self.consumer.group(request.group_id)
        if consumer_group is not None:
            waiter(self.consumer.classic.sync(consumer_group, request))
            self._kick()
            return future
        with self.classic.serving(request.group_id):
            self.state.sync(request, waiter)
        self._kick()
        return future

    def heartbeat(
        self, group_id: str, member_id: str, generation_id: int, group_instance_id: str | None
    ) -> ErrorCode:
        if (refused := self._refused(group_id)) is not None:
            return refused
        consumer_group = self.consumer.group(group_id)
        if consumer_group is not None:
            target_epoch = consumer_group.assignment_epoch
            code = self.consumer.classic.heartbeat(
                consumer_group, member_id, generation_id, group_instance_id
            )
            self.saver.served(group_id)
            if consumer_group.assignment_epoch != target_epoch and self._wake is not None:
                # A new target: saved by the timer task, as a timer's change is.
                self.consumer.changed_by_timers.add(group_id)
                self._wake.set()
            self._kick()
            return code
        with self.classic.serving(group_id):
            code = self.state.heartbeat(group_id, member_id, generation_id, group_instance_id)
        self._kick()
        return code

    def leave_group(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[dict[str, Any]]]:
        if (refused := self._refused(group_id)) is not None:
            return refused, []
        consumer_group = self.consumer.group(group_id)
        if consumer_group is not None:
            result = self.consumer.classic.leave(consumer_group, members)
            # Saved by the timer task, as a timer's change (a leave needs no answer
            # that names the new state).
            self.consumer.changed_by_timers.add(group_id)
            if self._wake is not None:
                self._wake.set()
            return result
        with self.classic.serving(group_id):
            result = self.state.leave(group_id, members)
        self._kick()
        return result

    # -- offsets ------------------------------------------------------------------------

    async def commit_offsets(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        api_version: int,
        entries: list[OffsetCommitEntry],
    ) -> list[ErrorCode]:
        """One error code per entry, in order."""
        if (refused := self._refused(group_id)) is not None:
            return [refused] * len(entries)
        error = self._validate_commit(
            group_id, member_id, group_instance_id, generation_id, api_version, False
        )
        self._kick()
        if error is not None:
            return [error] * len(entries)
        ok, codes = await self._fenced_write(
            group_id, lambda fence: self.offsets.commit(group_id, entries, fence)
        )
        return codes if ok and codes is not None else [ErrorCode.not_coordinator] * len(entries)

    def _validate_commit(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        api_version: int,
        transactional: bool,
    ) -> ErrorCode | None:
        """The rules of the group's protocol; the generation is the member epoch for a
        consumer group (OffsetCommit v9+)."""
        consumer_group = self.consumer.group(group_id)
        if consumer_group is not None:
            return self.consumer.validate_offset_commit(
                consumer_group, member_id, group_instance_id, generation_id, api_version,
                transactional,
            )  # fmt: skip
        return self.state.validate_offset_commit(
            group_id, member_id, group_instance_id, generation_id, api_version, transactional
        )

    def validate_txn_offset_commit(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        api_version: int,
    ) -> None:
        """TxnOffsetCommit's member checks, as Kafka's group coordinator makes them
        (group_state/offsets.py); raises the error."""
        if (refused := self._refused(group_id)) is not None:
            raise KafkaError(refused)
        error = self._validate_commit(
            group_id, member_id, group_instance_id, generation_id, api_version, True
        )
        self._kick()
        if error is not None:
            raise KafkaError(error)

    async def fetch_offsets(
        self,
        group_id: str,
        topics: Iterable[tuple[str, Iterable[int]]] | None,
        member_id: str | None = None,
        member_epoch: int = -1,
    ) -> tuple[ErrorCode, list[dict[str, Any]]]:
        """(group error, topics) with partitions as OffsetFetch response dicts. `topics`
        None means every committed offset of the group. Unknown partitions get -1.
        OffsetFetch v9+ names the member of a consumer group, whose epoch is checked."""
        if (refused := self._refused(group_id)) is not None:
            return refused, []
        consumer_group = self.consumer.group(group_id)
        if consumer_group is not None:
            error = self.consumer.validate_offset_fetch(consumer_group, member_id, member_epoch)
            if error is not None:
                return error, []
        return await self.offsets.fetch(group_id, topics)

    async def delete_offsets(
        self, group_id: str, topics: list[tuple[str, list[int]]]
    ) -> tuple[ErrorCode, list[dict[str, Any]]]:
        """OffsetDelete: (top-level error, per-topic partition results)."""
        if not group_id:
            return ErrorCode.invalid_group_id, []
        if (refused := self._refused(group_id)) is not None:
            return refused, []
        consumer_group = self.consumer.group(group_id)
        if consumer_group is None:
            error = self.state.validate_offset_delete(group_id)
            if error is not None:
                return error, []
        # Once per request: a group's subscriptions may name many topics.
        consumer_topics = consumer_group.subscribed_topics() if consumer_group is not None else None

        def subscribed(topic: str) -> bool:
            if consumer_topics is not None:
                return topic in consumer_topics
            return self.state.is_subscribed_to_topic(group_id, topic)

        ok, deleted = await self._fenced_write(
            group_id, lambda fence: self.offsets.delete(group_id, topics, subscribed, fence)
        )
        if not ok or deleted is None:
            return ErrorCode.not_coordinator, []
        return ErrorCode.none, deleted

    # -- groups -------------------------------------------------------------------------

    def list_groups(
        self, states_filter: Iterable[str] = (), types_filter: Iterable[str] = ()
    ) -> tuple[ErrorCode, list[dict[str, Any]]]:
        if not self._active:
            return ErrorCode.coordinator_not_available, []
        states, types = list(states_filter), list(types_filter)
        listed = self.state.list_groups(states, types) + self.consumer.list_groups(states, types)
        return ErrorCode.none, listed

    def describe_groups(self, group_ids: Iterable[str]) -> list[dict[str, Any]]:
        results = []
        for group_id in group_ids:
            if (refused := self._refused(group_id)) is not None:
                results.append(describe_group_error(group_id, refused))
                continue
            consumer_group = self.consumer.group(group_id)
            if consumer_group is not None:
                results.append(classic_view(consumer_group))
                continue
            results.append(self.state.describe_group(group_id))
        return results

    async def delete_groups(self, group_ids: Iterable[str]) -> list[dict[str, Any]]:
        results = []
        for group_id in dict.fromkeys(group_ids):  # a group named twice is answered once
            if (refused := self._refused(group_id)) is not None:
                code = refused
            else:
                committed = await self._store.fetch_offsets(group_id)
                consumer_group = self.consumer.group(group_id)
                if consumer_group is not None:
                    error = ErrorCode.non_empty_group if consumer_group.members else None
                else:
                    error = self.state.validate_delete_group(group_id, bool(committed))
                code = ErrorCode.none if error is None else error
                if error is None:
                    # Out of the state machine before the await: nobody can join it now.
                    self.classic.remove_group(group_id)  # audited by the DeleteGroups handler
                    self._forget_consumer_group(group_id)
                    delete = functools.partial(self._store.delete_offsets, group_id, None)
                    try:
                        await self.saver.save([group_id])
                        await self.classic.flush()
                        ok, _ = await self._fenced_write(group_id, delete)
                        # Not ok: the shard moved meanwhile, its new coordinator has it.
                        code = ErrorCode.none if ok else ErrorCode.not_coordinator
                    except DependencyUnavailable as exc:  # its offsets stay: a retry deletes
                        ok, code = False, exc.code
                    if ok:
                        self.offsets.journal.group_deleted(group_id, list(committed))
            results.append({"group_id": group_id, "error_code": code})
        self._kick()
        return results

    # -- the consumer group protocol (KIP-848) -------------------------------------------

    def _forget_consumer_group(self, group_id: str) -> None:
        self.consumer.remove_group(group_id)
        self.saver.forget(group_id)

    async def consumer_group_heartbeat(
        self,
        request: ConsumerHeartbeat,
        partitions: PartitionCounts,
        topics_version: int | None = None,
        regex_topics: RegexTopics = NO_TOPICS,
    ) -> dict[str, Any]:
        """ConsumerGroupHeartbeat's response values (assignment by topic name), sent only
        once the store has the state they name: a restart keeps the epoch and partitions
        the member was told."""
        if (refused_code := self._refused(request.group_id)) is not None:
            return heartbeat_error(refused_code)
        refused, upgraded = self.conversion.before_heartbeat(request)
        if refused is not None:
            return refused
        response = self.consumer.heartbeat(request, partitions, topics_version, regex_topics)
        self.saver.served(request.group_id)
        self._kick()
        await self.conversion.downgrade_due()
        if upgraded:
            saved = await self.conversion.save(request.group_id, request.member_id)
        else:
            saved = await self.saver.save([request.group_id], request.member_id)
        if not saved:
            # The member retries; the step is kept and saved by the timer task, and its
            # retry at the epoch it had is accepted as after a lost response.
            return heartbeat_error(ErrorCode.coordinator_not_available)
        if upgraded:
            # Kafka's GroupMetadata tombstone of the classic group (offsets stay).
            self.offsets.journal.group_deleted(request.group_id, [])
        return response

    def consumer_group_describe(self, group_ids: Iterable[str]) -> list[dict[str, Any]]:
        """ConsumerGroupDescribe's groups (assignments by topic name)."""
        results = []
        for group_id in group_ids:
            refused = self._refused(group_id)
            group = self.consumer.group(group_id) if refused is None else None
            if group is not None:
                results.append(describe_group(group))
                continue
            if refused is not None:
                code, message = refused, None
            elif self.state.group(group_id) is not None:
                code, message = (
                    ErrorCode.group_id_not_found,
                    (f"Group {group_id} is not a consumer group."),
                )
            else:
                code, message = ErrorCode.group_id_not_found, f"Group {group_id} not found."
            results.append(describe_error(group_id, code, message))
        return results
