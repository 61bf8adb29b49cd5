"""Moving partitions' log start offsets forward, and deleting what falls below them.

Two callers: the retention loop (every `log.retention.check.interval.ms`, with the
rules of retention.py) and DeleteRecords. The metadata store moves the log start and
drops the ranges below it in one transaction, which also queues the objects left
unreferenced for deletion after the topic's `file.delete.delay.ms` (object_deleter.py
deletes them then, so a fetch that already holds one finishes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from contextplane.clock import Clock
from contextplane.java_numbers import stored_int
from contextplane.metadata.store import MetadataStore
from contextplane.settings import Settings
from contextplane.storage.block_cache import BlockCache
from contextplane.storage.objectstore import ObjectStore
from contextplane.storage.partition import PartitionLog
from contextplane.storage.retention import may_delete, retention_start
from contextplane.tasks import log_round_failure

log = logging.getLogger(__name__)

# Kafka takes file.delete.delay.ms up to Long.MAX_VALUE; the deletion's due time (now
# plus the delay) is kept in a 64-bit column, so a longer delay (146 million years: as
# good as never) is read as this one.
DELETE_DELAY_MS_MAX = 2**62


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
        on_unreferenced: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._metadata = metadata
        self._objects = objects
        self._blocks = blocks
        self._partitions = partitions
        self._topic_configs = topic_configs
        self._on_unreferenced = on_unreferenced

    async def run_retention(self) -> None:
        """The retention loop: one pass every `log.retention.check.interval.ms`."""
        while True:
            await asyncio.sleep(self._settings.retention_check_interval_ms / 1000)
            try:
                await self.enforce_retention(self._clock.wall_ms())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next pass tries again
                log_round_failure(log, "retention pass", exc)

    async def enforce_retention(self, now_ms: int) -> None:
        """One pass over every partition; an index not in memory is loaded only when its
        summary says retention may delete (retention.may_delete)."""
        settings = self._settings
        for partition in list(self._partitions()):
            configs = self._topic_configs(partition.topic)
            retention_ms = stored_int(configs.get("retention.ms", settings.retention_ms))
            retention_bytes = stored_int(configs.get("retention.bytes", settings.retention_bytes))
            ranges = partition.index.loaded_ranges
            if ranges is None:
                if not may_delete(partition.index.stats, now_ms, retention_ms, retention_bytes):
                    continue
                ranges = await partition.index.load()
                if partition.deleted:
                    continue
            new_start = retention_start(
                ranges,
                now_ms,
                retention_ms=retention_ms,
                retention_bytes=retention_bytes,
                segment_bytes=stored_int(configs.get("segment.bytes", settings.segment_bytes)),
                segment_ms=stored_int(configs.get("segment.ms", settings.segment_ms)),
            )
            if new_start is not None and new_start > partition.log_start_offset:
                await self.advance(partition, new_start)

    async def advance(self, partition: PartitionLog, offset: int) -> None:
        """DeleteRecords and retention: move the log start; delete unreferenced objects."""
        partition.log_start_offset = max(partition.log_start_offset, offset)
        partition.index.drop_below(offset)
        due_ms = self._clock.wall_ms() + self.delete_delay_ms(partition.topic)
        if await self._metadata.advance_log_start(partition.stream_id, offset, due_ms):
            self._on_unreferenced()

    def delete_delay_ms(self, topic: str) -> int:
        """How long an object this topic stops referencing is kept (Kafka's topic
        `file.delete.delay.ms`, by default the broker's `log.segment.delete.delay.ms`),
        at most DELETE_DELAY_MS_MAX."""
        configs = self._topic_configs(topic)
        delay_ms = stored_int(
            configs.get("file.delete.delay.ms", self._settings.log_segment_delete_delay_ms)
        )
        return min(delay_ms, DELETE_DELAY_MS_MAX)

    async def delete_orphans(self, keys: list[str]) -> None:
        """Delete objects that were never referenced (an upload no partition could
        commit: no reader ever saw them), and their cached blocks."""
        for key in keys:
            await self._objects.delete(key)
        self._blocks.forget_objects(keys)
