"""Share groups follow their `__consumer_offsets` shards (RFC 0004 §3, RFC 0008): the part
of `ShareCoordinator` that loads and drops a shard's share group membership as the group
coordinator loads and unloads the shard, and fences its saves.

A share group's coordinator is its shard's leader, as a consumer group's (Kafka places
share groups by the group id too). The group coordinator's `GroupShards` decides what is
served here; its loads and unloads call `load_shard` / `unload_shard`. Membership saves
carry the shards' (stream, leader epoch) into the store transaction; a save found fenced
unloads the shard (through the group coordinator, so both kinds of groups leave).

Share partitions are not a shard's: a share partition is served by its topic
partition's leader, which is where ShareFetch and ShareAcknowledge go (Kafka's
share-partition leader). It is read from the store when that leader first serves it at
a leader epoch (`lead`), and its saves carry the topic partition's (stream, leader
epoch): a save found fenced drops that stream's share partitions from memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from contextplane.coordinators.group_shards import GroupShards
from contextplane.coordinators.share_group import ShareGroupMachine
from contextplane.coordinators.share_partition import SharePartition
from contextplane.coordinators.share_stored import BadShareGroupValue, decode
from contextplane.metadata.records import StoredSharePartition
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode

if TYPE_CHECKING:
    from contextplane.coordinators.group import GroupCoordinator

log = logging.getLogger(__name__)
ShareKey = tuple[str, str, int]  # group id, topic, partition


class ShareShards:
    _store: MetadataStore
    groups: ShareGroupMachine
    _stored_groups: dict[str, bytes]
    _unsaved_groups: set[str]
    _served: set[str]
    # The group coordinator's shards and its verdict on a group id (None: served here);
    # None for a coordinator alone (unit tests), which serves every group.
    shards: GroupShards | None
    _refuse: Callable[[str], ErrorCode | None] | None
    partitions: dict[ShareKey, SharePartition]
    _saved_epochs: dict[ShareKey, int]
    _leads: dict[ShareKey, tuple[int, int]]
    _leading: dict[ShareKey, asyncio.Future[None]]

    def _load_partition(self, stored: StoredSharePartition) -> None: ...

    def follow(self, groups: GroupCoordinator) -> None:
        """Serve only the share groups of the shards `groups` has loaded, loading and
        dropping them with its shards; a request for another group is answered as
        `groups` answers one (which starts loading a shard led here but not loaded yet)."""
        self.shards = groups.shards
        self._refuse = groups.refused
        groups.shard_loaded.append(self.load_shard)
        groups.shard_unloaded.append(self.unload_shard)

    def refused(self, group_id: str) -> ErrorCode | None:
        """NOT_COORDINATOR (or COORDINATOR_LOAD_IN_PROGRESS) when the group's shard is not
        served here; None when it is."""
        return None if self._refuse is None else self._refuse(group_id)

    def _wanted(self) -> Callable[[str], bool]:
        if self.shards is None:
            return lambda group_id: True
        return self.shards.in_shards(set(self.shards.loaded))

    async def _load_groups(self, wanted: Callable[[str], bool]) -> None:
        for group_id, raw in (await self._store.share_groups()).items():
            if not wanted(group_id):
                continue
            try:
                self.groups.load_group(decode(group_id, raw))
            except BadShareGroupValue as exc:
                log.warning("share group %r: stored membership not loaded: %s", group_id, exc)
                continue
            self._stored_groups[group_id] = raw

    async def load_shard(self, shard: int) -> None:
        """The group coordinator loaded `shard`: its share groups as stored, their
        members' sessions timed from now (they heartbeat on at their epochs)."""
        if self.shards is None:
            return
        self._drop_groups(self.shards.in_shards({shard}))
        await self._load_groups(self.shards.in_shards({shard}))

    def unload_shard(self, shard: int) -> None:
        """`shard` is handed over or fenced: its share groups leave without any write."""
        if self.shards is not None:
            self._drop_groups(self.shards.in_shards({shard}))

    def _drop_groups(self, wanted: Callable[[str], bool]) -> None:
        for group_id in [g for g in self.groups.groups if wanted(g)]:
            del self.groups.groups[group_id]
        self.groups.changed = {g for g in self.groups.changed if not wanted(g)}
        self._unsaved_groups = {g for g in self._unsaved_groups if not wanted(g)}
        self._served = {g for g in self._served if not wanted(g)}
        for group_id in [g for g in self._stored_groups if wanted(g)]:
            del self._stored_groups[group_id]

    def _fences(self, group_ids: list[str]) -> tuple[list[str], set[tuple[int, int]]]:
        """The groups of `group_ids` served here and their shards' fences."""
        if self.shards is None:
            return group_ids, set()
        return self.shards.fences(group_ids)

    # -- share partitions, served by their topic partitions' leaders -------------------

    async def lead(self, key: ShareKey, fence: tuple[int, int]) -> None:
        """Serve share partition `key` as its topic partition's leader at `fence` (stream,
        leader epoch): one served here at another epoch, or never, is read afresh from the
        store (another leader may have changed it); one loaded at start is taken as is.
        Its saves are fenced by `fence` from now on."""
        if self._leads.get(key) == fence:
            return
        if key not in self._leads and key in self.partitions:
            self._leads[key] = fence  # loaded at start: this broker's own last state
            return
        reading = self._leading.get(key)
        if reading is None:
            reading = self._leading[key] = asyncio.ensure_future(self._read(key, fence))
            reading.add_done_callback(lambda _: self._leading.pop(key, None))
        await asyncio.shield(reading)

    async def _read(self, key: ShareKey, fence: tuple[int, int]) -> None:
        stored = await self._store.share_partitions(key)
        self.partitions.pop(key, None)
        self._saved_epochs.pop(key, None)
        for partition in stored:
            self._load_partition(partition)
        self._leads[key] = fence

    def _lost_lead(self, stream_id: int) -> None:
        """A share partition save found the topic partition of `stream_id` led at another
        epoch: its share partitions go from memory (a later use reads them afresh)."""
        log.warning("stream %d is led at another epoch: its share partitions go", stream_id)
        for key in [k for k, fence in self._leads.items() if fence[0] == stream_id]:
            del self._leads[key]
            self.partitions.pop(key, None)
            self._saved_epochs.pop(key, None)
