"""The storage engine's background jobs, started together once its partitions are open:
uploads, retention, producer-id expiry, deletion of unreferenced objects, dropping idle
object indexes, the orphan sweep, and (when enabled) the log cleaner and object
compaction. `StorageEngine.close` cancels them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from contextplane.storage.partition_index import drop_idle_indexes
from contextplane.storage.producer_expiry import run_producer_expiry

if TYPE_CHECKING:
    from contextplane.storage.engine import StorageEngine


def background_tasks(engine: StorageEngine) -> list[asyncio.Task[None]]:
    settings = engine.settings
    tasks = [
        asyncio.create_task(engine.uploader.run(), name="uploader"),
        asyncio.create_task(engine.log_start.run_retention(), name="retention"),
        asyncio.create_task(
            run_producer_expiry(
                engine.live_partitions,
                engine.clock,
                settings.producer_id_expiration_ms,
                settings.producer_id_expiration_check_interval_ms,
            ),
            name="producer-expiry",
        ),
        asyncio.create_task(engine.deleter.run(), name="object-deleter"),
        asyncio.create_task(
            drop_idle_indexes(
                lambda: [p.index for p in engine.live_partitions()],
                engine.clock,
                settings.object_index_idle_ms,
            ),
            name="object-index-idle",
        ),
        asyncio.create_task(engine.orphan_sweep.run(), name="orphan-sweep"),
    ]
    if settings.log_cleaner_enable:
        tasks.append(asyncio.create_task(engine.cleaner.run(), name="log-cleaner"))
    if settings.object_compaction_enable:
        tasks.append(asyncio.create_task(engine.compactor.run(), name="object-compactor"))
    return tasks
