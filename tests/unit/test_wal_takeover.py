"""Recovery of a dead broker's object WAL by another broker (RFC 0004 §4): the
controller gives every dirty partition of a dead broker whose registration names an
object WAL to one live broker, that broker's claim takes them (dirty at its own epoch)
and replays the dead broker's WAL into them, and the recovered incarnation is marked and
its objects deleted. Both metadata engines; the WALs are real object WALs on `file://`
stores."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path

import pytest

from contextplane.cluster.assignment_plan import Candidate, Placement
from contextplane.cluster.leadership import NotLeader
from contextplane.metadata.records import WalSource
from contextplane.metadata.sql_engine import SqlEngine
from contextplane.protocol.records import parse_header
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from contextplane.storage.object_wal import ObjectWal
from contextplane.storage.partition import PartitionLog, WalState
from tests.support.metadata import open_engine
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until_async
from tests.unit.test_controller_lease import LONG_MS, endpoints
from tests.unit.test_engine_recovery import batch
from tests.unit.test_wal_dirty import dirty_of, node_settings, opened


def register(engine: SqlEngine, node: int, incarnation: int, session_ms: int, wal: str | None):
    assert engine.register_broker(
        node, incarnation, None, endpoints(9000 + node), session_ms, wal_url=wal
    ).registered


def wal_url_of(engine: SqlEngine, node: int) -> str | None:
    row = engine._db.execute("SELECT wal_url FROM brokers WHERE node_id=?", (node,)).fetchone()
    return None if row[0] is None else str(row[0])


def test_a_dead_object_wal_brokers_dirty_partitions_go_to_one_recoverer_that_may_claim_them(
    metadata_url: str,
) -> None:
    engine = open_engine(metadata_url)
    try:
        register(engine, 1, 10, 300, "s3://bucket/wal")
        register(engine, 2, 20, LONG_MS, None)
        register(engine, 3, 30, LONG_MS, None)
        beat = engine.cluster_heartbeat(2, 20, LONG_MS, -1)
        assert beat is not None and beat.controller.node_id == 2
        engine.create_topic("t", 6, {}, lambda stream_id: 1)
        streams = [r.stream_id for r in engine.partitions("t")]
        assert len(engine.claim_leadership({s: 0 for s in streams}, 1).claimed) == 6
        dirty = streams[:4]
        assert engine.mark_wal_dirty({s: 1 for s in dirty}) == set(dirty)
        # While its partitions are dirty the incarnation is not recovered.
        assert not engine.finish_wal_recovery(1, 10)
        time.sleep(0.4)
        live = [Candidate(2, None), Candidate(3, None)]
        (expiry,) = engine.expire_brokers(beat.controller, lambda dead: Placement(live))
        assert expiry.offline == []
        assert expiry.recoverer in (2, 3)
        recoverer = expiry.recoverer
        other = 5 - recoverer
        assert {s: expiry.moved[s] for s in dirty} == {s: recoverer for s in dirty}
        placement = Placement(live)
        assert {s: expiry.moved[s] for s in streams[4:]} == {s: placement(s) for s in streams[4:]}
        # The other live broker is not the target: it claims none of them.
        assert engine.claim_leadership({dirty[0]: 1}, other).claimed == {}
        claim = engine.claim_leadership({s: 1 for s in dirty}, recoverer)
        assert claim.claimed == {s: 2 for s in dirty}
        source = WalSource(1, 10, "s3://bucket/wal")
        assert claim.recovering == {s: (source,) for s in dirty}
        assert claim.unclean == {}
        # Dirty at the recoverer's epoch: its WAL holds the records once replayed.
        rows = {r.stream_id: r.wal_dirty for r in engine.partitions("t")}
        assert [rows[s] for s in dirty] == [2] * 4
        # Recovered: marked once, then never again.
        assert engine.finish_wal_recovery(1, 10)
        assert wal_url_of(engine, 1) is None
        assert not engine.finish_wal_recovery(1, 10)
        # Node 1 returning registers its new object WAL; nothing of the old is its own.
        register(engine, 1, 11, LONG_MS, "s3://bucket/wal")
        assert wal_url_of(engine, 1) == "s3://bucket/wal"
        assert not engine.finish_wal_recovery(1, 10)
    finally:
        engine.close()


def test_a_local_wal_brokers_dirty_partition_is_still_claimed_by_no_other(
    metadata_url: str,
) -> None:
    engine = open_engine(metadata_url)
    try:
        register(engine, 1, 10, 50, None)
        register(engine, 2, 20, LONG_MS, None)
        engine.create_topic("t", 1, {}, lambda stream_id: 1)
        (stream,) = (r.stream_id for r in engine.partitions("t"))
        assert engine.claim_leadership({stream: 0}, 1).claimed == {stream: 1}
        assert engine.mark_wal_dirty({stream: 1}) == {stream}
        engine._db.execute("UPDATE partitions SET target_node=2")
        time.sleep(0.1)
        refused = engine.claim_leadership({stream: 1}, 2)
        assert (refused.claimed, refused.dirty, refused.recovering) == ({}, {stream: 1}, {})
    finally:
        engine.close()


async def offsets_read(engine: StorageEngine, partition: PartitionLog) -> list[int]:
    """Every offset a reader from offset 0 gets, fetch after fetch, in order."""
    offsets: list[int] = []
    while True:
        got = await engine.read(partition, offsets[-1] + 1 if offsets else 0, 1 << 20)
        if not got:
            return offsets
        for data in got:
            header = parse_header(bytes(data))
            offsets += range(header.base_offset, header.base_offset + header.last_offset_delta + 1)


async def storage(
    url: str, node: int, incarnation: int, tmp_path: Path, wal_url: str, bucket: ObjectBucket
) -> StorageEngine:
    settings = dataclasses.replace(
        node_settings(node, tmp_path / str(node), LONG_MS), wal_url=wal_url
    )
    engine = StorageEngine(
        settings, await opened(url), objects=MemoryObjectStore(bucket), wal_incarnation=incarnation
    )
    engine.dirty.enabled = True  # on SQLite too: the statements are the same
    await engine.open()
    return engine


def test_the_recoverer_replays_the_dead_brokers_wal_once_bounded_and_deletes_it(
    metadata_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        wal_url = (tmp_path / "wal-objects").as_uri()
        bucket = ObjectBucket()
        setup = open_engine(metadata_url)
        register(setup, 1, 10, 400, wal_url)
        register(setup, 2, 20, LONG_MS, wal_url)
        beat = setup.cluster_heartbeat(2, 20, LONG_MS, -1)
        assert beat is not None and beat.controller.node_id == 2
        setup.create_topic("t", 2, {}, lambda stream_id: 1)
        dead = await storage(metadata_url, 1, 10, tmp_path, wal_url, bucket)
        first, second = dead.partitions[("t", 0)], dead.partitions[("t", 1)]
        await dead.append(first, batch(1, 0, 5, b"A")).durable
        await dead.append(second, batch(2, 0, 5, b"B")).durable
        await dead.upload_once()  # 0-4 of each in an object; their WAL entries may stay
        await dead.append(first, batch(1, 5, 5, b"C")).durable
        await dead.append(second, batch(2, 5, 3, b"D")).durable
        await dead.append(first, batch(1, 10, 2, b"E")).durable
        # A crash: nothing more uploaded, the WAL objects stay.
        dead.wal.close()
        await dead.metadata.close()
        await asyncio.sleep(0.5)
        (expiry,) = setup.expire_brokers(
            beat.controller, lambda gone: Placement([Candidate(2, None)])
        )
        assert expiry.recoverer == 2
        recoverer = await storage(metadata_url, 2, 20, tmp_path, wal_url, bucket)
        try:
            # At most wal.backlog.bytes is read: more, and the partitions stay offline.
            takeover = recoverer.takeover
            roomy = takeover._settings
            takeover._settings = dataclasses.replace(
                roomy,
                wal_backlog_bytes=100,
                wal_object_max_in_flight=1,
                wal_object_max_bytes=1,
                message_max_bytes=1,
            )
            with caplog.at_level(logging.WARNING):
                claimed = await recoverer.assign(setup.partitions("t"))
                assert claimed == []  # claimed, served once recovered
                await wait_until_async(
                    lambda: "recovering node 1's object WAL failed" in caplog.text,
                    10,
                    "a recovery refused",
                )
            assert "more than the 103 a recovery reads" in caplog.text
            assert recoverer.partitions == {}
            assert takeover.recovering == {first.stream_id, second.stream_id}
            takeover._settings = roomy
            await wait_until_async(lambda: takeover.recovered == 1, 60, "the recovery")
            one, two = recoverer.partitions[("t", 0)], recoverer.partitions[("t", 1)]
            assert (one.next_offset, two.next_offset) == (12, 8)
            # Only what was past each object end, each batch once.
            assert [(b.base_offset, b.end_offset) for b in one.cache] == [(5, 10), (10, 12)]
            assert [(b.base_offset, b.end_offset) for b in two.cache] == [(5, 8)]
            assert await offsets_read(recoverer, one) == list(range(12))
            assert await offsets_read(recoverer, two) == list(range(8))
            assert dirty_of(setup, "t") == [one.leader_epoch, two.leader_epoch]
            # The dead incarnation is recovered and its objects deleted.
            assert wal_url_of(setup, 1) is None
            assert not list((tmp_path / "wal-objects" / "1").rglob("*-*"))
            # The recovered records go up as the recoverer's own and the marks clear.
            while await recoverer.upload_once():
                pass
            assert dirty_of(setup, "t") == [0, 0]
            assert await offsets_read(recoverer, one) == list(range(12))
        finally:
            await recoverer.close()
            await recoverer.metadata.close()
            setup.close()

    asyncio.run(scenario())


def test_with_an_object_wal_a_dirty_partition_acknowledges_only_after_reading_its_epoch(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """Another broker may claim a dirty partition and replay this broker's WAL: an append
    to a partition already marked dirty is acknowledged only once its stored epoch, read
    after its PUT, is still this broker's (RFC 0004 §5's fence)."""

    async def scenario() -> None:
        url = postgres_server.create_database()
        wal_url = (tmp_path / "wal-objects").as_uri()
        setup = open_engine(url)
        register(setup, 1, 10, LONG_MS, wal_url)
        setup.create_topic("t", 1, {}, lambda stream_id: 1)
        engine = await storage(url, 1, 10, tmp_path, wal_url, ObjectBucket())
        try:
            partition = engine.partitions[("t", 0)]
            await engine.append(partition, batch(1, 0, 5, b"A")).durable
            assert partition.wal_state is WalState.DIRTY
            # Another claim moves the epoch on: the next append (no mark needed) is in
            # the WAL, but not acknowledged, and the partition is released.
            stream = partition.stream_id
            assert setup.claim_leadership({stream: partition.leader_epoch}, 1).claimed
            refused = engine.append(partition, batch(1, 5, 5, b"B")).durable
            assert refused is not None
            with pytest.raises(NotLeader):
                await refused
            assert partition.released
        finally:
            await engine.close()
            await engine.metadata.close()
            setup.close()

    asyncio.run(scenario())


def test_a_failing_get_keeps_the_partitions_offline_and_is_retried(
    metadata_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        wal_bucket, bucket = ObjectBucket(), ObjectBucket()
        setup = open_engine(metadata_url)
        register(setup, 1, 10, 400, "s3://wal")
        register(setup, 2, 20, LONG_MS, None)
        beat = setup.cluster_heartbeat(2, 20, LONG_MS, -1)
        assert beat is not None and beat.controller.node_id == 2
        setup.create_topic("t", 1, {}, lambda stream_id: 1)
        dead = StorageEngine(
            node_settings(1, tmp_path / "one", LONG_MS),
            await opened(metadata_url),
            wal=ObjectWal(MemoryObjectStore(wal_bucket), 1, 10),
            objects=MemoryObjectStore(bucket),
        )
        dead.dirty.enabled = True
        await dead.open()
        partition = dead.partitions[("t", 0)]
        await dead.append(partition, batch(1, 0, 5, b"A")).durable
        await dead.append(partition, batch(1, 5, 5, b"B")).durable
        dead.wal.close()  # a crash: nothing uploaded
        await dead.metadata.close()
        await asyncio.sleep(0.5)
        (expiry,) = setup.expire_brokers(
            beat.controller, lambda gone: Placement([Candidate(2, None)])
        )
        assert expiry.recoverer == 2
        recoverer = StorageEngine(
            node_settings(2, tmp_path / "two", LONG_MS),
            await opened(metadata_url),
            wal=MemoryWal(WalMedium()),
            objects=MemoryObjectStore(bucket),
        )
        recoverer.dirty.enabled = True
        await recoverer.open()
        store = MemoryObjectStore(wal_bucket)
        store.failing.add("get")
        recoverer.takeover._open_store = lambda url: store
        try:
            with caplog.at_level(logging.WARNING):
                assert await recoverer.assign(setup.partitions("t")) == []
                await wait_until_async(
                    lambda: caplog.text.count("recovering node 1's object WAL failed") >= 2,
                    10,
                    "two failed attempts",
                )
            assert "connection refused (injected)" in caplog.text
            assert recoverer.partitions == {}  # offline, never half-recovered
            store.failing.clear()
            await wait_until_async(lambda: recoverer.takeover.recovered == 1, 60, "the recovery")
            recovered = recoverer.partitions[("t", 0)]
            assert [(b.base_offset, b.end_offset) for b in recovered.cache] == [(0, 5), (5, 10)]
            assert await offsets_read(recoverer, recovered) == list(range(10))
            assert not [k for k in wal_bucket.objects if k.startswith("1/")]
        finally:
            await recoverer.close()
            await recoverer.metadata.close()
            setup.close()

    asyncio.run(scenario())


def test_a_recoverer_dying_mid_recovery_leaves_the_dead_wal_to_the_next_one(
    metadata_url: str, tmp_path: Path
) -> None:
    """Broker 2 claims broker 1's dirty partition and dies before replaying anything:
    broker 3, recovering broker 2's WAL, reads broker 1's too (still unrecovered)."""

    async def scenario() -> None:
        wal_bucket, bucket = ObjectBucket(), ObjectBucket()
        setup = open_engine(metadata_url)
        register(setup, 3, 30, LONG_MS, None)
        beat = setup.cluster_heartbeat(3, 30, LONG_MS, -1)
        assert beat is not None and beat.controller.node_id == 3
        register(setup, 1, 10, 400, "s3://wal")
        register(setup, 2, 20, LONG_MS, "s3://wal")
        setup.create_topic("t", 1, {}, lambda stream_id: 1)
        dead = StorageEngine(
            node_settings(1, tmp_path / "one", LONG_MS),
            await opened(metadata_url),
            wal=ObjectWal(MemoryObjectStore(wal_bucket), 1, 10),
            objects=MemoryObjectStore(bucket),
        )
        dead.dirty.enabled = True
        await dead.open()
        partition = dead.partitions[("t", 0)]
        await dead.append(partition, batch(1, 0, 5, b"A")).durable
        await dead.append(partition, batch(1, 5, 5, b"B")).durable
        dead.wal.close()  # a crash: nothing uploaded
        await dead.metadata.close()
        stream = partition.stream_id
        await asyncio.sleep(0.5)
        (first,) = setup.expire_brokers(
            beat.controller, lambda gone: Placement([Candidate(2, None)])
        )
        assert (first.node_id, first.recoverer) == (1, 2)
        # Broker 2 claims it, then dies (its lease lapses) before appending a thing to
        # its own WAL.
        claim = setup.claim_leadership({stream: 1}, 2)
        assert claim.claimed == {stream: 2}
        setup._db.execute("UPDATE brokers SET lease_expires_ms=0 WHERE node_id=2")
        (again,) = setup.expire_brokers(
            beat.controller, lambda gone: Placement([Candidate(3, None)])
        )
        assert (again.node_id, again.recoverer) == (2, 3)
        recoverer = StorageEngine(
            node_settings(3, tmp_path / "three", LONG_MS),
            await opened(metadata_url),
            wal=MemoryWal(WalMedium()),
            objects=MemoryObjectStore(bucket),
        )
        recoverer.dirty.enabled = True
        await recoverer.open()
        recoverer.takeover._open_store = lambda url: MemoryObjectStore(wal_bucket)
        try:
            assert await recoverer.assign(setup.partitions("t")) == []
            await wait_until_async(lambda: recoverer.takeover.recovered == 1, 60, "the recovery")
            recovered = recoverer.partitions[("t", 0)]
            assert recovered.leader_epoch == 3
            assert await offsets_read(recoverer, recovered) == list(range(10))
            assert wal_url_of(setup, 1) is None and wal_url_of(setup, 2) is None
            assert not [k for k in wal_bucket.objects if k.startswith("1/")]
        finally:
            await recoverer.close()
            await recoverer.metadata.close()
            setup.close()

    asyncio.run(scenario())
