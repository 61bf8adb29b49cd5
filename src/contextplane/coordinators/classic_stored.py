"""Keeps the metadata store's copy of the classic groups: loads them at start and writes
each group's GroupMetadataValue at the points Kafka writes it (`group_stored`: a
generation's assignment, the group emptied, a static member replaced) or deletes it
with the group.

Rules of this file:

* The value is encoded when the machine stores the group, so a later change (a member
  leaving starts a rebalance) never reaches the store before its generation completes;
  the latest value of a group wins over one not written yet.
* One write at a time; `flush` returns once every value stored before it was called is
  written (or the write failed). JoinGroup and SyncGroup answers wait for it, as Kafka
  answers the leader's SyncGroup after its record is written; a failed write is retried
  by the coordinator's timer task.
* On a store other brokers share, only groups served here are written: every broker
  loads every group, and one whose members talk to another broker would otherwise write
  their expiry over the live coordinator's row (coordinators are not sharded: RFC 0004).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from contextplane.coordinators.group_shards import GroupShards
from contextplane.coordinators.group_state import GroupStateMachine
from contextplane.coordinators.group_state.stored import loaded_group
from contextplane.errors import CoordinatorFenced
from contextplane.logsafe import escape
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import (
    GroupMetadata,
    decode_group_metadata_value,
    group_metadata_value,
)
from contextplane.repeated_log import RepeatedLog

log = logging.getLogger(__name__)
# How often repeated write failures during a metadata-store outage are summarised.
_FAILED_SAVES_LOG_INTERVAL_S = 10.0
# How soon a write that failed is tried again.
SAVE_RETRY_MS = 1_000


class ClassicGroupSaver:
    def __init__(
        self, store: MetadataStore, machine: GroupStateMachine, now_ms: Callable[[], int]
    ) -> None:
        self._store = store
        self._machine = machine
        self._now_ms = now_ms
        self.shards = GroupShards()  # the coordinator's, fencing each write
        # Group id -> the value to write (None: delete the row), in the order stored.
        self._pending: dict[str, bytes | None] = {}
        self._lock = asyncio.Lock()
        self._retry_at_ms: int | None = None
        # Groups a request has reached here since start (see the rules above).
        self._served: set[str] = set()
        self._answering: set[asyncio.Task[None]] = set()
        self._failed = RepeatedLog(log, "classic group saves failed", _FAILED_SAVES_LOG_INTERVAL_S)

    async def load(
        self, skip: set[str], wanted: Callable[[str], bool] = lambda group_id: True
    ) -> set[str]:
        """Every stored group `wanted` and not in `skip` into the machine; returns their
        ids."""
        loaded = set()
        for group_id, value in sorted((await self._store.classic_groups()).items()):
            if group_id in skip or not wanted(group_id):
                continue
            try:
                group = loaded_group(group_id, decode_group_metadata_value(value), self._now_ms())
            except ValueError as exc:
                log.warning(
                    "group %s: its stored metadata cannot be loaded (%s); members rejoin",
                    escape(group_id),
                    exc,
                )
                continue
            self._machine.load_group(group)
            loaded.add(group_id)
        if loaded:
            log.info("loaded %d classic groups", len(loaded))
        return loaded

    @contextlib.contextmanager
    def serving(self, group_id: str) -> Iterator[None]:
        """Around a request's call into the machine: the group is served here."""
        self._served.add(group_id)
        try:
            yield
        finally:
            if self._machine.group(group_id) is None:
                self._served.discard(group_id)

    def stored(self, group_id: str, metadata: GroupMetadata) -> None:
        """The machine stored the group (it must not be re-entered: nothing awaits)."""
        if self._store.shared and group_id not in self._served:
            return
        self._pending.pop(group_id, None)  # keep the order of the stores
        self._pending[group_id] = group_metadata_value(metadata)

    def deleted(self, group_id: str) -> None:
        self._served.discard(group_id)
        self._pending.pop(group_id, None)
        self._pending[group_id] = None

    def next_save_ms(self) -> int | None:
        """When the timer task should write what is pending (None: nothing is)."""
        if not self._pending:
            return None
        return self._now_ms() if self._retry_at_ms is None else self._retry_at_ms

    async def flush(self) -> bool:
        """Write everything pending; True once the store has it."""
        if not self._pending and not self._lock.locked():
            return True
        async with self._lock:
            writes, self._pending = self._pending, {}
            served, fences = self.shards.fences(writes)
            writes = {group_id: writes[group_id] for group_id in served}
            if not writes:
                return self._retry_at_ms is None
            try:
                await self._store.save_classic_groups(writes, fences)
            except BaseException as exc:
                # Kept for the next try (a cancelled stop's too); values stored meanwhile
                # are newer than these.
                self._pending = writes | self._pending
                if isinstance(exc, CoordinatorFenced):
                    self.shards.on_fenced(exc.stream_id)  # unloads: its writes dropped
                if not isinstance(exc, Exception):
                    raise
                self._retry_at_ms = self._now_ms() + SAVE_RETRY_MS
                self._failed.event(
                    "the metadata store",
                    self._now_ms() / 1000,
                    "saving classic group metadata failed: %s",
                    exc,
                )
                return False
            self._retry_at_ms = None
            self._failed.flush(self._now_ms() / 1000)
            return True

    async def write_with(
        self,
        group_id: str,
        write: Callable[[dict[str, bytes | None]], Awaitable[bool]],
    ) -> bool:
        """Hand the group's pending value (if any) to `write`, which puts it in its own
        transaction (a conversion between the protocols) and says whether it landed; if
        not, it is pending again (behind any newer value)."""
        async with self._lock:
            taken = {group_id: self._pending.pop(group_id)} if group_id in self._pending else {}
            if await write(taken):
                return True
            self._pending = taken | self._pending
            self._retry_at_ms = self._now_ms() + SAVE_RETRY_MS
            return False

    def unload(self, group_id: str) -> None:
        """The group's shard moved away: its parked requests answered NOT_COORDINATOR,
        out of the machine, and nothing more written for it (its new coordinator owns
        its row)."""
        self._machine.answer_parked(group_id, ErrorCode.not_coordinator)
        self._machine.remove_group(group_id)
        self._pending.pop(group_id, None)
        self._served.discard(group_id)

    def remove_group(self, group_id: str) -> None:
        """Out of the machine (deleted, cleaned up, or upgraded to a consumer group); its
        row goes at the next flush, as Kafka writes the group's tombstone."""
        self._machine.remove_group(group_id)
        self.deleted(group_id)

    def answer(self, future: asyncio.Future[dict[str, Any]], response: dict[str, Any]) -> None:
        """Give a JoinGroup or SyncGroup its `response` once what the machine stored
        before it is written: a member is not told a generation the store lacks."""
        if not self._pending and not self._lock.locked():
            future.set_result(response)
            return

        async def when_written() -> None:
            await self.flush()
            if not future.done():
                future.set_result(response)

        task = asyncio.ensure_future(when_written())
        self._answering.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._answering.discard)
