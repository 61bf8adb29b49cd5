"""Deleting objects that no range references any more, once their grace period is over.

Retention, DeleteRecords, topic deletion and the cleaner's swap drop ranges; the metadata
store moves each object left unreferenced into its deletion queue in that same
transaction, due `file.delete.delay.ms` later (the broker's `log.segment.delete.delay.ms`
by default, as in Kafka). A fetch that found a range before it was dropped still reads its
object until then. This task deletes what is due from the object store and the block
cache, then forgets the rows; the queue is durable, so a restart finishes the work, and a
failed delete stays queued for the next pass (deleting an absent object is not an error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from contextplane.clock import Clock
from contextplane.metadata.store import MetadataStore
from contextplane.storage.block_cache import BlockCache
from contextplane.storage.objectstore import ObjectStore, ObjectStoreError

log = logging.getLogger(__name__)

# Keys deleted per metadata round trip, and the longest sleep between passes (a due time
# written by another process, or a failed delete, is noticed within it).
_BATCH_KEYS = 500
_IDLE_S = 30.0
_RETRY_S = 5.0


class ObjectDeleter:
    def __init__(
        self, metadata: MetadataStore, objects: ObjectStore, blocks: BlockCache, clock: Clock
    ) -> None:
        self._metadata = metadata
        self._objects = objects
        self._blocks = blocks
        self._clock = clock
        self.wakeup = asyncio.Event()
        self.deleted = 0

    async def run(self) -> None:
        """Delete what is due, then sleep until the next due time (or a wake-up)."""
        while True:
            self.wakeup.clear()
            try:
                await self.delete_due()
                sleep_s = _IDLE_S
                due = await self._metadata.next_deletion_due()
                if due is not None:
                    sleep_s = min(_IDLE_S, max(0.0, (due - self._clock.wall_ms()) / 1000))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the queue keeps them; retry
                log.warning("deleting unreferenced objects failed, retrying: %s", exc)
                sleep_s = _RETRY_S
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(sleep_s):
                    await self.wakeup.wait()

    async def delete_due(self) -> int:
        """Delete every object due by now; returns how many."""
        total = 0
        while True:
            keys = await self._metadata.due_deletions(self._clock.wall_ms(), _BATCH_KEYS)
            if not keys:
                return total
            deleted: list[str] = []
            try:
                for key in keys:
                    await self._objects.delete(key)
                    deleted.append(key)
            except ObjectStoreError:
                if deleted:
                    await self._forget(deleted)
                raise
            await self._forget(deleted)
            total += len(deleted)
            if len(keys) < _BATCH_KEYS:
                return total

    async def _forget(self, keys: list[str]) -> None:
        self._blocks.forget_objects(keys)
        await self._metadata.forget_deletions(keys)
        self.deleted += len(keys)
