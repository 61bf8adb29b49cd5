"""The broker registry on both engines (RFC 0004 §1): a node id is taken by one live
incarnation at a time, on the database's clock; a lease lapses unless renewed; a clean
stop frees the id at once; `Registry` keeps the live brokers of its last heartbeat and
refuses a duplicate node.id; with PostgreSQL its heartbeat does not queue behind the
store's worker."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from contextplane.cluster.registry import DuplicateBrokerRegistration, Registry
from contextplane.metadata.records import BrokerEndpoint
from contextplane.metadata.store import MetadataStore, open_metadata_store
from contextplane.settings import Settings
from tests.support.metadata import open_engine
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until, wait_until_async

LONG_MS = 60_000


def endpoints(port: int) -> tuple[BrokerEndpoint, ...]:
    return (BrokerEndpoint("PLAINTEXT", "127.0.0.1", port, "PLAINTEXT"),)


def test_a_live_node_id_is_refused_to_a_second_incarnation(metadata_url: str) -> None:
    first, second = open_engine(metadata_url), open_engine(metadata_url)
    try:
        taken = first.register_broker(1, 10, "rack-a", endpoints(9092), LONG_MS)
        assert taken.registered
        assert taken.broker.rack == "rack-a"
        assert taken.broker.endpoints == endpoints(9092)
        assert 0 < taken.broker.lease_remaining_ms <= LONG_MS

        refused = second.register_broker(1, 11, None, endpoints(9093), LONG_MS)
        assert not refused.registered
        # The row is still the holder's: its incarnation, endpoint and rack.
        assert (refused.broker.incarnation, refused.broker.rack) == (10, "rack-a")
        assert refused.broker.endpoints == endpoints(9092)
        assert second.register_broker(2, 12, None, endpoints(9093), LONG_MS).registered
        assert [b.node_id for b in second.live_brokers()] == [1, 2]
    finally:
        first.close()
        second.close()


def test_an_expired_lease_is_unlisted_and_its_id_taken_over(metadata_url: str) -> None:
    first, second = open_engine(metadata_url), open_engine(metadata_url)
    try:
        assert first.register_broker(1, 10, None, endpoints(9092), 50).registered
        assert [b.node_id for b in second.live_brokers()] == [1]
        wait_until(lambda: not second.live_brokers(), 10, "the lease lapses")
        assert second.register_broker(1, 11, None, endpoints(9093), LONG_MS).registered
        # The old incarnation's next heartbeat matches no row: it must stop.
        assert first.heartbeat_broker(1, 10, LONG_MS) is None
        live = second.heartbeat_broker(1, 11, LONG_MS)
        assert live is not None and [(b.node_id, b.incarnation) for b in live] == [(1, 11)]
    finally:
        first.close()
        second.close()


def test_a_heartbeat_renews_the_lease(metadata_url: str) -> None:
    engine = open_engine(metadata_url)
    try:
        assert engine.register_broker(1, 10, None, endpoints(9092), 200).registered
        live = engine.heartbeat_broker(1, 10, LONG_MS)
        assert live is not None and live[0].lease_remaining_ms > 200
        time.sleep(0.3)  # past the first lease
        assert [b.node_id for b in engine.live_brokers()] == [1]
    finally:
        engine.close()


def test_a_clean_stop_unlists_the_broker_and_frees_its_id_at_once(metadata_url: str) -> None:
    engine = open_engine(metadata_url)
    try:
        assert engine.register_broker(1, 10, None, endpoints(9092), LONG_MS).registered
        engine.deregister_broker(1, 10)
        assert engine.live_brokers() == []
        assert engine.heartbeat_broker(1, 10, LONG_MS) is None
        assert engine.register_broker(1, 11, None, endpoints(9092), LONG_MS).registered
        # A stale incarnation's deregistration leaves the new one alone.
        engine.deregister_broker(1, 10)
        assert [b.incarnation for b in engine.live_brokers()] == [11]
    finally:
        engine.close()


def test_endpoints_are_published_by_their_incarnation_only(metadata_url: str) -> None:
    engine = open_engine(metadata_url)
    try:
        assert engine.register_broker(1, 10, None, endpoints(0), LONG_MS).registered
        assert engine.set_broker_endpoints(1, 10, endpoints(41234))
        assert not engine.set_broker_endpoints(1, 9, endpoints(1))
        assert engine.live_brokers()[0].endpoints == endpoints(41234)
    finally:
        engine.close()


def test_a_drained_node_id_stays_draining_across_restarts_until_undrained(
    metadata_url: str,
) -> None:
    engine = open_engine(metadata_url)
    try:
        assert engine.register_broker(1, 10, None, endpoints(9092), LONG_MS).registered
        assert engine.set_broker_draining(1, True)
        # A clean stop and a start: the row was 'stopped' in between.
        engine.deregister_broker(1, 10)
        again = engine.register_broker(1, 11, None, endpoints(9092), LONG_MS)
        assert again.registered and again.broker.state == "draining"
        # A crash and a restart from its data directory (the row still leased).
        crashed = engine.register_broker(1, 12, None, endpoints(9092), LONG_MS, replaces=11)
        assert crashed.registered and crashed.broker.state == "draining"
        assert [(b.incarnation, b.state) for b in engine.live_brokers()] == [(12, "draining")]
        # A renewal keeps it; undrain clears it, for this incarnation and the next.
        live = engine.heartbeat_broker(1, 12, LONG_MS)
        assert live is not None and [b.state for b in live] == ["draining"]
        assert engine.set_broker_draining(1, False)
        assert [b.state for b in engine.live_brokers()] == ["live"]
        engine.deregister_broker(1, 12)
        undrained = engine.register_broker(1, 13, None, endpoints(9092), LONG_MS)
        assert undrained.registered and undrained.broker.state == "live"
        # Another node id is not concerned by node 1's drain.
        assert engine.set_broker_draining(1, True)
        other = engine.register_broker(2, 14, None, endpoints(9093), LONG_MS)
        assert other.registered and other.broker.state == "live"
    finally:
        engine.close()


def test_a_drain_outlasts_an_expired_lease(metadata_url: str) -> None:
    engine = open_engine(metadata_url)
    try:
        assert engine.register_broker(1, 10, None, endpoints(9092), LONG_MS).registered
        assert engine.set_broker_draining(1, True)
        # The controller declared it dead (as `expire_brokers` marks a lapsed lease).
        engine._db.execute("UPDATE brokers SET state='expired', lease_expires_ms=0")
        assert engine.live_brokers() == []
        restarted = engine.register_broker(1, 11, None, endpoints(9092), LONG_MS)
        assert restarted.registered and restarted.broker.state == "draining"
    finally:
        engine.close()


def test_a_shutdown_is_leased_but_not_kept_across_restarts(metadata_url: str) -> None:
    """A controlled shutdown's `shutting_down` keeps the lease and the listing, only for
    its incarnation; a drain under it is kept, and an undrain leaves it shutting down."""
    engine = open_engine(metadata_url)
    try:
        assert engine.register_broker(1, 10, None, endpoints(9092), LONG_MS).registered
        assert not engine.begin_shutdown(1, 9)  # not this incarnation's row
        assert engine.begin_shutdown(1, 10)
        live = engine.heartbeat_broker(1, 10, LONG_MS)
        assert live is not None and [b.state for b in live] == ["shutting_down"]
        assert engine.set_broker_draining(1, False)
        assert [b.state for b in engine.live_brokers()] == ["shutting_down"]
        engine.deregister_broker(1, 10)
        assert not engine.begin_shutdown(1, 10)  # stopped: nothing to mark
        again = engine.register_broker(1, 11, None, endpoints(9092), LONG_MS)
        assert again.registered and again.broker.state == "live"
        assert engine.set_broker_draining(1, True)
        assert engine.begin_shutdown(1, 11)
        engine.deregister_broker(1, 11)
        drained = engine.register_broker(1, 12, None, endpoints(9092), LONG_MS)
        assert drained.registered and drained.broker.state == "draining"
    finally:
        engine.close()


def test_a_broker_is_reachable_once_its_endpoints_are_bound(metadata_url: str) -> None:
    """Registered with port 0 (listener.port=0), a broker is live (leases, failover and
    placement count it) but offered to no client or peer until it publishes its ports."""
    engine = open_engine(metadata_url)
    try:
        assert engine.register_broker(1, 10, None, endpoints(0), LONG_MS).registered
        assert engine.register_broker(2, 11, None, endpoints(9093), LONG_MS).registered
        starting, bound = engine.live_brokers()
        assert not starting.bound and bound.bound
        assert engine.set_broker_endpoints(1, 10, endpoints(41234))
        assert all(b.bound for b in engine.live_brokers())
    finally:
        engine.close()


def settings(node_id: int, data_dir: Path) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    return Settings(
        data_dir=data_dir,
        node_id=node_id,
        broker_rack=f"rack-{node_id}",
        broker_heartbeat_interval_ms=50,
        broker_session_timeout_ms=2_000,
    )


async def opened(url: str) -> MetadataStore:
    store = open_metadata_store(url)
    await store.open()
    return store


def test_registries_list_each_other_and_refuse_a_duplicate(
    metadata_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        stores = [await opened(metadata_url) for _ in range(3)]
        lost: list[int] = []
        one = Registry(stores[0], settings(1, tmp_path / "one"), lambda: lost.append(1))
        two = Registry(stores[1], settings(2, tmp_path / "two"), lambda: lost.append(2))
        try:
            await one.register(endpoints(9092))
            await two.register(endpoints(0))  # its listeners not yet bound
            await wait_until_async(lambda: sorted(one.live_ids) == [1, 2], 10, "two live")
            assert one.reachable_ids == {1} and two.reachable_ids == {1}
            generation = one.generation
            await two.publish(endpoints(9093))
            await wait_until_async(
                lambda: sorted(one.reachable_ids) == [1, 2], 10, "each registry offers both"
            )
            assert one.generation > generation
            assert [(b.node_id, b.rack, b.endpoints) for b in one.brokers] == [
                (1, "rack-1", endpoints(9092)),
                (2, "rack-2", endpoints(9093)),
            ]
            duplicate = Registry(stores[2], settings(1, tmp_path / "three"), lambda: lost.append(3))
            with pytest.raises(DuplicateBrokerRegistration) as refused:
                await duplicate.register(endpoints(9094))
            assert "node.id 1 is registered by a live broker at 127.0.0.1:9092" in str(
                refused.value
            )
            await duplicate.stop()  # nothing of its own to deregister
            await two.stop()
            await wait_until_async(
                lambda: sorted(one.live_ids) == [1], 10, "the stopped broker unlisted"
            )
            assert lost == []
        finally:
            await one.stop()
            await two.stop()
            for store in stores:
                await store.close()

    asyncio.run(scenario())


def test_a_restart_on_the_same_data_directory_takes_over_its_crashed_predecessor(
    metadata_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        store = await opened(metadata_url)
        crashed = Registry(store, settings(1, tmp_path / "data"), lambda: None)
        restarted = Registry(store, settings(1, tmp_path / "data"), lambda: None)
        elsewhere = Registry(store, settings(1, tmp_path / "elsewhere"), lambda: None)
        try:
            await crashed.register(endpoints(9092))
            assert crashed._task is not None
            crashed._task.cancel()  # it died: no more renewals, no deregistration
            with pytest.raises(DuplicateBrokerRegistration):
                await elsewhere.register(endpoints(9093))  # another directory: refused
            await restarted.register(endpoints(9092))  # the lease is live, but its own
            assert [b.incarnation for b in await store.live_brokers()] == [restarted.incarnation]
        finally:
            crashed.incarnation = -1  # (its companion store closed, nothing deregistered)
            await crashed.stop()
            await restarted.stop()
            await store.close()

    asyncio.run(scenario())


def test_a_registry_whose_id_was_taken_over_reports_it_lost(
    metadata_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        store = await opened(metadata_url)
        lost = asyncio.Event()
        registry = Registry(store, settings(1, tmp_path), lost.set)
        engine = open_engine(metadata_url)
        try:
            await registry.register(endpoints(9092))

            def take_over() -> bool:
                # Another process takes the id once this one's lease has expired.
                engine._db.execute("UPDATE brokers SET lease_expires_ms = 0")
                return engine.register_broker(1, 999_999, None, endpoints(1), LONG_MS).registered

            assert not lost.is_set()
            await wait_until_async(take_over, 10, "the id taken over")
            await asyncio.wait_for(lost.wait(), 10)
        finally:
            engine.close()
            await registry.stop()
            await store.close()

    asyncio.run(scenario())


def test_the_postgresql_heartbeat_does_not_wait_behind_the_stores_worker(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database()

    async def scenario() -> None:
        store = await opened(url)
        registry = Registry(store, settings(1, tmp_path), lambda: None)
        engine = open_engine(url)
        release = threading.Event()
        try:
            await registry.register(endpoints(9092))
            # The store's one worker is busy (a long transaction, say) until released.
            busy = asyncio.ensure_future(store._runner.run(release.wait, 30))  # type: ignore[attr-defined]
            engine._db.execute("UPDATE brokers SET lease_expires_ms = 0")
            await wait_until_async(engine.live_brokers, 10, "renewed while the worker is busy")
            assert not busy.done()
            release.set()
            await busy
        finally:
            release.set()
            engine.close()
            await registry.stop()
            await store.close()

    asyncio.run(scenario())
