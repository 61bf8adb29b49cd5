"""Share groups across brokers, on both engines (RFC 0004 §3, RFC 0008): two storage
engines on one metadata store, each with a group coordinator following the
`__consumer_offsets` partitions it leads and a share coordinator following it. A share
group's membership is served only by its shard's leader (NOT_COORDINATOR elsewhere); a
planned move of the shard drops it on the source and loads it on the target, where its
member heartbeats on at its epoch; a coordinator whose shard was claimed at a newer epoch
behind its back saves no membership (the store refuses it in the save's transaction),
answers NOT_COORDINATOR and drops the shard's share groups. A share partition follows its
topic partition's leader instead, its saves fenced by that partition's leader epoch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from contextplane.cluster.controller import Controller
from contextplane.coordinators.share_coordinator import ShareCoordinator
from contextplane.coordinators.share_group import ShareHeartbeat
from contextplane.coordinators.share_stored import decode
from contextplane.errors import CoordinatorFenced
from contextplane.metadata.records import BrokerEndpoint
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import OFFSETS_TOPIC, partition_for
from contextplane.storage.memory_objects import ObjectBucket
from tests.support.metadata import open_store
from tests.unit.test_group_shards import SHARDS, CoordinatedNode, group_on, pair_settings


def _counts(topic: str) -> int:
    return 2 if topic == "t" else 0


class ShareNode(CoordinatedNode):
    async def start(self) -> None:
        await super().start()
        self.shares = ShareCoordinator(self.metadata)
        self.shares.follow(self.groups)
        await self.shares.start(_counts)

    async def stop(self) -> None:
        await self.shares.stop()
        await super().stop()

    async def beat(self, group_id: str, member: str, epoch: int) -> dict[str, Any]:
        topics = ("t",) if epoch == 0 else None
        request = ShareHeartbeat(group_id, member, epoch, None, topics, "client", "/127.0.0.1")
        return await self.shares.heartbeat(request, _counts)


async def _started(metadata_url: str, tmp_path: Path) -> tuple[ShareNode, ShareNode]:
    """Two brokers on one metadata store and bucket, node 1 registered."""
    bucket = ObjectBucket()
    first, second = pair_settings(metadata_url, tmp_path)
    one = ShareNode(first, await open_store(first), bucket)
    two = ShareNode(second, await open_store(second), bucket)
    await one.start()
    await two.start()
    await one.registry.publish((BrokerEndpoint("PLAINTEXT", "127.0.0.1", 9001, "PLAINTEXT"),))
    return one, two


def test_share_groups_follow_their_shard_and_a_fenced_save_is_refused(
    metadata_url: str, tmp_path: Path
) -> None:
    async def run() -> None:
        one, two = await _started(metadata_url, tmp_path)
        try:
            await one.topics.create(OFFSETS_TOPIC, SHARDS, {})
            await one.groups.load_led_shards()  # as the offsets topic's creation does
            await two.reconciler.reconcile()
            await one.reconciler.reconcile()
            stored = {r.partition: r for r in await one.metadata.partitions(OFFSETS_TOPIC)}
            on_one = {p for p, r in stored.items() if r.leader_node == 1}
            on_two = {p for p, r in stored.items() if r.leader_node == 2}
            assert on_one and on_two
            mine, theirs = group_on(on_one), group_on(on_two)

            # Served by its shard's leader only.
            joined = await one.beat(mine, "a", 0)
            assert joined["error_code"] == ErrorCode.none
            epoch = joined["member_epoch"]
            refused = await two.beat(mine, "b", 0)
            assert refused["error_code"] == ErrorCode.not_coordinator
            assert two.shares.describe(mine) is None
            assert (await two.beat(theirs, "c", 0))["error_code"] == ErrorCode.none

            # A planned move of `mine`'s shard: node 1 drops the group, node 2 loads it
            # and its member heartbeats on at its epoch.
            shard = partition_for(mine, SHARDS)
            await Controller(one.metadata, one.registry, 0.05).move({stored[shard].stream_id: 2})
            await one.reconciler.reconcile()
            assert one.shares.describe(mine) is None
            assert (await one.beat(mine, "a", epoch))["error_code"] == ErrorCode.not_coordinator
            await two.reconciler.reconcile()
            beat = await two.beat(mine, "a", epoch)
            # Not fenced: at the group's assignment epoch (a later one than its join's,
            # which dealt no partitions: they are initialized after it, as in Kafka).
            assert beat["error_code"] == ErrorCode.none
            assert beat["member_epoch"] == two.shares.describe(mine)["assignment_epoch"] > epoch
            assert (await two.beat(mine, "b", 0))["error_code"] == ErrorCode.none
            assert sorted(decode(mine, (await one.metadata.share_groups())[mine]).members) == [
                "a",
                "b",
            ]

            # Node 2's shard of `theirs` is released in the store and claimed by node 1
            # without node 2 knowing (a paused coordinator): its membership save is
            # refused in its transaction, it answers NOT_COORDINATOR and drops the group.
            shard = partition_for(theirs, SHARDS)
            row = stored[shard]
            epoch = two.engine.partitions[(OFFSETS_TOPIC, shard)].leader_epoch
            await Controller(one.metadata, one.registry, 0.05).move({row.stream_id: 1})
            assert await one.metadata.release_leadership(row.stream_id, 2, epoch)
            await one.reconciler.reconcile()
            assert one.shares.describe(theirs) is not None  # loaded as stored: member c
            with pytest.raises(CoordinatorFenced):
                await two.metadata.save_share_groups({theirs: b"stale"}, {(row.stream_id, epoch)})
            fenced = await two.beat(theirs, "d", 0)
            assert fenced["error_code"] == ErrorCode.not_coordinator
            assert two.shares.describe(theirs) is None
            assert shard not in two.groups.shards.loaded
            assert sorted(decode(theirs, (await one.metadata.share_groups())[theirs]).members) == [
                "c"
            ]
            assert (await one.beat(theirs, "d", 0))["error_code"] == ErrorCode.none
        finally:
            await two.stop()
            await one.stop()

    asyncio.run(run())


def test_share_partitions_follow_their_topic_partitions_leader(
    metadata_url: str, tmp_path: Path
) -> None:
    """A share partition is served by its topic partition's leader: the new leader reads
    the state the old one saved, and the old one's later save is fenced in its
    transaction (nothing written; its copy dropped)."""

    async def run() -> None:
        nodes = dict(enumerate(await _started(metadata_url, tmp_path), start=1))
        try:
            await nodes[1].topics.create("t", 1, {})
            for node in nodes.values():
                await node.reconciler.reconcile()
            row = (await nodes[1].metadata.partitions("t"))[0]
            old, new = nodes[row.leader_node], nodes[3 - row.leader_node]
            key = ("g", "t", 0)

            def fence(node: ShareNode) -> tuple[int, int]:
                return row.stream_id, node.engine.partitions[("t", 0)].leader_epoch

            await old.shares.lead(key, fence(old))
            stale = old.shares.partition(key, 0)
            assert len(stale.acquire("m", range(5), 5, old.shares.now_ms(), 5)) == 1
            assert await old.shares.save()

            await Controller(old.metadata, old.registry, 0.05).move(
                {row.stream_id: new.settings.node_id}
            )
            await old.reconciler.reconcile()
            await new.reconciler.reconcile()
            await new.shares.lead(key, fence(new))
            moved = new.shares.existing(key)
            assert moved is not None and moved.state_epoch == stale.state_epoch
            assert [(r.first_offset, r.last_offset) for r in moved.runs()] == [(0, 4)]
            moved.release_member("m")  # the records are offered again on the new leader
            assert await new.shares.save()
            saved = await new.metadata.share_partitions(key)

            # The old leader's copy changes behind the move (its member acknowledges):
            # the save is refused in its transaction, the copy goes. (A request takes it
            # through `existing`, which has the next save look at it.)
            assert old.shares.existing(key) is stale
            stale.acknowledge("m", [(0, 4, (1,))], old.shares.now_ms())
            assert not await old.shares.save()
            assert key not in old.shares.partitions
            assert await new.metadata.share_partitions(key) == saved
        finally:
            for node in nodes.values():
                await node.stop()

    asyncio.run(run())
