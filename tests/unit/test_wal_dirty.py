"""The dirty protocol and failover of RFC 0004 §5, on both engines: a leader marks a
partition dirty at its epoch before acknowledging, a commit that publishes everything
appended clears it, a stale epoch marks nothing and acknowledges nothing; a claim refuses
a dirty partition unless the claimer's node dirtied it or unclean election is on; the
controller expires lapsed brokers, moving their clean partitions and leaving the dirty
ones offline, and only after holding its lease one session without a failed heartbeat;
a restart replays only the streams this node may still replay."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from contextplane.cluster.assignment_plan import Candidate, Placement
from contextplane.cluster.leadership import NotLeader
from contextplane.cluster.registry import Registry
from contextplane.errors import KafkaError
from contextplane.metadata.records import ControllerRecord, ObjectCommit, RangeCommit
from contextplane.metadata.sql_engine import SqlEngine
from contextplane.metadata.store import MetadataStore, MetadataStoreUnavailable, open_metadata_store
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from contextplane.storage.partition import WalState
from tests.support.metadata import open_engine
from tests.support.wait import wait_until_async
from tests.unit.test_controller_lease import LONG_MS, endpoints, registered
from tests.unit.test_engine_recovery import batch


def dirty_of(engine: SqlEngine, topic: str) -> list[int]:
    return [r.wal_dirty for r in engine.partitions(topic)]


def commit(stream_id: int, epoch: int, base: int, end: int, key: str, clear: bool) -> ObjectCommit:
    return ObjectCommit(
        key=key,
        size=10,
        created_ms=0,
        ranges=[RangeCommit(stream_id, base, end, 0, 10, 0)],
        epochs={stream_id: epoch},
        producer_states={},
        clear_dirty=frozenset({stream_id}) if clear else frozenset(),
    )


def test_a_mark_needs_the_leaders_epoch_and_a_clearing_commit_clears_it(
    metadata_url: str,
) -> None:
    engine = open_engine(metadata_url)
    try:
        registered(engine, 1, 10, LONG_MS)
        engine.create_topic("t", 1, {})
        (stream,) = (r.stream_id for r in engine.partitions("t"))
        assert engine.claim_leadership({stream: 0}, 1).claimed == {stream: 1}
        assert engine.mark_wal_dirty({stream: 0}) == set()  # a stale epoch marks nothing
        assert dirty_of(engine, "t") == [0]
        assert engine.mark_wal_dirty({stream: 1}) == {stream}
        assert dirty_of(engine, "t") == [1]
        # A commit that does not say it publishes everything leaves it dirty.
        assert engine.commit_object(commit(stream, 1, 0, 5, "a", clear=False)).committed
        assert dirty_of(engine, "t") == [1]
        # A clearing commit at a stale epoch publishes nothing and clears nothing.
        assert not engine.commit_object(commit(stream, 0, 5, 9, "b", clear=True)).committed
        assert dirty_of(engine, "t") == [1]
        assert engine.commit_object(commit(stream, 1, 5, 9, "c", clear=True)).committed
        assert dirty_of(engine, "t") == [0]
    finally:
        engine.close()


def test_a_dirty_partition_is_claimed_only_by_its_node_or_uncleanly(metadata_url: str) -> None:
    engine = open_engine(metadata_url)
    try:
        registered(engine, 1, 10, 50)  # node 1's lease lapses at once
        registered(engine, 2, 20, LONG_MS)
        engine.create_topic("t", 2, {})
        dirty, clean = (r.stream_id for r in engine.partitions("t"))
        assert engine.claim_leadership({dirty: 0, clean: 0}, 1).claimed == {dirty: 1, clean: 1}
        assert engine.mark_wal_dirty({dirty: 1}) == {dirty}
        engine.commit_object(commit(dirty, 1, 0, 7, "a", clear=False))
        time.sleep(0.1)
        # Node 1's lease lapsed: node 2 takes the clean one, never the dirty one.
        refused = engine.claim_leadership({dirty: 1, clean: 1}, 2)
        assert refused.claimed == {clean: 2}
        assert refused.dirty == {dirty: 1}
        assert refused.moved == {}
        # Node 1 itself (restarted: its WAL holds those records) takes it back, still dirty.
        registered(engine, 1, 11, LONG_MS, replaces=10)
        back = engine.claim_leadership({dirty: 1}, 1)
        assert back.claimed == {dirty: 2}
        assert dirty_of(engine, "t")[0] == 1
        # unclean.leader.election.enable: another node takes it, giving the records past
        # the object end up; the partition is clean under its new leader.
        registered(engine, 1, 12, 50, replaces=11)
        time.sleep(0.1)
        unclean = engine.claim_leadership({dirty: 2}, 2, frozenset({dirty}))
        assert unclean.claimed == {dirty: 3}
        assert unclean.unclean == {dirty: (1, 7)}
        assert dirty_of(engine, "t") == [0, 0]
    finally:
        engine.close()


def test_the_controller_expires_lapsed_brokers_moving_only_clean_partitions(
    metadata_url: str,
) -> None:
    engine = open_engine(metadata_url)
    try:
        registered(engine, 1, 10, 300)
        registered(engine, 2, 20, LONG_MS)
        registered(engine, 3, 30, LONG_MS)
        beat = engine.cluster_heartbeat(2, 20, LONG_MS, -1)
        assert beat is not None and beat.controller.node_id == 2
        controller = beat.controller
        engine.create_topic("t", 4, {}, lambda stream_id: 1)
        streams = [r.stream_id for r in engine.partitions("t")]
        assert len(engine.claim_leadership({s: 0 for s in streams}, 1).claimed) == 4
        assert engine.mark_wal_dirty({streams[0]: 1}) == {streams[0]}
        # A move of streams[3] to node 3 is in flight when node 1 dies.
        assert engine.move_partitions(controller, {streams[3]: 3}, "operator")
        # The placement offered still names node 1 (a heartbeat-old list): it is left out.
        offered = [Candidate(1, None), Candidate(2, None), Candidate(3, None)]
        placement = Placement(offered[1:])

        def placing(dead: frozenset[int]) -> Placement:
            return Placement([c for c in offered if c.node_id not in dead])

        # Node 1 is live: nothing expires.
        assert engine.expire_brokers(controller, placing) == []
        time.sleep(0.4)
        # A fenced controller writes nothing.
        assert engine.expire_brokers(ControllerRecord(3, controller.epoch + 5), placing) == []
        (expiry,) = engine.expire_brokers(controller, placing)
        assert expiry.node_id == 1
        assert expiry.offline == [streams[0]]
        assert expiry.moved == {s: placement(s) for s in streams[1:3]}
        rows = {r.stream_id: r for r in engine.partitions("t")}
        assert rows[streams[0]].target_node == 1
        assert all(rows[s].target_node == placement(s) for s in streams[1:3])
        assert rows[streams[3]].target_node == 3  # its move goes on
        # A reconciler reading the moved rows reads them with their leader's lease lapsed.
        _, changed = engine.assignment_changes(0)
        assert {r.stream_id: r.leader_live for r in changed if r.topic == "t"} == {
            s: False for s in streams
        }
        reasons = engine._db.execute("SELECT stream_id, reason FROM reassignments").fetchall()
        assert dict((int(r[0]), r[1]) for r in reasons) == {
            streams[1]: "failover",
            streams[2]: "failover",
            streams[3]: "operator",
        }
        # Marked expired: its heartbeat matches no row; nothing left to expire.
        assert engine.cluster_heartbeat(1, 10, 300, -1) is None
        assert engine.expire_brokers(controller, placing) == []
        # The targets claim the clean ones; the dirty one stays with node 1.
        for node in (2, 3):
            mine = {s: 1 for s in streams[1:] if rows[s].target_node == node}
            assert engine.claim_leadership(mine, node).claimed == {s: 2 for s in mine}
        assert engine.claim_leadership({streams[0]: 1}, 2).dirty == {streams[0]: 1}
        # Node 1 returns on its data directory: its row and its dirty partition are its own.
        registered(engine, 1, 11, LONG_MS)
        assert engine.claim_leadership({streams[0]: 1}, 1).claimed == {streams[0]: 2}
    finally:
        engine.close()


def test_an_offline_partitions_move_waits_for_its_leader_to_return(metadata_url: str) -> None:
    """A move asked while the leader is dead but its lease lasts: the dirty partition is
    offline at the lapse, the move stays listed, the target's claim is refused (the
    records are only in the dead broker's WAL); the returning broker reopens it, hands
    it over, and the target claims it. A move to a broker that died too is called off."""
    engine = open_engine(metadata_url)
    try:
        registered(engine, 1, 10, 300)
        registered(engine, 2, 20, LONG_MS)
        registered(engine, 3, 30, 300)
        beat = engine.cluster_heartbeat(2, 20, LONG_MS, -1)
        assert beat is not None and beat.controller.node_id == 2
        engine.create_topic("t", 2, {}, lambda stream_id: 1)
        held, dropped = (r.stream_id for r in engine.partitions("t"))
        assert engine.claim_leadership({held: 0, dropped: 0}, 1).claimed == {held: 1, dropped: 1}
        assert engine.mark_wal_dirty({held: 1, dropped: 1}) == {held, dropped}
        assert engine.move_partitions(beat.controller, {held: 2, dropped: 3}, "operator")
        time.sleep(0.4)
        only_two = Placement([Candidate(2, None)])
        expiries = engine.expire_brokers(beat.controller, lambda dead: only_two)
        assert sorted((e.node_id, e.offline) for e in expiries) == [(1, [held, dropped]), (3, [])]
        rows = {r.stream_id: r for r in engine.partitions("t")}
        assert (rows[held].target_node, rows[dropped].target_node) == (2, 1)
        assert [(r.partition, r.source, r.target) for r in engine.reassignments()] == [(0, 1, 2)]
        assert engine.claim_leadership({held: 1}, 2).dirty == {held: 1}
        # Node 1 returns on its WAL: it reopens what it led, then hands the move over.
        registered(engine, 1, 11, LONG_MS)
        assert engine.claim_leadership({held: 1, dropped: 1}, 1).claimed == {held: 2, dropped: 2}
        assert engine.release_leadership(held, 1, 2)
        assert engine.claim_leadership({held: 2}, 2).claimed == {held: 3}
        assert engine.reassignments() == []
    finally:
        engine.close()


def test_an_unclean_topics_dirty_partitions_move_all_the_same(metadata_url: str) -> None:
    engine = open_engine(metadata_url)
    try:
        registered(engine, 1, 10, 50)
        registered(engine, 2, 20, LONG_MS)
        beat = engine.cluster_heartbeat(2, 20, LONG_MS, -1)
        assert beat is not None and beat.controller.node_id == 2
        engine.create_topic("kept", 1, {}, lambda stream_id: 1)
        engine.create_topic("given", 1, {}, lambda stream_id: 1)
        kept, given = (engine.partitions(t)[0].stream_id for t in ("kept", "given"))
        assert engine.claim_leadership({kept: 0, given: 0}, 1).claimed == {kept: 1, given: 1}
        assert engine.mark_wal_dirty({kept: 1, given: 1}) == {kept, given}
        time.sleep(0.1)
        only_two = Placement([Candidate(2, None)])
        (expiry,) = engine.expire_brokers(
            beat.controller, lambda dead: only_two, frozenset({"given"})
        )
        assert (expiry.offline, expiry.moved) == ([kept], {given: 2})
        # Its claim must say it may be unclean: the reconciler does for such a topic.
        assert engine.claim_leadership({given: 1}, 2).dirty == {given: 1}
        assert engine.claim_leadership({given: 1}, 2, frozenset({given})).claimed == {given: 2}
    finally:
        engine.close()


def node_settings(node_id: int, data_dir: Path, session_ms: int = 400) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    return Settings(
        data_dir=data_dir,
        node_id=node_id,
        broker_heartbeat_interval_ms=50,
        broker_session_timeout_ms=session_ms,
        upload_interval_ms=3_600_000,
    )


async def opened(url: str) -> MetadataStore:
    store = open_metadata_store(url)
    await store.open()
    return store


def test_the_controller_expires_nobody_until_it_held_its_lease_a_whole_session(
    metadata_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        store = await opened(metadata_url)
        registry = Registry(store, node_settings(1, tmp_path), lambda: None)
        try:
            await registry.register(endpoints(9092))
            assert registry.is_controller
            assert not registry.may_expire_brokers()  # just (re)gained
            await wait_until_async(registry.may_expire_brokers, 10, "a session held")
            # A failed heartbeat (the store unreachable): the session counts again from it.
            heartbeats = registry._heartbeats
            real = heartbeats.cluster_heartbeat
            failed = asyncio.Event()

            async def unreachable(*args: object) -> None:
                failed.set()
                raise ConnectionError("the metadata store is unreachable")

            monkeypatch.setattr(heartbeats, "cluster_heartbeat", unreachable)
            await asyncio.wait_for(failed.wait(), 10)
            assert not registry.may_expire_brokers()
            monkeypatch.setattr(heartbeats, "cluster_heartbeat", real)
            started = time.monotonic()
            await wait_until_async(registry.may_expire_brokers, 10, "a session held again")
            assert time.monotonic() - started >= 0.3
        finally:
            await registry.stop()
            await store.close()

    asyncio.run(scenario())


def test_a_broker_steady_a_session_before_it_takes_the_controller_over_may_expire_at_once(
    metadata_url: str, tmp_path: Path
) -> None:
    """A dead controller's successor, whose heartbeats reached the store all along, does
    not wait a session of its own before expiring lapsed leases; a heartbeat a session
    after the one before (a paused process) counts as a failed one."""

    async def scenario() -> None:
        store = await opened(metadata_url)
        first = Registry(store, node_settings(1, tmp_path / "1"), lambda: None)
        second = Registry(store, node_settings(2, tmp_path / "2"), lambda: None)
        try:
            await first.register(endpoints(9092))
            await second.register(endpoints(9093))
            assert first.is_controller and not second.is_controller
            await asyncio.sleep(0.5)  # more than a session (400 ms) of heartbeats
            await first.stop()  # resigns: the second takes the controller over
            await wait_until_async(lambda: second.is_controller, 10, "the second controls")
            assert second.may_expire_brokers()
            # A heartbeat a session late: steady again only a session later.
            assert second._heard_ms is not None
            second._heard_ms -= 1_000
            late = second._heard_ms
            await wait_until_async(lambda: second._heard_ms != late, 10, "a heartbeat")
            assert not second.may_expire_brokers()
            await wait_until_async(second.may_expire_brokers, 10, "a session held again")
        finally:
            await first.stop()
            await second.stop()
            await store.close()

    asyncio.run(scenario())


async def leader(url: str, tmp_path: Path, disk: WalMedium) -> StorageEngine:
    settings = node_settings(1, tmp_path / "one", LONG_MS)
    metadata = await opened(url)
    engine = StorageEngine(settings, metadata, wal=MemoryWal(disk), objects=MemoryObjectStore())
    engine.dirty.enabled = True  # on SQLite too: the statements are the same
    await engine.open()
    return engine


def test_acknowledgements_wait_for_the_mark_and_a_stale_epoch_acknowledges_nothing(
    metadata_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        setup = open_engine(metadata_url)
        setup.create_topic("t", 1, {}, lambda stream_id: 1)
        (stream,) = (r.stream_id for r in setup.partitions("t"))
        engine = await leader(metadata_url, tmp_path, WalMedium())
        try:
            partition = engine.partitions[("t", 0)]
            assert partition.wal_state is WalState.CLEAN
            await engine.append(partition, batch(1, 0, 5, b"A")).durable
            assert partition.wal_state is WalState.DIRTY
            assert dirty_of(setup, "t") == [partition.leader_epoch]
            marks = engine.dirty.transactions
            await engine.append(partition, batch(1, 5, 5, b"B")).durable
            assert engine.dirty.transactions == marks  # dirty already: no round trip
            # An upload publishing everything appended clears it.
            await engine.upload_once()
            assert partition.wal_state is WalState.CLEAN
            assert dirty_of(setup, "t") == [0]
            # An append while the clearing commit is out waits for its return, then marks
            # again before it is acknowledged.
            assert engine.dirty.clearing(partition, partition.next_offset)
            acked = engine.append(partition, batch(1, 10, 5, b"C")).durable
            assert acked is not None
            await asyncio.sleep(0.2)
            assert not acked.done()
            engine.dirty.cleared(partition, committed=True)
            await acked
            assert partition.wal_state is WalState.DIRTY
            assert dirty_of(setup, "t") == [partition.leader_epoch]
            await engine.upload_once()
            assert dirty_of(setup, "t") == [0]
            # Another claim moved the epoch on while the partition was clean: the next
            # append marks nothing, is not acknowledged, and the partition is released.
            assert setup.claim_leadership({stream: partition.leader_epoch}, 1).claimed
            refused = engine.append(partition, batch(1, 15, 5, b"D")).durable
            assert refused is not None
            with pytest.raises(NotLeader):
                await refused
            assert partition.released
            assert dirty_of(setup, "t") == [0]
        finally:
            await engine.close()
            await engine.metadata.close()
            setup.close()

    asyncio.run(scenario())


def test_a_restart_replays_only_streams_this_node_may_still_replay(
    metadata_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        setup = open_engine(metadata_url)
        setup.create_topic("t", 2, {}, lambda stream_id: 1)
        kept_stream, taken_stream = (r.stream_id for r in setup.partitions("t"))
        disk = WalMedium()
        engine = await leader(metadata_url, tmp_path, disk)
        kept, taken = engine.partitions[("t", 0)], engine.partitions[("t", 1)]
        await engine.append(kept, batch(1, 0, 5, b"A")).durable
        await engine.append(taken, batch(2, 0, 5, b"B")).durable
        assert dirty_of(setup, "t") == [kept.leader_epoch, taken.leader_epoch]
        await engine.metadata.close()  # a crash: nothing uploaded, the WAL keeps both
        # Node 2 is moved partition 1, takes it uncleanly, and hands it back to node 1.
        registered(setup, 2, 20, LONG_MS)
        beat = setup.cluster_heartbeat(2, 20, LONG_MS, -1)
        assert beat is not None and beat.controller.node_id == 2
        assert setup.move_partitions(beat.controller, {taken_stream: 2}, "operator")
        unclean = frozenset({taken_stream})
        assert setup.claim_leadership({taken_stream: taken.leader_epoch}, 2, unclean).claimed
        assert setup.move_partitions(beat.controller, {taken_stream: 1}, "operator")
        assert setup.release_leadership(taken_stream, 2, taken.leader_epoch + 1)
        with caplog.at_level(logging.WARNING):
            again = await leader(metadata_url, tmp_path, disk)
        try:
            assert again.partitions[("t", 0)].next_offset == 5  # replayed: its own
            assert again.partitions[("t", 0)].wal_state is WalState.DIRTY
            assert again.partitions[("t", 1)].next_offset == 0  # another took it since
            assert "dropped 1 WAL entries of 1 partitions" in caplog.text
            assert dirty_of(setup, "t") == [again.partitions[("t", 0)].leader_epoch, 0]
        finally:
            await again.close()
            await again.metadata.close()
            setup.close()

    asyncio.run(scenario())


def unmarked_flag(engine: SqlEngine, node_id: int) -> int:
    row = engine._db.execute(
        "SELECT unmarked_acks FROM brokers WHERE node_id=?", (node_id,)
    ).fetchone()
    return int(row[0])


def test_a_broker_that_may_owe_marks_keeps_its_partitions_until_it_wrote_them(
    metadata_url: str,
) -> None:
    """The outage path's rows: while node 1's `unmarked_acks` flag is set, every partition
    it leads counts as dirty, to claims and to the controller; its heartbeat writes the
    marks it owes before it renews, in the transaction that clears the flag."""
    engine = open_engine(metadata_url)
    try:
        registered(engine, 1, 10, LONG_MS)
        engine.create_topic("t", 3, {}, lambda stream_id: 1)
        owed, clean, stale = (r.stream_id for r in engine.partitions("t"))
        claimed = engine.claim_leadership({owed: 0, clean: 0, stale: 0}, 1).claimed
        assert claimed == {owed: 1, clean: 1, stale: 1}
        # Alone: the heartbeat sets the flag (and its lease is short: it lapses soon).
        assert engine.cluster_heartbeat(1, 10, 50, -1, {}, True) is not None
        assert unmarked_flag(engine, 1) == 1
        registered(engine, 2, 20, LONG_MS)
        time.sleep(0.1)
        # Node 1's lease lapsed and nothing is marked, yet nothing can be claimed.
        refused = engine.claim_leadership({owed: 1, clean: 1, stale: 1}, 2)
        assert (refused.claimed, refused.dirty) == ({}, {owed: 1, clean: 1, stale: 1})
        beat = engine.cluster_heartbeat(2, 20, LONG_MS, -1)
        assert beat is not None and beat.controller.node_id == 2
        # Node 1 reaches the store again before the controller expires it: the owed
        # marks are written (one at an epoch that is not its own matches nothing), the
        # lease renewed and the flag cleared, all in one transaction.
        back = engine.cluster_heartbeat(1, 10, 50, -1, {owed: 1, stale: 0}, False)
        assert back is not None and back.owed_marked == {owed}
        assert unmarked_flag(engine, 1) == 0
        assert dirty_of(engine, "t") == [1, 0, 0]
        time.sleep(0.1)
        only_two = Placement([Candidate(2, None)])
        (expiry,) = engine.expire_brokers(beat.controller, lambda dead: only_two)
        assert (expiry.offline, expiry.moved) == ([owed], {clean: 2, stale: 2})
        # Marked expired: its heartbeat renews nothing, yet still writes what it owes.
        assert engine.cluster_heartbeat(1, 10, 50, -1, {clean: 1}, True) is None
        assert dirty_of(engine, "t") == [1, 1, 0]
        assert unmarked_flag(engine, 1) == 0
    finally:
        engine.close()


def test_a_flagged_broker_lapsing_keeps_its_clean_partitions_and_a_clean_stop_pays_its_debts(
    metadata_url: str,
) -> None:
    engine = open_engine(metadata_url)
    try:
        registered(engine, 1, 10, 50)
        registered(engine, 2, 20, LONG_MS)
        beat = engine.cluster_heartbeat(2, 20, LONG_MS, -1)
        assert beat is not None and beat.controller.node_id == 2
        engine.create_topic("t", 2, {}, lambda stream_id: 1)
        first, second = (r.stream_id for r in engine.partitions("t"))
        assert len(engine.claim_leadership({first: 0, second: 0}, 1).claimed) == 2
        assert engine.cluster_heartbeat(1, 10, 50, -1, {}, True) is not None
        time.sleep(0.1)
        only_two = Placement([Candidate(2, None)])
        (expiry,) = engine.expire_brokers(beat.controller, lambda dead: only_two)
        assert (expiry.offline, expiry.moved) == ([first, second], {})
        # Its restart registers again (the flag stays: its WAL is not replayed yet); a
        # clean stop writes the marks it owes and clears the flag.
        registered(engine, 1, 11, LONG_MS)
        assert unmarked_flag(engine, 1) == 1
        # A start that stops before its storage opened (nothing replayed) leaves it too.
        engine.deregister_broker(1, 11, None)
        assert unmarked_flag(engine, 1) == 1
        registered(engine, 1, 12, LONG_MS)
        engine.deregister_broker(1, 12, {second: 1})
        assert unmarked_flag(engine, 1) == 0
        assert dirty_of(engine, "t") == [0, 1]
    finally:
        engine.close()


def test_an_outage_is_acknowledged_within_the_lease_and_the_owed_mark_written_before_renewal(
    metadata_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker alone, the store out of its reach: an append to a clean partition is
    acknowledged while its lease is certainly valid, its mark owed; past that, refused
    (KAFKA_STORAGE_ERROR); an upload does not clear an owed mark; the first heartbeat
    that reaches the store writes it, and, everything being uploaded, it is cleared."""

    async def scenario() -> None:
        setup = open_engine(metadata_url)
        setup.create_topic("t", 1, {}, lambda stream_id: 1)
        settings = node_settings(1, tmp_path / "one", session_ms=1_000)
        store = await opened(metadata_url)
        store.shared = True  # on SQLite too: the statements are the same
        registry = Registry(store, settings, lambda: None)
        engine = StorageEngine(
            settings, store, wal=MemoryWal(WalMedium()), objects=MemoryObjectStore()
        )
        engine.dirty.enabled = True
        engine.dirty.may_ack_unmarked = registry.may_ack_unmarked
        try:
            await registry.register(endpoints(9092))
            await engine.open()
            registry.marks = engine.dirty
            await wait_until_async(registry.may_ack_unmarked, 10, "the flag set")
            assert unmarked_flag(setup, 1) == 1
            partition = engine.partitions[("t", 0)]
            heartbeats = registry._heartbeats  # its own connection on PostgreSQL
            real_heartbeat = heartbeats.cluster_heartbeat

            async def unreachable(*args: object) -> None:
                raise MetadataStoreUnavailable("the metadata store is out of reach")

            real_mark = store.mark_wal_dirty
            monkeypatch.setattr(store, "mark_wal_dirty", unreachable)
            monkeypatch.setattr(heartbeats, "cluster_heartbeat", unreachable)
            await engine.append(partition, batch(1, 0, 5, b"A")).durable
            assert partition.wal_state is WalState.OWED
            assert engine.dirty.owed() == {partition.stream_id: partition.leader_epoch}
            assert dirty_of(setup, "t") == [0]
            await wait_until_async(lambda: not registry.may_ack_unmarked(), 10, "lease over")
            refused = engine.append(partition, batch(1, 5, 5, b"B")).durable
            assert refused is not None
            with pytest.raises(KafkaError) as raised:
                await refused
            assert raised.value.code == ErrorCode.kafka_storage_error
            assert partition.wal_state is WalState.OWED  # its records are still unmarked
            # Uploaded while the mark is owed: the commit does not clear it.
            await engine.upload_once()
            assert partition.object_end_offset == partition.next_offset
            assert partition.wal_state is WalState.OWED
            # The heartbeat reaches the store again (marks alone still cannot be written):
            # it writes the mark, and then, everything being in objects, it is cleared.
            real_settle = store.settle_wal_dirty
            settled: list[tuple[dict[int, int], dict[int, int]]] = []

            async def settle(dirty: dict[int, int], clean: dict[int, int]) -> None:
                settled.append((dirty, clean))
                await real_settle(dirty, clean)

            monkeypatch.setattr(store, "settle_wal_dirty", settle)
            monkeypatch.setattr(heartbeats, "cluster_heartbeat", real_heartbeat)
            await wait_until_async(lambda: partition.wal_state is WalState.CLEAN, 10, "paid")
            assert settled == [({}, {partition.stream_id: partition.leader_epoch})]
            assert dirty_of(setup, "t") == [0]
            assert engine.dirty.owed() == {}
            monkeypatch.setattr(store, "mark_wal_dirty", real_mark)
            await engine.append(partition, batch(1, 10, 5, b"C")).durable
            assert partition.wal_state is WalState.DIRTY
            assert dirty_of(setup, "t") == [partition.leader_epoch]
        finally:
            await engine.close()
            await registry.stop()
            await store.close()
            setup.close()

    asyncio.run(scenario())


def test_with_another_live_broker_nothing_is_acknowledged_without_its_mark(
    metadata_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once another broker is live, the heartbeat clears the flag and the window is shut:
    an outage (its own or everyone's) refuses appends to a clean partition, since a
    claimer could otherwise miss them."""

    async def scenario() -> None:
        setup = open_engine(metadata_url)
        setup.create_topic("t", 1, {}, lambda stream_id: 1)
        settings = node_settings(1, tmp_path / "one", session_ms=LONG_MS)
        store = await opened(metadata_url)
        store.shared = True  # on SQLite too: the statements are the same
        registry = Registry(store, settings, lambda: None)
        engine = StorageEngine(
            settings, store, wal=MemoryWal(WalMedium()), objects=MemoryObjectStore()
        )
        engine.dirty.enabled = True
        engine.dirty.may_ack_unmarked = registry.may_ack_unmarked
        try:
            await registry.register(endpoints(9092))
            await engine.open()
            registry.marks = engine.dirty
            await wait_until_async(registry.may_ack_unmarked, 10, "the flag set")
            registered(setup, 2, 20, LONG_MS)
            await wait_until_async(lambda: unmarked_flag(setup, 1) == 0, 10, "flag cleared")
            assert not registry.may_ack_unmarked()

            async def unreachable(*args: object) -> None:
                raise MetadataStoreUnavailable("the metadata store is out of reach")

            monkeypatch.setattr(store, "mark_wal_dirty", unreachable)
            partition = engine.partitions[("t", 0)]
            refused = engine.append(partition, batch(1, 0, 5, b"A")).durable
            assert refused is not None
            with pytest.raises(KafkaError) as raised:
                await refused
            assert raised.value.code == ErrorCode.kafka_storage_error
            assert (partition.wal_state, engine.dirty.owed()) == (WalState.CLEAN, {})
        finally:
            await engine.close()
            await registry.stop()
            await store.close()
            setup.close()

    asyncio.run(scenario())


def test_a_clearing_commit_lost_in_an_outage_neither_stalls_acks_nor_clears_a_later_mark(
    metadata_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that clears a partition's mark reaches the store, which then goes out of
    reach before the reply: the partition counts as clean (the mark may be gone), so an
    append is acknowledged inside the outage window with its mark owed instead of
    waiting for the store; the heartbeat writes the owed mark once the store is back, and
    the commit's retry (recognised as committed) leaves that mark alone; once that append
    is uploaded the mark is cleared."""

    async def scenario() -> None:
        setup = open_engine(metadata_url)
        setup.create_topic("t", 1, {}, lambda stream_id: 1)
        settings = node_settings(1, tmp_path / "one", session_ms=2_000)
        store = await opened(metadata_url)
        store.shared = True  # on SQLite too: the statements are the same
        registry = Registry(store, settings, lambda: None)
        engine = StorageEngine(
            settings, store, wal=MemoryWal(WalMedium()), objects=MemoryObjectStore()
        )
        engine.dirty.enabled = True
        engine.dirty.may_ack_unmarked = registry.may_ack_unmarked
        try:
            await registry.register(endpoints(9092))
            await engine.open()
            registry.marks = engine.dirty
            await wait_until_async(registry.may_ack_unmarked, 10, "the flag set")
            partition = engine.partitions[("t", 0)]
            epoch = partition.leader_epoch
            await asyncio.wait_for(engine.append(partition, batch(1, 0, 5, b"A")).durable, 10)
            assert dirty_of(setup, "t") == [epoch]
            heartbeats = registry._heartbeats
            real_heartbeat, real_mark = heartbeats.cluster_heartbeat, store.mark_wal_dirty
            real_commit = store.commit_object
            sent: list[frozenset[int]] = []  # what each try was to clear

            async def unreachable(*args: object) -> None:
                raise MetadataStoreUnavailable("the metadata store is out of reach")

            async def reply_lost(commit: ObjectCommit) -> None:
                sent.append(commit.clear_dirty)
                await real_commit(commit)  # committed, clearing the mark
                raise MetadataStoreUnavailable("the connection broke at COMMIT")

            monkeypatch.setattr(store, "commit_object", reply_lost)
            with pytest.raises(MetadataStoreUnavailable):
                await engine.upload_once()
            assert sent == [{partition.stream_id}]
            assert dirty_of(setup, "t") == [0]
            assert partition.wal_state is WalState.CLEAN
            # The store stays out of reach: the append is answered inside the window.
            monkeypatch.setattr(store, "mark_wal_dirty", unreachable)
            monkeypatch.setattr(heartbeats, "cluster_heartbeat", unreachable)
            monkeypatch.setattr(store, "commit_object", unreachable)
            acked = engine.append(partition, batch(1, 5, 5, b"B")).durable
            assert acked is not None
            await asyncio.wait_for(acked, 5)
            assert partition.wal_state is WalState.OWED
            # Back: the heartbeat writes the owed mark; the retry does not clear it.
            monkeypatch.setattr(heartbeats, "cluster_heartbeat", real_heartbeat)
            monkeypatch.setattr(store, "mark_wal_dirty", real_mark)
            await wait_until_async(lambda: partition.wal_state is WalState.DIRTY, 10, "paid")
            assert dirty_of(setup, "t") == [epoch]
            monkeypatch.setattr(store, "commit_object", real_commit)
            await engine.upload_once()  # the retry, recognised as committed
            assert partition.object_end_offset == 5
            assert dirty_of(setup, "t") == [epoch]
            await engine.upload_once()  # B: everything uploaded, the mark cleared
            assert partition.object_end_offset == partition.next_offset == 10
            assert dirty_of(setup, "t") == [0]
            assert partition.wal_state is WalState.CLEAN
        finally:
            await engine.close()
            await registry.stop()
            await store.close()
            setup.close()

    asyncio.run(scenario())


def test_a_retried_commit_that_may_not_clear_clears_after_it_lands(
    metadata_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clearing commit fails before reaching the store: its retry clears nothing in its
    own transaction, and the mark, still written, is cleared right after it (no append
    came meanwhile), so a failover does not keep the partition offline for nothing."""

    async def scenario() -> None:
        setup = open_engine(metadata_url)
        setup.create_topic("t", 1, {}, lambda stream_id: 1)
        engine = await leader(metadata_url, tmp_path, WalMedium())
        try:
            partition = engine.partitions[("t", 0)]
            await asyncio.wait_for(engine.append(partition, batch(1, 0, 5, b"A")).durable, 10)
            real_commit = engine.metadata.commit_object
            sent: list[frozenset[int]] = []

            async def unreachable(commit: ObjectCommit) -> None:
                sent.append(commit.clear_dirty)
                raise MetadataStoreUnavailable("the metadata store is out of reach")

            monkeypatch.setattr(engine.metadata, "commit_object", unreachable)
            with pytest.raises(MetadataStoreUnavailable):
                await engine.upload_once()
            assert partition.wal_state is WalState.CLEAN
            assert dirty_of(setup, "t") == [partition.leader_epoch]  # it never arrived

            async def retried(commit: ObjectCommit) -> object:
                sent.append(commit.clear_dirty)
                return await real_commit(commit)

            monkeypatch.setattr(engine.metadata, "commit_object", retried)
            await engine.upload_once()
            assert sent == [{partition.stream_id}, frozenset()]
            await wait_until_async(lambda: dirty_of(setup, "t") == [0], 10, "cleared after")
            assert partition.wal_state is WalState.CLEAN
        finally:
            await engine.close()
            await engine.metadata.close()
            setup.close()

    asyncio.run(scenario())
