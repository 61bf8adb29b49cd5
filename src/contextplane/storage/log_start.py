"""Moving partitions' log start offsets forward, and deleting what falls below them.

Three callers: the retention loop (every `log.retention.check.interval.ms`, with the
rules of retention.py), DeleteRecords, and topic deletion (objects that no range
references any more). The metadata store moves the log start and drops the ranges below
it in one transaction, and names the objects left unreferenced; those are deleted from
the object store and the block cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from contextplane.clock import Clock
from contextplane.metadata.store import MetadataStore
from contextplane.settings import Settings
from contextplane.storage.block_cache import BlockCache
from contextplane.storage.objectstore import ObjectStore
from contextplane.storage.partition import PartitionLog
from contextplane.storage.retention import retention_start

log = logging.getLogger(__name__)


class LogStart:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        metadata: MetadataStore,
        objects: ObjectStore,
        blocks: BlockCache,
        partitions: Callable[[], Iterable[PartitionLog]],
        topic_configs: Callable[[str], dict[str, str]],
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._metadata = metadata
        self._objects = objects
        self._blocks = blocks
        self._partitions = partitions
        self._topic_configs = topic_configs

    async def run_retention(self) -> None:
        """The retention loop: one pass every `log.retention.check.interval.ms`."""
        while True:
            await asyncio.sleep(self._settings.retention_check_interval_ms / 1000)
            try:
                await self.enforce_retention(self._clock.wall_ms())
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("retention pass failed")

    async def enforce_retention(self, now_ms: int) -> None:
        settings = self._settings
        for partition in list(self._partitions()):
            configs = self._topic_configs(partition.topic)
            new_start = retention_start(
                partition.ranges,
                now_ms,
                retention_ms=int(configs.get("retention.ms", settings.retention_ms)),
                retention_bytes=int(configs.get("retention.bytes", settings.retention_bytes)),
                segment_bytes=int(configs.get("segment.bytes", settings.segment_bytes)),
                segment_ms=int(configs.get("segment.ms", settings.segment_ms)),
            )
            if new_start is not None and new_start > partition.log_start_offset:
                await self.advance(partition, new_start)

    async def advance(self, partition: PartitionLog, offset: int) -> None:
        """DeleteRecords and retention: move the log start; delete unreferenced objects."""
        partition.log_start_offset = max(partition.log_start_offset, offset)
        partition.ranges.drop_below(offset)
        orphans = await self._metadata.advance_log_start(partition.stream_id, offset)
        await self.delete_orphans(orphans)

    async def delete_orphans(self, keys: list[str]) -> None:
        """Delete objects no range references any more, and their cached blocks."""
        for key in keys:
            await self._objects.delete(key)
        self._blocks.forget_objects(keys)
