"""Loading and unloading a group coordinator's shards (RFC 0004 §3): the part of
`GroupCoordinator` that follows the `__consumer_offsets` partitions led here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from contextplane.coordinators.classic_stored import ClassicGroupSaver
from contextplane.coordinators.consumer_group.machine import ConsumerGroupMachine
from contextplane.coordinators.consumer_group_saver import ConsumerGroupSaver
from contextplane.coordinators.group_shards import GroupShards, NotServed
from contextplane.coordinators.group_state import GroupStateMachine
from contextplane.coordinators.group_state.states import GroupState
from contextplane.coordinators.group_state.stored import group_metadata
from contextplane.errors import CoordinatorFenced
from contextplane.logsafe import escape
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import GroupMetadata
from contextplane.tasks import log_round_failure

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class ShardLoading:
    _store: MetadataStore
    shards: GroupShards
    shard_loaded: list[Callable[[int], Awaitable[None]]]
    shard_unloaded: list[Callable[[int], None]]
    state: GroupStateMachine
    classic: ClassicGroupSaver
    consumer: ConsumerGroupMachine
    saver: ConsumerGroupSaver
    _active: bool
    _loading: dict[int, asyncio.Future[None]]
    _wall_ms: Callable[[], int]

    def _refused(self, group_id: str) -> ErrorCode | None:
        """Why a request for the group is not served here, or None (`GroupShards.refusal`:
        a shard led here and never loaded at its epoch starts loading)."""
        if not self._active:
            return ErrorCode.coordinator_not_available
        return self.shards.refusal(group_id, self._loading, self._load_in_background)

    def _load_in_background(self, shard: int) -> None:
        self._start_loading(shard).add_done_callback(_log_failed_load)

    def refused(self, group_id: str) -> ErrorCode | None:
        """Why a request for the group is not served here, or None (`_refused`)."""
        return self._refused(group_id)

    def _start_loading(self, shard: int) -> asyncio.Future[None]:
        task = self._loading[shard] = asyncio.ensure_future(self._load_afresh(shard))
        return task

    async def _load(self, shards: set[int]) -> None:
        """The stored groups of `shards` (all without leases) into the machines."""
        wanted = self.shards.in_shards(shards)
        consumer_groups = await self.saver.load(wanted)
        loaded = consumer_groups | await self.classic.load(consumer_groups, wanted)
        for group_id in await self._store.groups_with_offsets():
            if group_id not in loaded and wanted(group_id):
                self.state.load_empty_group(group_id)
        self.shards.loaded |= shards

    async def load_shard(self, shard: int) -> None:
        """This broker now leads `__consumer_offsets` partition `shard`: serve its groups
        as stored (a classic group Stable at its stored generation, a consumer group
        whole; members with nothing stored rejoin, as after a Kafka coordinator move).
        A shard still loaded from an earlier lease (fenced away since) is loaded
        afresh."""
        # One load at a time (a request's and the reconciler's).
        await asyncio.shield(self._loading.get(shard) or self._start_loading(shard))

    async def _load_afresh(self, shard: int) -> None:
        try:
            if shard in self.shards.loaded:
                self.unload_shard(shard)
            self.shards.unloaded_at.pop(shard, None)
            await self._load({shard})
            log.info("group coordinator: loaded shard %d", shard)
            for loaded in self.shard_loaded:
                await loaded(shard)
        finally:
            self._loading.pop(shard, None)

    def is_loaded(self, shard: int) -> bool:
        return shard in self.shards.loaded

    async def load_led_shards(self) -> None:
        """Load every shard led here and not loaded (the offsets topic created anew)."""
        for shard in sorted(self.shards.led() - self.shards.loaded):
            await self.load_shard(shard)

    def unload_shard(self, shard: int) -> None:
        """`shard` is handed over (or fenced): its parked requests answer NOT_COORDINATOR
        and its groups leave this coordinator without any write."""
        self.shards.forget(shard)
        wanted = self.shards.in_shards({shard})
        for group_id in [g for g in self.state.groups if wanted(g)]:
            self.classic.unload(group_id)
        for group_id in [g for g in self.consumer.groups if wanted(g)]:
            self.saver.unload(group_id)
        for unloaded in self.shard_unloaded:
            unloaded(shard)
        log.info("group coordinator: unloaded shard %d", shard)

    def _fenced(self, group_id: str, fenced: CoordinatorFenced) -> None:
        """A write found the shard at another epoch: another broker leads it now."""
        log.warning("group %s: %s; unloading its shard", escape(group_id), fenced)
        self.unload_shard(self.shards.shard(group_id))
        if self.shards.leases is not None:
            self.shards.leases.release(fenced.stream_id)

    async def _fenced_write(
        self, group_id: str, write: Callable[[tuple[int, int] | None], Awaitable[_T]]
    ) -> tuple[bool, _T | None]:
        """(True, what `write` returned), given the group's shard fence; (False, None) when
        the shard is not served here any more (unloaded while the request waited) or the
        write found it fenced (then unloaded and released)."""
        try:
            return True, await write(self.shards.fence(group_id))
        except CoordinatorFenced as fenced:
            self._fenced(group_id, fenced)
        except NotServed:
            pass
        return False, None

    def _fenced_stream(self, stream_id: int) -> None:
        """A group state write found the shard of `stream_id` at another epoch."""
        leases = self.shards.leases
        if leases is None:
            return
        for shard in sorted(self.shards.loaded):
            lease = leases.lease(shard)
            if lease is not None and lease[0] == stream_id:
                log.warning("shard %d: a group state write was fenced; unloading it", shard)
                self.unload_shard(shard)
        leases.release(stream_id)

    def snapshot_groups(self) -> list[tuple[str, GroupMetadata]]:
        """The metadata of every group that has completed a rebalance (Stable, or Empty
        after one), here or before a restart (a loaded group)."""
        now = self._wall_ms()
        return [
            (group.group_id, group_metadata(group, now))
            for group in self.state.groups.values()
            if group.generation_id > 0 and group.is_in(GroupState.STABLE, GroupState.EMPTY)
        ]


def _log_failed_load(task: asyncio.Future[None]) -> None:
    """A load a request started failed: logged, and the next request tries again."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log_round_failure(log, "loading a group coordinator shard", exc)
