"""Transaction coordinators across brokers, on both engines (RFC 0004 §3): two storage
engines on one metadata store, each with its transaction coordinator following the
`__transaction_state` partitions it leads (the reconciler loads and unloads them). A
transactional id is served only by its shard's leader (NOT_COORDINATOR elsewhere); a
planned move of the shard unloads it and its target goes on with the stored
transaction, finishing a Prepare state the old coordinator could not, offsets a group
coordinator on the other broker added included (its group added by AddOffsetsToTxn, or
by its `__consumer_offsets` partition as transactions v2 add it, which gets no marker);
a coordinator
whose shard was claimed at a newer epoch behind its back commits nothing, answers
NOT_COORDINATOR and lets the partition go."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contextplane.broker.offsets_topic import OffsetsShards
from contextplane.clock import SystemClock
from contextplane.cluster.controller import Controller
from contextplane.coordinators.producer_ids import ProducerIds
from contextplane.coordinators.transactions import TransactionConfig, TransactionCoordinator
from contextplane.coordinators.txn_shards import TXN_STATE_TOPIC
from contextplane.errors import KafkaError
from contextplane.metadata.records import BrokerEndpoint, OffsetRow
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import OFFSETS_TOPIC, partition_for
from contextplane.settings import Settings
from contextplane.storage.memory_objects import ObjectBucket
from tests.support.metadata import open_store
from tests.unit.test_group_shards import pair_settings
from tests.unit.test_reconciler import Node

SHARDS = 4
CONFIG = TransactionConfig(max_timeout_ms=900_000, abort_interval_ms=3_600_000)


class TxnNode(Node):
    def __init__(self, settings: Settings, metadata: object, bucket: ObjectBucket) -> None:
        super().__init__(settings, metadata, bucket)  # type: ignore[arg-type]
        self.markers: list[tuple[str, int, int, bool]] = []
        self.markers_fail = False

    async def write_marker(
        self, topic: str, index: int, producer_id: int, epoch: int, commit: bool
    ) -> None:
        if self.markers_fail:
            raise KafkaError(ErrorCode.not_leader_or_follower)
        self.markers.append((topic, index, producer_id, commit))

    async def start(self) -> None:
        await super().start()
        self.txns = TransactionCoordinator(
            self.metadata,
            ProducerIds(self.metadata),
            SystemClock(),
            CONFIG,
            self.write_marker,
            leases=OffsetsShards(self.engine, self.topics, TXN_STATE_TOPIC),
        )
        await self.txns.start()
        self.reconciler.coordinators[TXN_STATE_TOPIC] = self.txns

    async def stop(self) -> None:
        await self.txns.stop()
        await super().stop()


def tid_on(shards: set[int]) -> str:
    return next(t for i in range(1000) if partition_for(t := f"tx{i}", SHARDS) in shards)


async def code_of(call: object) -> ErrorCode:
    try:
        await call  # type: ignore[misc]
    except KafkaError as exc:
        return exc.code
    return ErrorCode.none


def test_transactional_ids_follow_their_shard_and_a_fenced_coordinator_commits_nothing(
    metadata_url: str, tmp_path: Path
) -> None:
    async def run() -> None:
        first, second = pair_settings(metadata_url, tmp_path)
        bucket = ObjectBucket()
        one = TxnNode(first, await open_store(first), bucket)
        two = TxnNode(second, await open_store(second), bucket)
        await one.start()
        await two.start()
        await one.registry.publish((BrokerEndpoint("PLAINTEXT", "127.0.0.1", 9001, "PLAINTEXT"),))
        try:
            await one.topics.create(TXN_STATE_TOPIC, SHARDS, {})
            await two.reconciler.reconcile()
            await one.reconciler.reconcile()
            stored = {r.partition: r for r in await one.metadata.partitions(TXN_STATE_TOPIC)}
            on_one = {p for p, r in stored.items() if r.leader_node == 1}
            on_two = {p for p, r in stored.items() if r.leader_node == 2}
            assert on_one and on_two
            # Node 1 created the topic: its shards were led before the pass loaded them.
            await one.txns.load_shard(min(on_one))
            for shard in on_one - {min(on_one)}:
                await one.txns.load_shard(shard)
            assert one.txns.shards.loaded == on_one and two.txns.shards.loaded == on_two
            mine, theirs = tid_on(on_one), tid_on(on_two)

            # Served by its shard's leader only.
            pid, epoch = await one.txns.init_producer(mine, 60_000)
            assert await code_of(two.txns.init_producer(mine, 60_000)) == ErrorCode.not_coordinator
            codes = two.txns.verify_partitions(mine, pid, epoch, [("t", 0)])
            assert codes == {("t", 0): ErrorCode.not_coordinator}
            await one.txns.add_partitions(mine, pid, epoch, [("t", 0), ("t", 1)])

            # TxnOffsetCommit at a group coordinator on node 2: checked against the
            # stored transaction in the store transaction that adds the offsets.
            rows = [OffsetRow("t", 0, 42, -1, "")]
            offsets = two.txns.txn_offset_commit(mine, "g", pid, epoch, rows)
            assert await code_of(offsets) == ErrorCode.invalid_txn_state  # "g" not added
            await one.txns.add_offsets(mine, pid, epoch, "g")
            offsets = two.txns.txn_offset_commit(mine, "g", pid, epoch + 1, rows)
            assert await code_of(offsets) == ErrorCode.producer_fenced
            await two.txns.txn_offset_commit(mine, "g", pid, epoch, rows)
            # Transactions v2: the group coordinator's broker added the group's
            # `__consumer_offsets` partition (AddPartitionsToTxn v5, as Kafka's does):
            # that admits the groups of that partition, and it gets no marker.
            later = [OffsetRow("t", 1, 7, -1, "")]
            offsets = two.txns.txn_offset_commit(mine, "v2", pid, epoch, later, group_shard=5)
            assert await code_of(offsets) == ErrorCode.invalid_txn_state  # not added yet
            await one.txns.add_partitions(mine, pid, epoch, [(OFFSETS_TOPIC, 5)], version=2)
            offsets = two.txns.txn_offset_commit(mine, "v2", pid, epoch, later, group_shard=6)
            assert await code_of(offsets) == ErrorCode.invalid_txn_state  # another partition
            await two.txns.txn_offset_commit(mine, "v2", pid, epoch, later, group_shard=5)

            # A planned move with a commit prepared that could not write its markers:
            # the target loads the transaction and finishes the commit.
            one.markers_fail = True
            assert await code_of(one.txns.end_transaction(mine, pid, epoch, True)) == (
                ErrorCode.none
            )
            assert one.txns.record(mine).state == "PrepareCommit"  # type: ignore[union-attr]
            shard = partition_for(mine, SHARDS)
            await Controller(one.metadata, one.registry, 0.05).move({stored[shard].stream_id: 2})
            await one.reconciler.reconcile()
            assert shard not in one.txns.shards.loaded and one.txns.record(mine) is None
            assert await code_of(one.txns.add_offsets(mine, pid, epoch, "g")) == (
                ErrorCode.not_coordinator
            )
            await two.reconciler.reconcile()
            assert shard in two.txns.shards.loaded
            assert sorted(two.markers) == [("t", 0, pid, True), ("t", 1, pid, True)]
            assert two.txns.record(mine).state == "CompleteCommit"  # type: ignore[union-attr]
            assert (await two.metadata.fetch_offsets("g"))[("t", 0)].offset == 42
            assert (await two.metadata.fetch_offsets("v2"))[("t", 1)].offset == 7
            await two.txns.add_partitions(mine, pid, epoch, [("t", 2)])

            # Node 2's shard of `theirs` released in the store and claimed by node 1
            # without node 2 knowing (a paused coordinator): its transition is refused
            # in its transaction, it answers NOT_COORDINATOR and lets the partition go.
            pid2, epoch2 = await two.txns.init_producer(theirs, 60_000)
            shard = partition_for(theirs, SHARDS)
            row = stored[shard]
            leader_epoch = two.engine.partitions[(TXN_STATE_TOPIC, shard)].leader_epoch
            await Controller(one.metadata, one.registry, 0.05).move({row.stream_id: 1})
            assert await one.metadata.release_leadership(row.stream_id, 2, leader_epoch)
            await one.reconciler.reconcile()
            assert shard in one.txns.shards.loaded
            add = two.txns.add_partitions(theirs, pid2, epoch2, [("t", 3)])
            assert await code_of(add) == ErrorCode.not_coordinator
            assert (TXN_STATE_TOPIC, shard) not in two.engine.partitions  # released
            assert shard not in two.txns.shards.loaded
            stored_now = {r.transactional_id: r for r in await one.metadata.transactions()}
            assert stored_now[theirs].state == "Empty" and not stored_now[theirs].partitions
            await one.txns.add_partitions(theirs, pid2, epoch2, [("t", 3)])
            assert one.txns.record(theirs).partitions == {("t", 3): False}  # type: ignore[union-attr]
        finally:
            await two.stop()
            await one.stop()

    asyncio.run(run())
