"""The controller's lease and fence, change generations, claimability and the handover's
release, on both engines (RFC 0004 §1, §2): the first heartbeat takes the controller,
renewals keep its epoch, an expired lease or a new incarnation of the controller's node
takes it with the next epoch, a fenced controller writes nothing; a claim takes only
what this node led or what nobody leads and is targeted here; a release needs the
releasing leader's epoch; each change moves the assignment generation and its rows."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from contextplane.cluster.assignment_plan import Candidate, Placement
from contextplane.cluster.controller import Controller, NotController
from contextplane.cluster.registry import Registry
from contextplane.metadata.records import BrokerEndpoint, ControllerRecord
from contextplane.metadata.sql_engine import SqlEngine
from contextplane.metadata.store import MetadataStore, open_metadata_store
from contextplane.settings import Settings
from tests.support.metadata import open_engine
from tests.support.wait import wait_until, wait_until_async

LONG_MS = 60_000


def endpoints(port: int) -> tuple[BrokerEndpoint, ...]:
    return (BrokerEndpoint("PLAINTEXT", "127.0.0.1", port, "PLAINTEXT"),)


def registered(
    engine: SqlEngine, node_id: int, incarnation: int, session_ms: int, replaces: int = -1
) -> None:
    assert engine.register_broker(
        node_id, incarnation, None, endpoints(9000 + node_id), session_ms, replaces
    ).registered


def test_the_first_heartbeat_takes_the_controller_and_renewals_keep_its_epoch(
    metadata_url: str,
) -> None:
    one, two = open_engine(metadata_url), open_engine(metadata_url)
    try:
        registered(one, 1, 10, LONG_MS)
        registered(two, 2, 20, LONG_MS)
        first = one.cluster_heartbeat(1, 10, LONG_MS, -1)
        assert first is not None
        assert first.controller.node_id == 1
        epoch = first.controller.epoch
        assert epoch >= 1
        # The other broker sees it and cannot take it while the lease holds.
        seen = two.cluster_heartbeat(2, 20, LONG_MS, -1)
        assert seen is not None and seen.controller == ControllerRecord(1, epoch)
        again = one.cluster_heartbeat(1, 10, LONG_MS, epoch)
        assert again is not None and again.controller == ControllerRecord(1, epoch)
        # A heartbeat of a replaced incarnation renews nothing, the controller's neither.
        assert one.cluster_heartbeat(1, 9, LONG_MS, epoch) is None
    finally:
        one.close()
        two.close()


def test_an_expired_controller_is_taken_over_with_the_next_epoch(metadata_url: str) -> None:
    one, two = open_engine(metadata_url), open_engine(metadata_url)
    try:
        registered(one, 1, 10, LONG_MS)
        registered(two, 2, 20, LONG_MS)
        # Node 1 holds the controller with a short lease and stops renewing it.
        taken = one.cluster_heartbeat(1, 10, 50, -1)
        assert taken is not None and taken.controller.node_id == 1
        old = taken.controller

        def taken_over() -> bool:
            beat = two.cluster_heartbeat(2, 20, LONG_MS, -1)
            return beat is not None and beat.controller.node_id == 2

        wait_until(taken_over, 10, "node 2 takes the expired controller")
        assert two.controller() == ControllerRecord(2, old.epoch + 1)
        # The paused controller's next heartbeat does not get it back, and its writes
        # are fenced: nothing is written.
        beat = one.cluster_heartbeat(1, 10, LONG_MS, old.epoch)
        assert beat is not None and beat.controller == ControllerRecord(2, old.epoch + 1)
        one.create_topic("t", 1, {}, lambda stream_id: 1)
        generation = one.assignment_changes(0)[0]
        assert not one.move_partitions(old, {one.partitions("t")[0].stream_id: 2}, "operator")
        assert one.partitions("t")[0].target_node == 1
        assert one.assignment_changes(0)[0] == generation
        # The controller's own write goes through.
        stream_id = one.partitions("t")[0].stream_id
        assert two.move_partitions(two.controller(), {stream_id: 2}, "operator")
        assert one.partitions("t")[0].target_node == 2
    finally:
        one.close()
        two.close()


def test_a_new_incarnation_of_the_controllers_node_takes_it_at_once(metadata_url: str) -> None:
    engine = open_engine(metadata_url)
    try:
        registered(engine, 1, 10, LONG_MS)
        before = engine.cluster_heartbeat(1, 10, LONG_MS, -1)
        assert before is not None and before.controller.node_id == 1
        # Node 1 restarts (a new incarnation) while the lease is live: it does not wait
        # for the lease, and the epoch moves so the old incarnation is fenced.
        registered(engine, 1, 11, LONG_MS, replaces=10)
        after = engine.cluster_heartbeat(1, 11, LONG_MS, -1)
        assert after is not None
        assert after.controller == ControllerRecord(1, before.controller.epoch + 1)
        # A clean stop resigns: another broker takes it at its next heartbeat.
        registered(engine, 2, 20, LONG_MS)
        engine.resign_controller(1, after.controller.epoch)
        beat = engine.cluster_heartbeat(2, 20, LONG_MS, -1)
        assert beat is not None
        assert beat.controller == ControllerRecord(2, before.controller.epoch + 2)
    finally:
        engine.close()


def test_generations_announce_topic_and_assignment_changes(metadata_url: str) -> None:
    engine = open_engine(metadata_url)
    try:
        registered(engine, 1, 10, LONG_MS)
        start = engine.cluster_heartbeat(1, 10, LONG_MS, -1)
        assert start is not None
        engine.create_topic("t", 3, {}, lambda stream_id: 1 + stream_id % 2)
        beat = engine.cluster_heartbeat(1, 10, LONG_MS, start.controller.epoch)
        assert beat is not None
        assert beat.topics_generation > start.topics_generation
        assert beat.assignment_generation > start.assignment_generation
        generation, rows = engine.assignment_changes(start.assignment_generation)
        assert generation == beat.assignment_generation
        assert [(r.partition, r.leader_node, r.target_node) for r in rows] == [
            (r.partition, -1, 1 + r.stream_id % 2) for r in rows
        ]
        assert len(rows) == 3
        # Nothing changed since: no rows; a claim changes one row.
        assert engine.assignment_changes(generation) == (generation, [])
        mine = next(r for r in rows if r.target_node == 1)
        assert engine.claim_leadership({mine.stream_id: 0}, 1).claimed == {mine.stream_id: 1}
        later, changed = engine.assignment_changes(generation)
        assert later > generation
        assert [(r.stream_id, r.leader_node, r.leader_epoch) for r in changed] == [
            (mine.stream_id, 1, 1)
        ]
        engine.add_partitions("t", 4, lambda stream_id: 2)
        engine.set_topic_configs("t", {"retention.ms": "1000"})
        assert engine.partitions("t")[3].target_node == 2
        after = engine.cluster_heartbeat(1, 10, LONG_MS, start.controller.epoch)
        assert after is not None and after.topics_generation == beat.topics_generation + 2
    finally:
        engine.close()


def test_a_claim_takes_only_claimable_partitions_and_a_release_needs_the_epoch(
    metadata_url: str,
) -> None:
    engine = open_engine(metadata_url)
    try:
        registered(engine, 1, 10, LONG_MS)
        registered(engine, 2, 20, LONG_MS)
        controller = engine.cluster_heartbeat(1, 10, LONG_MS, -1)
        assert controller is not None
        engine.create_topic("t", 3, {}, lambda stream_id: 1)
        p0, p1, p2 = (r.stream_id for r in engine.partitions("t"))
        # Targeted at node 1: node 2 cannot claim it, node 1 can.
        assert engine.claim_leadership({p0: 0}, 2).claimed == {}
        assert engine.claim_leadership({p0: 0, p1: 0, p2: 0}, 1).claimed == {
            p0: 1,
            p1: 1,
            p2: 1,
        }
        # Moved to node 2 while node 1 leads: node 2 cannot take it from its leader.
        assert engine.move_partitions(controller.controller, {p0: 2, p1: 2}, "operator")
        assert engine.claim_leadership({p0: 1}, 2).claimed == {}
        # A release at another epoch changes nothing; at the leader's, the partition has
        # no leader and its target claims it, ending the reassignment.
        assert not engine.release_leadership(p0, 1, 0)
        assert not engine.release_leadership(p0, 2, 1)
        assert engine.release_leadership(p0, 1, 1)
        stored = {r.stream_id: r for r in engine.partitions("t")}
        assert (stored[p0].leader_node, stored[p0].leader_epoch) == (-1, 1)
        assert engine.claim_leadership({p0: 1}, 1).claimed == {}  # targeted elsewhere now
        assert engine._db.execute("SELECT COUNT(*) FROM reassignments").fetchone()[0] == 2
        assert engine.claim_leadership({p0: 1}, 2).claimed == {p0: 2}
        rows = engine._db.execute("SELECT stream_id, source_node, target_node FROM reassignments")
        assert [tuple(r) for r in rows.fetchall()] == [(p1, 1, 2)]
        # A node reclaims what it led itself (an earlier incarnation's, at start).
        assert engine.claim_leadership({p1: 1}, 1).claimed == {p1: 2}
        # A leader without a live lease (node 7 never registered) holds nothing; a live
        # one (node 2) keeps its partition.
        engine.create_topic("u", 1, {})
        (u,) = (r.stream_id for r in engine.partitions("u"))
        assert engine.claim_leadership({u: 0}, 7).claimed == {u: 1}
        assert engine.claim_leadership({u: 1}, 2).claimed == {u: 2}
        assert engine.claim_leadership({u: 2}, 1).claimed == {}
    finally:
        engine.close()


def settings(node_id: int, data_dir: Path) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    return Settings(
        data_dir=data_dir,
        node_id=node_id,
        broker_heartbeat_interval_ms=50,
        broker_session_timeout_ms=500,
    )


async def opened(url: str) -> MetadataStore:
    store = open_metadata_store(url)
    await store.open()
    return store


def test_registries_elect_one_controller_and_another_takes_over_after_a_stop(
    metadata_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        stores = [await opened(metadata_url) for _ in range(2)]
        one = Registry(stores[0], settings(1, tmp_path / "one"), lambda: None)
        two = Registry(stores[1], settings(2, tmp_path / "two"), lambda: None)
        try:
            await one.register(endpoints(9092))
            await two.register(endpoints(9093))
            assert one.is_controller and not two.is_controller
            assert two.controller == one.controller
            with_one = Controller(stores[1], two, 0.05)
            with pytest.raises(NotController):
                await with_one.move({1: 2})
            await one.stop()
            await wait_until_async(lambda: two.is_controller, 10, "node 2 takes over")
            assert two.controller.epoch == one.controller.epoch + 1
        finally:
            await one.stop()
            await two.stop()
            for store in stores:
                await store.close()

    asyncio.run(scenario())


def test_a_controller_whose_own_lease_lapsed_never_expires_itself(metadata_url: str) -> None:
    """A single broker's heartbeat can be late (its event loop stalled past the session):
    its own failover pass must not mark it expired, which would make its next heartbeat
    find the row gone and stop the broker."""
    engine = open_engine(metadata_url)
    try:
        registered(engine, 1, 10, 300)
        beat = engine.cluster_heartbeat(1, 10, 300, -1)
        assert beat is not None and beat.controller.node_id == 1
        engine.create_topic("t", 2, {}, lambda stream_id: 1)
        time.sleep(0.4)  # the lease lapses on the database's clock

        def placing(dead: frozenset[int]) -> Placement:
            return Placement([Candidate(1, None)])

        assert engine.expire_brokers(beat.controller, placing) == []
        again = engine.cluster_heartbeat(1, 10, 300, -1)
        assert again is not None and again.controller.node_id == 1  # its lease, taken again
        assert {r.target_node for r in engine.partitions("t")} == {1}
    finally:
        engine.close()


def test_the_controller_moves_a_shutting_down_brokers_partitions_its_own_included(
    metadata_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        stores = [await opened(metadata_url) for _ in range(2)]
        one = Registry(stores[0], settings(1, tmp_path / "one"), lambda: None)
        two = Registry(stores[1], settings(2, tmp_path / "two"), lambda: None)
        try:
            await one.register(endpoints(9092))
            await two.register(endpoints(9093))
            assert one.is_controller
            await stores[0].create_topic("t", 6, {}, lambda stream_id: 1 + stream_id % 2)
            controller = Controller(stores[0], one, 0.05)
            assert await controller.move_off_shutting_down() == {}  # nobody leaving
            # The controller's own node shuts down: it retargets its own partitions.
            assert await stores[0].begin_shutdown(1, one.incarnation)
            await wait_until_async(
                lambda: [b.state for b in one.brokers] == ["shutting_down", "live"],
                10,
                "the controller sees itself shutting down",
            )
            mine = {r.stream_id: r.partition for r in await stores[0].partitions("t")}
            mine = {s: p for s, p in mine.items() if 1 + s % 2 == 1}
            assert mine
            assert await controller.move_off_shutting_down() == dict.fromkeys(mine, 2)
            assert {r.target_node for r in await stores[0].partitions("t")} == {2}
            moving = await stores[0].reassignments()
            assert {(r.partition, r.target) for r in moving} == {(p, 2) for p in mine.values()}
            # No move may target it meanwhile (an operator's or the balancer's).
            with pytest.raises(ValueError, match="broker 1 is shutting down"):
                await controller.move(dict.fromkeys(mine, 1))
            assert {r.target_node for r in await stores[0].partitions("t")} == {2}
            # Nowhere left to go: nothing is moved.
            assert await stores[1].begin_shutdown(2, two.incarnation)
            await wait_until_async(
                lambda: [b.state for b in one.brokers] == ["shutting_down"] * 2,
                10,
                "both shutting down",
            )
            assert await controller.move_off_shutting_down() == {}
        finally:
            await one.stop()
            await two.stop()
            for store in stores:
                await store.close()

    asyncio.run(scenario())
