"""The reconciler and the handover, on both engines (RFC 0004 §2, §6): two storage engines
on one metadata store and one object bucket; a topic created on the first is opened by
each broker where it is targeted, and each names the other's leaders; a planned move
refuses appends during the handover, uploads only the partition's tail (one object, the
retained objects untouched), and the target serves every offset from where it was, with
the idempotent producer's state, at the next epoch."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from contextplane.broker.topics import TopicManager
from contextplane.cluster.controller import Controller
from contextplane.cluster.leadership import NotLeader
from contextplane.cluster.reconciler import Reconciler
from contextplane.cluster.registry import Registry
from contextplane.metadata.records import BrokerEndpoint
from contextplane.metadata.store import MetadataStore
from contextplane.security import scram
from contextplane.security.scram_credentials import ScramCredentials, Upsertion
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.memory_wal import MemoryWal
from tests.support.metadata import open_store
from tests.support.wait import wait_until_async
from tests.unit.test_engine_recovery import batch


class Node:
    def __init__(self, settings: Settings, metadata: MetadataStore, bucket: ObjectBucket) -> None:
        self.settings = settings
        self.metadata = metadata
        self.engine = StorageEngine(
            settings, metadata, wal=MemoryWal(), objects=MemoryObjectStore(bucket)
        )
        self.registry = Registry(metadata, settings, lambda: None)
        # Odd streams on node 1, even ones on node 2: the test knows where each goes.
        self.topics = TopicManager(
            metadata, self.engine, settings, lambda topic: lambda stream: 2 - stream % 2
        )
        self.reconciler = Reconciler(
            metadata,
            self.engine,
            self.registry,
            self.topics.refresh,
            lambda name: name in self.topics.topics(),
            lambda name: False,
            settings.node_id,
            0.05,
        )

    async def start(self) -> None:
        port = 9000 + self.settings.node_id
        await self.registry.register((BrokerEndpoint("PLAINTEXT", "127.0.0.1", port, "PLAINTEXT"),))
        await self.topics.load()
        await self.engine.open()

    async def stop(self) -> None:
        await self.engine.close()
        await self.registry.stop()
        await self.metadata.close()


async def two_nodes(
    metadata_url: str, tmp_path: Path, **overrides: Any
) -> tuple[Node, Node, ObjectBucket]:
    """Nodes 1 (the controller, which sees node 2 live) and 2 on one metadata store and
    one bucket, started; every heartbeat, upload and lease left to the test to drive."""
    first = Settings(
        data_dir=tmp_path / "one",
        node_id=1,
        metadata_url=metadata_url,
        upload_interval_ms=3_600_000,
        broker_heartbeat_interval_ms=3_600_000,  # the test drives each pass itself
        broker_session_timeout_ms=3_600_000,
        **overrides,
    )
    second = replace(first, data_dir=tmp_path / "two", node_id=2)
    for settings in (first, second):
        settings.data_dir.mkdir()
    bucket = ObjectBucket()
    one = Node(first, await open_store(first), bucket)
    two = Node(second, await open_store(second), bucket)
    await one.start()
    await two.start()
    endpoint = (BrokerEndpoint("PLAINTEXT", "127.0.0.1", 9001, "PLAINTEXT"),)
    await one.registry.publish(endpoint)
    return one, two, bucket


def test_partitions_open_where_targeted_and_a_move_hands_over_only_the_tail(
    metadata_url: str, tmp_path: Path
) -> None:
    async def run() -> None:
        one, two, bucket = await two_nodes(metadata_url, tmp_path)
        assert one.registry.is_controller and one.registry.live_ids == {1, 2}
        try:
            await one.topics.create("t", 4, {})
            await two.reconciler.reconcile()
            await one.reconciler.reconcile()
            stored = {r.partition: r for r in await one.metadata.partitions("t")}
            on_one = sorted(p for p, r in stored.items() if r.stream_id % 2)
            on_two = sorted(p for p, r in stored.items() if not r.stream_id % 2)
            assert on_one and on_two
            assert sorted(p for _, p in one.engine.partitions) == on_one
            assert sorted(p for _, p in two.engine.partitions) == on_two
            assert {r.partition: r.leader_node for r in stored.values()} == {
                p: 1 if p in on_one else 2 for p in stored
            }
            # Each names the other's leaders (Metadata, NOT_LEADER_OR_FOLLOWER).
            assert one.engine.led_elsewhere == {("t", p): (2, 1) for p in on_two}
            assert "t" in two.topics.topics()  # created elsewhere, learnt by the pass
            with pytest.raises(NotLeader, match="led by node 1"):
                two.engine.partition("t", on_one[0])

            # Partition `moved` of node 1 holds an uploaded object and a tail.
            moved = on_one[0]
            log = one.engine.partitions[("t", moved)]
            await one.engine.append(log, batch(7, 0, 5, b"A")).durable
            await one.engine.upload_once()
            retained = dict(bucket.objects)
            await one.engine.append(log, batch(7, 5, 5, b"B")).durable
            in_flight = one.engine.append(log, batch(7, 10, 5, b"C")).durable

            await Controller(one.metadata, one.registry, 0.05).move({log.stream_id: 2})
            handover = asyncio.ensure_future(one.reconciler.reconcile())
            while not log.handing_over and not handover.done():
                await asyncio.sleep(0)
            # Appends are refused from the start of the handover; the write in flight
            # is acknowledged.
            with pytest.raises(NotLeader):
                one.engine.append(log, batch(7, 15, 5, b"D"))
            await handover
            await in_flight
            with pytest.raises(NotLeader):
                one.engine.partition("t", moved)
            # One new object, the tail's; the retained object untouched.
            added = {k: v for k, v in bucket.objects.items() if k not in retained}
            assert len(added) == 1
            assert all(bucket.objects[k] == v for k, v in retained.items())

            await two.reconciler.reconcile()
            taken = two.engine.partition("t", moved)
            assert (taken.next_offset, taken.leader_epoch) == (15, log.leader_epoch + 1)
            ranges = await two.metadata.ranges_of(taken.stream_id)
            assert [(r.base_offset, r.end_offset) for r in ranges] == [(0, 5), (5, 15)]
            assert ranges[0].object_key in retained and ranges[1].object_key in added
            # The idempotent producer goes on where it was: a retry is a duplicate, the
            # next sequence is appended at offset 15.
            duplicate = two.engine.append(taken, batch(7, 10, 5, b"C"))
            assert duplicate.base_offset == 10
            await two.engine.append(taken, batch(7, 15, 5, b"D")).durable
            assert taken.high_watermark == 20
            read = await two.engine.read(taken, 0, 1 << 20)
            assert len(read) >= 1
            # Node 1 learns the new leader at its next pass.
            await one.reconciler.reconcile()
            assert one.engine.led_elsewhere[("t", moved)] == (2, taken.leader_epoch)
            assert (await one.metadata.partitions("t"))[moved].leader_node == 2
        finally:
            await two.stop()
            await one.stop()

    asyncio.run(run())


def test_a_failed_security_reload_is_retried_until_it_reads_the_change(
    metadata_url: str, tmp_path: Path
) -> None:
    """A SCRAM user created through node 1 moves `generation.security`; node 2's first
    read of it fails (the store unreachable), its pass is retried and the next read
    brings the user in, without the reconciler stopping."""

    async def run() -> None:
        one, two, _ = await two_nodes(metadata_url, tmp_path)
        mine = await ScramCredentials.load(one.metadata)
        theirs = await ScramCredentials.load(two.metadata)
        failed: list[str] = []

        async def refresh_security() -> None:
            if not failed:
                failed.append("once")
                raise ConnectionError("the metadata store is unreachable")
            await theirs.reload()

        two.reconciler.refresh_security = refresh_security
        try:
            sha512 = scram.SHA_512
            user = Upsertion("alice", sha512.type, 4096, b"salt" * 8, b"\x01" * 64)
            await mine.alter([], [user])
            two.registry.security_generation += 1  # what node 2's heartbeat reads
            two.reconciler.start()
            await wait_until_async(
                lambda: theirs.lookup("alice", sha512.name), 10, "node 2 reads the new user"
            )
            assert failed == ["once"]
        finally:
            await two.reconciler.stop()
            await two.stop()
            await one.stop()

    asyncio.run(run())


def test_a_security_change_is_read_while_a_pass_is_held_up(
    metadata_url: str, tmp_path: Path
) -> None:
    """A pass stuck in a handover (up to `partition.move.timeout.ms`) does not hold up
    the ACLs, users and quotas: node 2 reads a user created through node 1 meanwhile."""

    async def run() -> None:
        one, two, _ = await two_nodes(metadata_url, tmp_path)
        mine = await ScramCredentials.load(one.metadata)
        theirs = await ScramCredentials.load(two.metadata)
        held = asyncio.Event()

        async def stuck_pass() -> None:
            held.set()
            await asyncio.Event().wait()  # a handover that does not end

        two.reconciler.reconcile = stuck_pass  # type: ignore[method-assign]
        two.reconciler.refresh_security = theirs.reload
        try:
            two.reconciler.start()
            await asyncio.wait_for(held.wait(), 10)
            sha512 = scram.SHA_512
            user = Upsertion("bob", sha512.type, 4096, b"salt" * 8, b"\x02" * 64)
            await mine.alter([], [user])
            two.registry.security_generation += 1  # what node 2's heartbeat reads
            two.registry.security_changed.set()
            await wait_until_async(
                lambda: theirs.lookup("bob", sha512.name), 10, "node 2 reads the new user"
            )
        finally:
            await two.reconciler.stop()
            await two.stop()
            await one.stop()

    asyncio.run(run())
