"""Group coordinators across brokers, on both engines (RFC 0004 §3): two storage engines
on one metadata store, each with its group coordinator following the `__consumer_offsets`
partitions it leads. A group is served only by its shard's leader (NOT_COORDINATOR
elsewhere); a planned move of the shard unloads it (a parked JoinGroup answered
NOT_COORDINATOR) and loads it on the target with every committed offset; a coordinator
whose shard was claimed at a newer epoch behind its back commits, deletes and saves
group state for nothing, answers NOT_COORDINATOR and lets the partition go; a shard
opened outside the reconciler's pass is loaded by the first request for it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from contextplane.broker.offsets_topic import OffsetsShards
from contextplane.cluster.controller import Controller
from contextplane.coordinators.committed_offsets import OffsetCommitEntry
from contextplane.coordinators.group import GroupCoordinator
from contextplane.coordinators.group_state import CoordinatorConfig
from contextplane.errors import CoordinatorFenced
from contextplane.metadata.records import BrokerEndpoint, ConsumerGroupWrite, OffsetRow
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import OFFSETS_TOPIC, partition_for
from contextplane.settings import Settings
from contextplane.storage.memory_objects import ObjectBucket
from tests.groups.test_group_coordinator import join_request
from tests.support.metadata import open_store
from tests.support.wait import wait_until_async
from tests.unit.test_reconciler import Node

SHARDS = 4


class CoordinatedNode(Node):
    async def start(self) -> None:
        await super().start()
        self.groups = GroupCoordinator(
            self.metadata,
            CoordinatorConfig(initial_rebalance_delay_ms=60_000),  # joins stay parked
            leases=OffsetsShards(self.engine, self.topics),
        )
        await self.groups.start()
        self.reconciler.coordinator = self.groups

    async def stop(self) -> None:
        await self.groups.stop()
        await super().stop()

    async def commit(self, group_id: str, offset: int) -> list[ErrorCode]:
        entry = OffsetCommitEntry("t", 0, offset, -1, None)
        return await self.groups.commit_offsets(group_id, "", None, -1, 2, [entry])

    async def committed(self, group_id: str) -> tuple[ErrorCode, int | None]:
        code, topics = await self.groups.fetch_offsets(group_id, [("t", [0])])
        return code, topics[0]["partitions"][0]["committed_offset"] if topics else None


def group_on(shards: set[int]) -> str:
    """A group id whose shard is one of `shards`."""
    return next(g for i in range(1000) if partition_for(g := f"g{i}", SHARDS) in shards)


def pair_settings(metadata_url: str, tmp_path: Path) -> tuple[Settings, Settings]:
    """Two brokers' settings on one metadata store; each test drives every pass itself."""
    first = Settings(
        data_dir=tmp_path / "one",
        node_id=1,
        metadata_url=metadata_url,
        upload_interval_ms=3_600_000,
        broker_heartbeat_interval_ms=3_600_000,
        broker_session_timeout_ms=3_600_000,
    )
    second = replace(first, data_dir=tmp_path / "two", node_id=2)
    for settings in (first, second):
        settings.data_dir.mkdir()
    return first, second


def test_groups_follow_their_shard_and_a_fenced_coordinator_commits_nothing(
    metadata_url: str, tmp_path: Path
) -> None:
    async def run() -> None:
        first, second = pair_settings(metadata_url, tmp_path)
        bucket = ObjectBucket()
        one = CoordinatedNode(first, await open_store(first), bucket)
        two = CoordinatedNode(second, await open_store(second), bucket)
        await one.start()
        await two.start()
        await one.registry.publish((BrokerEndpoint("PLAINTEXT", "127.0.0.1", 9001, "PLAINTEXT"),))
        try:
            await one.topics.create(OFFSETS_TOPIC, SHARDS, {})
            await one.groups.load_led_shards()  # as the offsets topic's creation does
            await two.reconciler.reconcile()
            await one.reconciler.reconcile()
            stored = {r.partition: r for r in await one.metadata.partitions(OFFSETS_TOPIC)}
            on_one = {p for p, r in stored.items() if r.leader_node == 1}
            on_two = {p for p, r in stored.items() if r.leader_node == 2}
            assert on_one and on_two
            assert one.groups.shards.loaded == on_one and two.groups.shards.loaded == on_two
            mine, theirs = group_on(on_one), group_on(on_two)

            # Served by its shard's leader only.
            assert await one.commit(mine, 10) == [ErrorCode.none]
            assert await two.commit(mine, 99) == [ErrorCode.not_coordinator]
            assert (await two.committed(mine))[0] == ErrorCode.not_coordinator
            assert await two.commit(theirs, 20) == [ErrorCode.none]

            # A planned move of `mine`'s shard: the parked join is answered
            # NOT_COORDINATOR, the target serves the group with its offsets.
            parked = await one.groups.join_group(join_request(group=mine))
            member = parked["member_id"]
            parked = one.groups.join_group(join_request(member, group=mine))
            assert not parked.done()
            shard = partition_for(mine, SHARDS)
            await Controller(one.metadata, one.registry, 0.05).move({stored[shard].stream_id: 2})
            await one.reconciler.reconcile()
            assert (await parked)["error_code"] == ErrorCode.not_coordinator
            assert shard not in one.groups.shards.loaded
            assert await one.commit(mine, 11) == [ErrorCode.not_coordinator]
            await two.reconciler.reconcile()
            assert shard in two.groups.shards.loaded
            assert await two.committed(mine) == (ErrorCode.none, 10)
            assert await two.commit(mine, 12) == [ErrorCode.none]

            # Node 2's shard of `theirs` is released in the store and claimed by node 1
            # without node 2 knowing (a paused coordinator): its next commit and delete
            # are fenced in their transactions.
            shard = partition_for(theirs, SHARDS)
            row = stored[shard]
            epoch = two.engine.partitions[(OFFSETS_TOPIC, shard)].leader_epoch
            await Controller(one.metadata, one.registry, 0.05).move({row.stream_id: 1})
            assert await one.metadata.release_leadership(row.stream_id, 2, epoch)
            await one.reconciler.reconcile()
            assert shard in one.groups.shards.loaded
            assert await one.committed(theirs) == (ErrorCode.none, 20)
            fence = (row.stream_id, epoch)
            with pytest.raises(CoordinatorFenced):
                await two.metadata.delete_offsets(theirs, None, fence)
            # Group state writes too, in their own transactions (nothing written).
            with pytest.raises(CoordinatorFenced):
                await two.metadata.save_classic_groups({theirs: b"stale"}, {fence})
            with pytest.raises(CoordinatorFenced):
                await two.metadata.save_consumer_groups([ConsumerGroupWrite(theirs, None)], {fence})
            assert theirs not in await one.metadata.classic_groups()
            assert await two.commit(theirs, 21) == [ErrorCode.not_coordinator]
            assert (OFFSETS_TOPIC, shard) not in two.engine.partitions  # released
            assert shard not in two.groups.shards.loaded
            assert await one.committed(theirs) == (ErrorCode.none, 20)
            assert await one.commit(theirs, 22) == [ErrorCode.none]
            rows = [OffsetRow("t", 0, 23, -1, "")]
            with pytest.raises(CoordinatorFenced):
                await two.metadata.commit_offsets(theirs, rows, 0, (row.stream_id, epoch))
            assert await one.committed(theirs) == (ErrorCode.none, 22)

            # A shard's partition opened here outside the reconciler's pass (as a
            # recovery from a dead broker's object WAL serves it later): the first
            # request loads it, answered COORDINATOR_LOAD_IN_PROGRESS meanwhile.
            shard = partition_for(mine, SHARDS)
            await Controller(one.metadata, one.registry, 0.05).move({stored[shard].stream_id: 1})
            await two.reconciler.reconcile()  # hands it over
            rows = await one.metadata.partitions(OFFSETS_TOPIC)
            await one.engine.assign([r for r in rows if r.partition == shard])
            assert shard not in one.groups.shards.loaded
            assert await one.commit(mine, 13) == [ErrorCode.coordinator_load_in_progress]
            await wait_until_async(lambda: shard in one.groups.shards.loaded, 10, "loaded")
            assert await one.committed(mine) == (ErrorCode.none, 12)
            assert await one.commit(mine, 13) == [ErrorCode.none]
            await one.reconciler.reconcile()  # finds it loaded: no second load
            assert await one.committed(mine) == (ErrorCode.none, 13)
            # The handover recorded the epoch it unloaded the shard at (a request during
            # the handover does not load it again) and node 2 serves it no more.
            assert two.groups.shards.unloaded_at[shard] == stored[shard].leader_epoch + 1
            assert await two.commit(mine, 14) == [ErrorCode.not_coordinator]
        finally:
            await two.stop()
            await one.stop()

    asyncio.run(run())
