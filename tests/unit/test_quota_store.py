"""Client quotas in the metadata store (migration 0004): set, replaced, removed in one
transaction per change, and read back after reopening; `QuotaAdmin` puts a change in
force only once it is stored, and loads what is stored at start."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from contextplane.clock import ManualClock
from contextplane.metadata import migrations
from contextplane.metadata.records import ClientQuotaRecord
from contextplane.metadata.sqlite import SqliteEngine
from contextplane.metadata.store import open_metadata_store
from contextplane.security.client_quotas import ClientQuotas
from contextplane.security.quota_admin import QuotaAdmin
from contextplane.security.quota_config import CLIENT_ID, USER, Alteration

C1 = ((CLIENT_ID, "c1"),)
DEFAULTS = ((CLIENT_ID, None), (USER, None))


def test_quotas_are_set_replaced_removed_and_survive_reopening(metadata_url: str) -> None:
    async def run() -> None:
        url = metadata_url
        store = open_metadata_store(url)
        await store.open()
        assert await store.client_quotas() == []
        await store.alter_client_quotas(
            [
                ClientQuotaRecord(C1, "producer_byte_rate", 100.0),
                ClientQuotaRecord(C1, "consumer_byte_rate", 200.0),
                ClientQuotaRecord(DEFAULTS, "request_percentage", 12.5),
            ]
        )
        await store.alter_client_quotas(
            [
                ClientQuotaRecord(C1, "producer_byte_rate", 300.0),
                ClientQuotaRecord(C1, "consumer_byte_rate", None),
            ]
        )
        await store.close()
        store = open_metadata_store(url)
        await store.open()
        assert sorted(await store.client_quotas(), key=repr) == sorted(
            [
                ClientQuotaRecord(C1, "producer_byte_rate", 300.0),
                ClientQuotaRecord(DEFAULTS, "request_percentage", 12.5),
            ],
            key=repr,
        )
        await store.close()

    asyncio.run(run())


def test_a_change_is_in_force_only_once_stored_and_is_loaded_at_start(metadata_url: str) -> None:
    async def run() -> None:
        url = metadata_url
        store = open_metadata_store(url)
        await store.open()
        admin = await QuotaAdmin.load(store, ClientQuotas(ManualClock()))
        set_rate = Alteration(C1, (("producer_byte_rate", 1024.0),))
        assert await admin.alter([set_rate], validate_only=True) == {C1: None}
        assert admin.quotas.configured == {} and await store.client_quotas() == []
        assert await admin.alter([set_rate], validate_only=False) == {C1: None}
        assert admin.quotas.configured == {C1: {"producer_byte_rate": 1024.0}}
        await store.close()
        store = open_metadata_store(url)
        await store.open()
        reloaded = await QuotaAdmin.load(store, ClientQuotas(ManualClock()))
        assert reloaded.quotas.configured == {C1: {"producer_byte_rate": 1024.0}}
        # Removing the last key removes the entity.
        await reloaded.alter([Alteration(C1, (("producer_byte_rate", None),))], False)
        assert reloaded.quotas.configured == {} and await store.client_quotas() == []
        await store.close()

    asyncio.run(run())


def test_a_version_2_database_gains_the_quota_table(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
        )
        for migration in migrations.migrations("sqlite")[:2]:
            db.executescript(migration.sql)
            db.execute(
                "INSERT INTO schema_migrations VALUES (?, ?)", (migration.version, migration.name)
            )
    engine = SqliteEngine(str(path))
    assert engine.client_quotas() == []
    engine.close()


def test_reload_puts_in_force_what_another_broker_changed(metadata_url: str) -> None:
    """A second QuotaAdmin on the same store (another broker) enforces a quota set or
    removed through the first once it reloads."""

    async def run() -> None:
        store = open_metadata_store(metadata_url)
        await store.open()
        try:
            mine = await QuotaAdmin.load(store, ClientQuotas(ManualClock()))
            other = await QuotaAdmin.load(store, ClientQuotas(ManualClock()))
            await mine.alter([Alteration(C1, (("producer_byte_rate", 1024.0),))], False)
            assert other.quotas.configured == {}
            await other.reload()
            assert other.quotas.configured == {C1: {"producer_byte_rate": 1024.0}}
            assert other.quotas.resolve("producer_byte_rate", "", "c1") is not None
            await mine.alter([Alteration(C1, (("producer_byte_rate", None),))], False)
            await other.reload()
            assert other.quotas.configured == {}
            assert other.quotas.resolve("producer_byte_rate", "", "c1") is None
        finally:
            await store.close()

    asyncio.run(run())
