"""Keeps the metadata store's copy of the KIP-848 consumer groups up to date: loads them
at start, saves a group's changes before the heartbeat that names them is answered, and
retries what could not be saved.

Rules of this file:

* One save at a time, so a later save of a group never races an earlier one; what to
  write is computed under the lock from the group as it is then (a save may carry more
  than the change that asked for it, never less).
* A steady heartbeat writes nothing and waits for nothing (`SavedGroups.changes`).
* A failed save leaves the group marked unsaved; the coordinator's timer task calls
  `retry` until the store has it.
* On a store other brokers share, timer changes (expiries) are saved only for groups
  heartbeated on this broker since start: every broker loads every group, and one whose
  members heartbeat elsewhere must not write their expiry over the live coordinator's
  rows (coordinators are not sharded yet: RFC 0004 §3).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from contextplane.coordinators.consumer_group.machine import ConsumerGroupMachine
from contextplane.coordinators.consumer_group.stored import SavedGroups, load_group
from contextplane.coordinators.group_shards import GroupShards
from contextplane.errors import CoordinatorFenced
from contextplane.metadata.store import MetadataStore
from contextplane.repeated_log import RepeatedLog

log = logging.getLogger(__name__)
# How often repeated save failures during a metadata-store outage are summarised.
_FAILED_SAVES_LOG_INTERVAL_S = 10.0


class ConsumerGroupSaver:
    def __init__(
        self, store: MetadataStore, machine: ConsumerGroupMachine, now_ms: Callable[[], int]
    ) -> None:
        self._store = store
        self._machine = machine
        self._now_ms = now_ms
        self.shards = GroupShards()  # the coordinator's, fencing each write
        self._saved = SavedGroups()
        self._lock = asyncio.Lock()
        # Groups whose last change is not in the store yet.
        self.unsaved: set[str] = set()
        # Groups heartbeated here since start.
        self._served: set[str] = set()
        self._failed = RepeatedLog(log, "consumer group saves failed", _FAILED_SAVES_LOG_INTERVAL_S)

    async def load(self, wanted: Callable[[str], bool] = lambda group_id: True) -> set[str]:
        """Every stored group `wanted` into the machine; returns their ids."""
        loaded = set()
        for stored in await self._store.consumer_groups():
            if not wanted(stored.group_id):
                continue
            group = load_group(stored)
            self._machine.load_group(group)
            self._saved.remember(group)
            loaded.add(group.group_id)
        return loaded

    def unload(self, group_id: str) -> None:
        """The group's shard moved away: out of the machine, nothing written (its new
        coordinator owns its rows)."""
        self._machine.remove_group(group_id)
        self._served.discard(group_id)
        self.unsaved.discard(group_id)

    def served(self, group_id: str) -> None:
        if self._machine.group(group_id) is not None:
            self._served.add(group_id)

    def forget(self, group_id: str) -> None:
        """The group left the machine: its rows go at its next save."""
        self._served.discard(group_id)
        self.unsaved.add(group_id)

    def take_timer_changes(self) -> None:
        changed = self._machine.changed_by_timers
        self._machine.changed_by_timers = set()
        self.unsaved |= {g for g in changed if g in self._served or not self._store.shared}

    async def retry(self) -> None:
        self._failed.flush(self._now_ms() / 1000)
        if self.unsaved:
            await self.save(sorted(self.unsaved))

    async def save(
        self,
        group_ids: Iterable[str],
        member_id: str | None = None,
        classic: dict[str, bytes | None] | None = None,
    ) -> bool:
        """Bring the store to these groups' state (deleting those gone); True once it
        has it. `member_id`: the heartbeating member, the only one that may have changed
        if the group's epochs and members did not. `classic`: classic group rows to
        write in the same transaction (a conversion between the protocols)."""
        ids = list(group_ids)
        group = self._machine.group
        if not classic and not any(self._saved.changes(g, group(g), member_id) for g in ids):
            return True  # a steady heartbeat: nothing to write, nothing to wait for
        async with self._lock:
            # Computed again under the lock: an earlier save may have written it.
            pending = [p for g in ids if (p := self._saved.changes(g, group(g), member_id))]
            if pending or classic:
                try:
                    served, fences = self.shards.fences([*ids, *(classic or {})])
                    writes = [p.write for p in pending if p.write.group_id in served]
                    if classic:
                        await self._store.convert_groups(writes, classic, fences)
                    else:
                        await self._store.save_consumer_groups(writes, fences)
                except Exception as exc:  # noqa: BLE001 - retried by the timer task
                    self.unsaved.update(ids)
                    if isinstance(exc, CoordinatorFenced):
                        self.shards.on_fenced(exc.stream_id)  # unloads: nothing to retry
                        return False
                    self._failed.event(
                        "the metadata store",
                        self._now_ms() / 1000,
                        "saving consumer group state failed: %s",
                        exc,
                    )
                    return False
                for save in pending:
                    self._saved.saved(save)
            # Unsaved no more only if nothing changed it meanwhile (every member compared).
            self.unsaved -= {
                g for g in ids if g in self.unsaved and self._saved.changes(g, group(g)) is None
            }
            return True
