"""A dirty section with more keys than `log.cleaner.dedupe.buffer.size` holds is cleaned
in several passes, each up to the record where the key map filled (Kafka's
buildOffsetMapForSegment), even inside one range; the log ends as one cleaning with a
large enough map would leave it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contextplane.clock import ManualClock
from contextplane.protocol.offsets_records import encode_batch
from contextplane.protocol.records import split_batches
from contextplane.settings import Settings
from contextplane.storage.compaction import MAP_ENTRY_BYTES
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from tests.support.metadata import open_store
from tests.unit.test_cleaner_swap import COMPACTED, log_of

BUFFER = 1024 * 1024  # the smallest the setting takes (Kafka's lower bound too)
CAPACITY = BUFFER // MAP_ENTRY_BYTES
KEYS = 10_000  # each range holds more keys than the map


def test_a_map_too_small_for_the_dirty_section_cleans_it_in_passes(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        settings = Settings(
            data_dir=tmp_path,
            upload_interval_ms=3_600_000,
            log_cache_bytes=1,
            log_cleaner_enable=False,  # the test drives the cleaner
            log_cleaner_dedupe_buffer_size=BUFFER,
        )
        metadata = await open_store(settings, {"t": 1})
        engine = StorageEngine(
            settings,
            metadata,
            wal=MemoryWal(WalMedium()),
            objects=MemoryObjectStore(ObjectBucket(), clock=clock),
            clock=clock,
            topic_configs=lambda _: COMPACTED,
        )
        await engine.open()
        partition = engine.partitions[("t", 0)]
        for records in (
            [(b"key%d" % i, b"v1") for i in range(KEYS)],
            [(b"key%d" % i, b"v2") for i in range(KEYS)],
            [(b"z", b"active")],
        ):
            batch = encode_batch(records, 1_700_000_000_000)
            await engine.append(partition, split_batches(batch, 1 << 20)).durable
            await engine.upload_once()
            clock.advance(1)

        stops = []
        while await engine.cleaner.clean_once():
            stops.append(engine.cleaner.first_dirty_offset(partition))
            assert len(stops) < 10, "the cleaner does not converge"
        # Each pass maps CAPACITY keyed records from where the last stopped, mid-range.
        assert stops == [CAPACITY, 2 * CAPACITY, 2 * KEYS]
        assert await log_of(engine) == [
            *((KEYS + i, b"key%d" % i, b"v2") for i in range(KEYS)),
            (2 * KEYS, b"z", b"active"),
        ]
        await engine.close()

    asyncio.run(scenario())
