"""A read replica's mirror of a partition's uploaded ranges (storage/read_replica.py),
against a leader's storage engine on the same SQLite store and object bucket: it reads
what the leader uploaded and no more, refreshes at most once per interval however many
fetches ask, waits for an offset past its end while uploads move it and answers
OFFSET_OUT_OF_RANGE once they stop, follows the log start, and forgets an idle mirror;
the mirrors' ranges count in a memory budget while kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from contextplane.clock import ManualClock
from contextplane.errors import KafkaError
from contextplane.metadata.records import ReplicaRanges
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import split_batches
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory import RANGE_RECORD_BYTES, MemoryBudget
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from contextplane.storage.read_replica import IDLE_MS, STALE_MS, ReadReplicas
from tests.support.metadata import open_store
from tests.support.rawclient import record_batch

INTERVAL_MS = 200


async def leader(tmp_path: Path) -> StorageEngine:
    settings = Settings(data_dir=tmp_path, upload_interval_ms=3_600_000)
    metadata = await open_store(settings, {"t": 1})
    engine = StorageEngine(
        settings, metadata, wal=MemoryWal(WalMedium()), objects=MemoryObjectStore(ObjectBucket())
    )
    await engine.open()
    return engine


async def append(engine: StorageEngine, values: list[bytes], upload: bool = True) -> None:
    partition = engine.partitions[("t", 0)]
    for value in values:
        await engine.append(partition, split_batches(record_batch([value]), 1 << 20)).durable
    if upload:
        assert await engine.upload_once() > 0


def test_the_mirror_serves_uploaded_batches_and_refreshes_once_per_interval(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        engine = await leader(tmp_path)
        clock = ManualClock()
        queries: list[int] = []
        replica_ranges = engine.metadata.replica_ranges

        async def counted(topic: str, partition: int, since: int) -> ReplicaRanges | None:
            queries.append(since)
            return await replica_ranges(topic, partition, since)

        engine.metadata.replica_ranges = counted  # type: ignore[method-assign]
        budget = MemoryBudget(1 << 30, 1 << 20)  # the mirrors' own, to count them alone
        replicas = ReadReplicas(engine.metadata, engine.blocks, INTERVAL_MS, clock, budget)
        try:
            await append(engine, [b"a", b"b"])
            await append(engine, [b"c"], upload=False)  # acknowledged, not uploaded
            # Concurrent fetches share one query; the end is the uploaded end.
            mirrors = await asyncio.gather(*(replicas.mirror("t", 0) for _ in range(5)))
            mirror = mirrors[0]
            assert all(m is mirror for m in mirrors) and queries == [-1]
            assert (mirror.log_start_offset, mirror.end_offset) == (0, 2)
            assert budget.range_record_bytes == RANGE_RECORD_BYTES
            partition = engine.partitions[("t", 0)]
            read = await replicas.read(mirror, 0, 1 << 20, True)
            assert (
                b"".join(read)
                == b"".join(await engine.reader.read(partition, 0, 1 << 20))[: sum(map(len, read))]
            )
            assert len(read) == 2 and await replicas.read(mirror, 2, 1 << 20, True) == []
            # Past the end: waited for while the end can still move.
            assert replicas.check_offset(mirror, 2) and not replicas.check_offset(mirror, 3)
            # Within the interval no query; after it, one query from the known end.
            await replicas.mirror("t", 0)
            assert queries == [-1]
            assert replicas.next_refresh_s(mirror) == INTERVAL_MS / 1000
            assert await engine.upload_once() > 0
            clock.advance(INTERVAL_MS)
            assert replicas.next_refresh_s(mirror) == 0
            await replicas.mirror("t", 0)
            assert queries == [-1, 2] and mirror.end_offset == 3
            assert replicas.check_offset(mirror, 3)
            # An end that stopped moving: an offset past it is out of range (to the leader).
            clock.advance(STALE_MS)
            with pytest.raises(KafkaError) as stale:
                replicas.check_offset(mirror, 4)
            assert stale.value.code == ErrorCode.offset_out_of_range
            # The log start moves: the mirror follows, an offset below it is out of range.
            await engine.advance_log_start(partition, 1)
            await replicas.mirror("t", 0)
            assert mirror.log_start_offset == 1 and mirror.ranges[0].end_offset > 1
            with pytest.raises(KafkaError):
                replicas.check_offset(mirror, 0)
            # No such partition; an idle mirror is forgotten.
            with pytest.raises(KafkaError) as missing:
                await replicas.mirror("t", 7)
            assert missing.value.code == ErrorCode.unknown_topic_or_partition
            assert len(replicas) == 1
            clock.advance(IDLE_MS)
            fresh = await replicas.mirror("t", 0)
            assert fresh is not mirror and queries[-1] == -1  # loaded afresh
            assert budget.range_record_bytes == len(fresh.ranges) * RANGE_RECORD_BYTES
        finally:
            await engine.close()
            await engine.metadata.close()

    asyncio.run(run())
