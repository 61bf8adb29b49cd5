"""The assignment of rows without a target (RFC 0004 slices 0 and 1): a broker leads
what it led before and what nobody leads yet, so a second broker opening the same
metadata claims none of the first one's partitions, answers NOT_LEADER_OR_FOLLOWER for
them naming their leader, and leads the topics it creates itself."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from contextplane.cluster.assignment import TargetAssignment
from contextplane.cluster.leadership import NotLeader
from contextplane.metadata.records import PartitionRecord
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from tests.support.metadata import open_store


def test_own_or_unled_leads_its_own_and_unled_partitions_only() -> None:
    record = PartitionRecord(7, "t", 0, leader_node=-1, leader_epoch=0, log_start_offset=0)
    assignment = TargetAssignment(node_id=1)
    assert assignment.leads(record)
    assert assignment.leads(replace(record, leader_node=1))
    assert not assignment.leads(replace(record, leader_node=2))


def test_a_second_broker_on_the_same_metadata_claims_none_of_the_firsts(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        first = Settings(data_dir=tmp_path / "one", node_id=1, upload_interval_ms=3_600_000)
        second = replace(first, data_dir=tmp_path / "two", node_id=2)
        metadata = await open_store(first, {"t": 2})
        one = StorageEngine(first, metadata)
        await one.open()
        epochs = {r.partition: r.leader_epoch for r in await metadata.partitions("t")}
        assert sorted(one.partitions) == [("t", 0), ("t", 1)]

        two = StorageEngine(second, metadata)
        await two.open()
        assert two.partitions == {}
        stored = await metadata.partitions("t")
        assert {r.partition: (r.leader_node, r.leader_epoch) for r in stored} == {
            p: (1, epoch) for p, epoch in epochs.items()
        }
        assert two.led_elsewhere == {("t", p): (1, e) for p, e in epochs.items()}
        with pytest.raises(NotLeader, match="led by node 1"):
            two.partition("t", 0)

        # A topic created on the second broker is its own; the first does not open it.
        await metadata.create_topic("u", 1, {})
        await two.open_new_partitions("u")
        assert sorted(two.partitions) == [("u", 0)]
        assert [r.leader_node for r in await metadata.partitions("u")] == [2]
        await one.close()
        await two.close()
        await metadata.close()

    asyncio.run(run())
