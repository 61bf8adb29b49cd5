"""What only the PostgreSQL engine has to show: several connections (brokers) at once.
Epoch checks lock the partition rows, so a commit and a leadership claim of the same
partition are serialised; migrations are applied once when brokers open together; a lost
connection is opened again; an unreachable server is named without its password.
Outages (a hung or stopped server, a lock held too long) are in test_postgres_outages.py."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from contextplane.metadata import migrations
from contextplane.metadata.migrations import MigrationError
from contextplane.metadata.postgres import PostgresEngine
from contextplane.metadata.records import ObjectCommit, RangeCommit
from contextplane.metadata.store import (
    MetadataStoreUnavailable,
    MetadataStoreUnreachable,
    open_metadata_store,
)
from contextplane.protocol.error_codes import ErrorCode
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until

LOCK_WAIT_S = 15.0


@pytest.fixture
def url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    return thread, result


def waits_on_a_lock(url: str, engine: PostgresEngine) -> bool:
    pid = engine._conn.info.backend_pid
    with psycopg.connect(url) as monitor:
        row = monitor.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
    return row is not None and row[0] == "Lock"


def test_a_new_database_records_every_migration_and_a_newer_one_is_refused(url: str) -> None:
    PostgresEngine(url).close()
    with psycopg.connect(url, autocommit=True) as db:
        applied = [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert applied == [m.version for m in migrations.migrations("postgresql")]
        db.execute("INSERT INTO schema_migrations VALUES (999, 'from-the-future')")
    with pytest.raises(MigrationError, match="newer broker"):
        PostgresEngine(url)


def test_brokers_opening_a_new_database_together_migrate_it_once(url: str) -> None:
    threads = [in_thread(lambda: PostgresEngine(url)) for _ in range(4)]
    engines = []
    for thread, result in threads:
        thread.join()
        engines.extend(result)
    assert len(engines) == 4
    engines[0].create_topic("t", 1, {})
    assert [t.name for t in engines[3].topics()] == ["t"]
    for engine in engines:
        engine.close()


def test_a_commit_waits_for_a_claim_in_flight_and_is_refused_after_it(url: str) -> None:
    """Two brokers: the new leader's claim has updated the partition row but not yet
    committed when the old leader commits an object. The commit's epoch check waits for
    the row (FOR UPDATE) and then sees the new epoch: the stale commit is refused."""
    old, new = PostgresEngine(url), PostgresEngine(url)
    old.create_topic("t", 1, {})
    (partition,) = old.partitions("t")
    epoch = old.claim_leadership({partition.stream_id: 0}, 1).claimed[partition.stream_id]
    stream = partition.stream_id
    with new._transaction():
        assert new.claim_leadership({stream: epoch}, 2).claimed == {stream: epoch + 1}
        ranges = [RangeCommit(stream, 0, 5, 0, 10, 1)]
        stale = ObjectCommit("stale", 10, 1, ranges, {stream: epoch}, {})
        thread, outcome = in_thread(lambda: old.commit_object(stale))
        wait_until(lambda: waits_on_a_lock(url, old), LOCK_WAIT_S, "the commit waiting on the row")
    thread.join()
    assert outcome[0].committed == set()
    assert outcome[0].epoch_mismatch == {stream: epoch + 1}
    assert new.ranges_by_stream() == {} and new.known_objects(["stale"]) == set()
    old.close()
    new.close()


def test_a_claim_waits_for_a_commit_in_flight(url: str) -> None:
    """The reverse order: a commit that has checked its epoch holds the row until it
    commits, so the claim lands after the ranges are published, never between."""
    old, new = PostgresEngine(url), PostgresEngine(url)
    old.create_topic("t", 1, {})
    (partition,) = old.partitions("t")
    stream = partition.stream_id
    epoch = old.claim_leadership({stream: 0}, 1).claimed[stream]
    with old._transaction():
        outcome = old.commit_object(
            ObjectCommit("mine", 10, 1, [RangeCommit(stream, 0, 5, 0, 10, 1)], {stream: epoch}, {})
        )
        assert outcome.committed == {stream}
        thread, claimed = in_thread(lambda: new.claim_leadership({stream: epoch}, 2))
        wait_until(lambda: waits_on_a_lock(url, new), LOCK_WAIT_S, "the claim waiting on the row")
    thread.join()
    assert claimed[0].claimed == {stream: epoch + 1}
    assert [r.object_key for r in new.ranges_by_stream()[stream]] == ["mine"]
    old.close()
    new.close()


def test_a_lost_connection_is_opened_again(url: str) -> None:
    async def run() -> None:
        store = open_metadata_store(url)
        await store.open()
        await store.create_topic("t", 1, {})
        pid = store.engine._conn.info.backend_pid  # type: ignore[attr-defined]
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(MetadataStoreUnavailable) as lost:
            await store.topics()  # the call that finds the connection lost fails
        assert lost.value.code == ErrorCode.request_timed_out  # retriable for a client
        assert [t.name for t in await store.topics()] == ["t"]
        await store.close()

    asyncio.run(run())


def test_an_unreachable_server_is_named_without_its_password() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there

    async def run() -> None:
        store = open_metadata_store(f"postgresql://broker:s3cret@127.0.0.1:{port}/meta")
        with pytest.raises(MetadataStoreUnreachable) as refused:
            await store.open()
        message = str(refused.value)
        assert f"postgresql://broker:***@127.0.0.1:{port}/meta" in message
        assert "s3cret" not in message
        await store.close()

    asyncio.run(run())
