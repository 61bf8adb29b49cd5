"""Fencing, written once (cluster/leadership.py): the epoch rule, and a broker whose
partition another broker took over stops acknowledging it at once, while the other
partitions of the same object are committed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from contextplane.cluster.leadership import NotLeader, is_fenced
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from tests.support.metadata import open_store
from tests.unit.test_engine_recovery import batch


def test_should_report_fenced_only_when_behind_the_stored_epoch() -> None:
    assert is_fenced(1, local_epoch=3, stored_epoch=4)
    assert not is_fenced(1, local_epoch=4, stored_epoch=4)


def test_should_assert_when_ahead_of_the_stored_epoch() -> None:
    with pytest.raises(AssertionError, match="ahead of the stored"):
        is_fenced(1, local_epoch=5, stored_epoch=4)


def test_should_stop_acknowledging_a_fenced_partition_and_commit_the_others(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        settings = Settings(data_dir=tmp_path, upload_interval_ms=3_600_000)
        metadata = await open_store(settings, {"t": 2})
        engine = StorageEngine(settings, metadata)
        await engine.open()
        fenced, kept = engine.partitions[("t", 0)], engine.partitions[("t", 1)]
        await engine.append(fenced, batch(1, 0, 5, b"A")).durable
        await engine.append(kept, batch(2, 0, 5, b"B")).durable

        # Another broker claims partition 0 (an unclean election: its acknowledged
        # records are in no object yet): its stored epoch moves past ours.
        records = {r.partition: r for r in await metadata.partitions("t")}
        moved = await metadata.claim_leadership(
            {fenced.stream_id: records[0].leader_epoch}, 2, frozenset({fenced.stream_id})
        )
        assert fenced.stream_id in moved.claimed

        # The next upload finds out, in the commit's own transaction.
        await engine.upload_once()
        assert fenced.released and fenced.deleted
        assert not kept.released
        committed = await metadata.ranges_by_stream()
        assert fenced.stream_id not in committed, "a fenced broker published data"
        assert [r.end_offset for r in committed[kept.stream_id]] == [5]

        # It stops acknowledging the partition: no appends, no fetches.
        with pytest.raises(NotLeader):
            engine.partition("t", 0)
        with pytest.raises(KafkaError) as refused:
            engine.partition("t", 0)
        assert refused.value.code == ErrorCode.not_leader_or_follower
        # ... while the other partition of the same object goes on.
        assert engine.partition("t", 1) is kept
        await engine.append(kept, batch(2, 5, 5, b"C")).durable
        assert kept.high_watermark == 10
        await engine.close()
        await metadata.close()

    asyncio.run(run())


def test_should_refuse_an_acknowledgement_that_lands_after_the_fence(tmp_path: Path) -> None:
    async def run() -> None:
        settings = Settings(data_dir=tmp_path, upload_interval_ms=3_600_000)
        metadata = await open_store(settings, {"t": 1})
        engine = StorageEngine(settings, metadata)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        in_flight = engine.append(partition, batch(1, 0, 5, b"A"))
        engine.leadership.release(partition.stream_id)  # fenced before the WAL sync lands
        with pytest.raises(NotLeader):
            await in_flight.durable
        await engine.close()
        await metadata.close()

    asyncio.run(run())
