"""The metadata store: numbered migrations, and the engines behind the async interface
(calls run on its worker thread, never on the event loop). Tests taking `metadata_url`
run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from contextplane.metadata import migrations
from contextplane.metadata.migrations import MigrationError
from contextplane.metadata.records import (
    AclRecord,
    ObjectCommit,
    ProducerRow,
    ProducerStateDelta,
    RangeCommit,
    ScramCredentialRecord,
)
from contextplane.metadata.sqlite import SqliteEngine
from contextplane.metadata.store import open_metadata_store
from tests.support.metadata import open_engine


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_migrations_are_numbered_without_gaps(engine: str) -> None:
    found = migrations.migrations(engine)
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert migrations.pending(engine, {m.version for m in found}) == []


def test_every_engine_has_the_same_migration_versions_and_names() -> None:
    def names(engine: str) -> list[tuple[int, str]]:
        return [(m.version, m.name) for m in migrations.migrations(engine)]

    assert names("postgresql") == names("sqlite")


def test_a_new_database_records_every_migration(tmp_path: Path) -> None:
    SqliteEngine(str(tmp_path / "m.db")).close()
    with sqlite3.connect(tmp_path / "m.db") as db:
        applied = [row[0] for row in db.execute("SELECT version FROM schema_migrations")]
    assert applied == [m.version for m in migrations.migrations("sqlite")]


def test_a_database_from_before_migrations_opens_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(migrations.migrations("sqlite")[0].sql)
        db.execute("INSERT INTO cluster VALUES ('cluster_id', 'kept')")
    engine = SqliteEngine(str(path))
    assert engine.cluster_id() == "kept"
    engine.close()


def test_a_database_written_by_a_newer_broker_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SqliteEngine(str(path)).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_migrations VALUES (999, 'from-the-future')")
    with pytest.raises(MigrationError, match="newer broker"):
        SqliteEngine(str(path))


def test_calls_run_off_the_event_loop_thread(metadata_url: str) -> None:
    async def run() -> set[str]:
        store = open_metadata_store(metadata_url)
        await store.open()
        seen: set[str] = set()
        engine = store.engine  # type: ignore[attr-defined]
        original = engine.next_counter

        def spy(name: str, count: int = 1) -> int:
            seen.add(threading.current_thread().name)
            return original(name, count)

        engine.next_counter = spy
        assert await store.next_counter("x") == 0
        assert await store.next_counter("x") == 1
        await store.close()
        return seen

    threads = asyncio.run(run())
    assert threads and threading.main_thread().name not in threads


def test_an_object_commit_leaves_out_only_the_partitions_whose_epoch_moved(
    metadata_url: str,
) -> None:
    engine = open_engine(metadata_url)
    engine.create_topic("t", 2, {})
    first, second = engine.partitions("t")
    claimed = engine.claim_leadership({first.stream_id: 0, second.stream_id: 0}, 1).claimed
    engine.claim_leadership({first.stream_id: claimed[first.stream_id]}, 2)  # another broker
    outcome = engine.commit_object(
        ObjectCommit(
            key="k",
            size=20,
            created_ms=1,
            ranges=[
                RangeCommit(first.stream_id, 0, 5, 0, 10, 1),
                RangeCommit(second.stream_id, 0, 5, 10, 10, 1),
            ],
            epochs=claimed,
            producer_states={
                first.stream_id: ProducerStateDelta([], [], [], 0),
                second.stream_id: ProducerStateDelta([], [], [], 0),
            },
        )
    )
    assert outcome.committed == {second.stream_id}
    assert outcome.epoch_mismatch == {first.stream_id: claimed[first.stream_id] + 1}
    assert set(engine.ranges_by_stream()) == {second.stream_id}
    engine.close()


def test_acls_are_stored_once_deleted_and_survive_reopening(metadata_url: str) -> None:
    read = AclRecord(2, "orders", 3, "User:alice", "*", 3, 3)
    deny = AclRecord(2, "ord", 4, "User:*", "10.0.0.1", 2, 2)

    async def run() -> None:
        url = metadata_url
        store = open_metadata_store(url)
        await store.open()
        assert await store.acls() == []
        await store.create_acls([read, deny, read])
        await store.create_acls([read])
        await store.close()
        store = open_metadata_store(url)
        await store.open()
        assert sorted(await store.acls(), key=str) == sorted([read, deny], key=str)
        await store.delete_acls([deny, AclRecord(2, "never", 3, "User:x", "*", 3, 3)])
        assert await store.acls() == [read]
        await store.close()

    asyncio.run(run())


def test_a_version_1_database_gains_the_acl_table(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:
        db.executescript(migrations.migrations("sqlite")[0].sql)
        db.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
        )
        db.execute("INSERT INTO schema_migrations VALUES (1, 'initial')")
    engine = SqliteEngine(str(path))
    assert engine.acls() == []
    engine.close()


def test_scram_credentials_change_in_one_transaction_and_survive_reopening(
    metadata_url: str,
) -> None:
    alice = ScramCredentialRecord("alice", "SCRAM-SHA-512", b"s", b"k" * 64, b"v" * 64, 4096)
    bob = ScramCredentialRecord("bob", "SCRAM-SHA-256", b"t", b"k" * 32, b"v" * 32, 8192)

    async def run() -> None:
        url = metadata_url
        store = open_metadata_store(url)
        await store.open()
        assert await store.scram_credentials() == []
        await store.alter_scram_credentials([alice, bob], [])
        await store.close()
        store = open_metadata_store(url)
        await store.open()
        assert await store.scram_credentials() == [alice, bob]
        newer = dataclasses.replace(alice, iterations=5000)
        await store.alter_scram_credentials([newer], [("bob", "SCRAM-SHA-256")])
        assert await store.scram_credentials() == [newer]
        await store.close()

    asyncio.run(run())


def test_a_failed_scram_change_changes_nothing(metadata_url: str) -> None:
    engine = open_engine(metadata_url)
    alice = ScramCredentialRecord("alice", "SCRAM-SHA-512", b"s", b"k", b"v", 4096)
    engine.alter_scram_credentials([alice], [])
    broken = ScramCredentialRecord("bob", "SCRAM-SHA-512", b"s", b"k", b"v", None)  # type: ignore[arg-type]
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        engine.alter_scram_credentials([broken], [("alice", "SCRAM-SHA-512")])
    assert engine.scram_credentials() == [alice]
    engine.close()


def test_a_database_that_applied_the_reserved_0003_gains_the_scram_table(
    tmp_path: Path,
) -> None:
    """Migration 0003 shipped as a no-op placeholder; the SCRAM table comes in 0005, so a
    database that has applied 1-4 still gets it."""
    path = tmp_path / "v4.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
        )
        for migration in migrations.migrations("sqlite")[:4]:
            db.executescript(migration.sql)
            db.execute(
                "INSERT INTO schema_migrations VALUES (?, ?)", (migration.version, migration.name)
            )
    engine = SqliteEngine(str(path))
    assert engine.scram_credentials() == []
    engine.close()


def test_a_producer_state_snapshot_of_an_older_database_becomes_rows(tmp_path: Path) -> None:
    """Databases written before migration 0009 hold each partition's producer state as
    one JSON document; the migration moves it into rows, which the partitions load."""
    engine = SqliteEngine(str(tmp_path / "m.db"))
    engine.create_topic("t", 1, {})
    (record,) = engine.partitions("t")
    engine.close()
    snapshot = {
        "7": [2, [[0, 4, 10, 14, 1000], [5, 5, 20, 20, 1001]]],
        "9": [0, []],
        "transactions": {"open": {"9": 30, "11": 31}, "aborted": [[8, 1, 5], [8, 40, 41]]},
    }
    with sqlite3.connect(tmp_path / "m.db") as db:  # back to the schema before 0009
        db.execute("DROP TABLE producer_states")
        db.execute("DROP TABLE aborted_transactions")
        db.execute("DELETE FROM schema_migrations WHERE version = 9")
        db.execute(
            "UPDATE partitions SET producer_state=?, log_start_offset=6 WHERE stream_id=?",
            (json.dumps(snapshot), record.stream_id),
        )
    engine = SqliteEngine(str(tmp_path / "m.db"))
    (record,) = engine.partitions("t")
    rows = sorted(record.producer_state.producers, key=lambda r: r.producer_id)
    assert rows == [
        ProducerRow(7, 2, [(0, 4, 10, 14, 1000), (5, 5, 20, 20, 1001)], None),
        ProducerRow(9, 0, [], 30),
        ProducerRow(11, None, [], 31),
    ]
    assert record.producer_state.aborted == [(8, 40, 41)]  # the other is below the log start
    engine.close()
