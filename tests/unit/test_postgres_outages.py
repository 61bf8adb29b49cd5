"""A PostgreSQL metadata store through outages, on a real server: every call answers
within its bound (a retriable MetadataStoreUnavailable when the server cannot answer),
and the store finds the server again by itself, without a reopen.

A hung server is one of the store's backends stopped (SIGSTOP): its socket stays open
and silent, which no TCP timeout notices. A stopped server is a private one, halted and
started again on the same data and port."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from contextplane.metadata.postgres import PostgresMetadataStore, PostgresOptions
from contextplane.metadata.postgres_connection import connection_parameters, session_settings
from contextplane.metadata.records import OffsetRow
from contextplane.metadata.store import MetadataStoreUnavailable
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings
from contextplane.storage import uploader
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.memory_wal import MemoryWal
from tests.support.postgres import PostgresServer
from tests.unit.test_engine_recovery import batch

CALL_TIMEOUT_MS = 1_000
OPTIONS = PostgresOptions(call_timeout_ms=CALL_TIMEOUT_MS, reconnect_backoff_max_ms=500)
# Liveness bound for an answer the store owes within CALL_TIMEOUT_MS (a busy machine's
# margin; no performance claim).
ANSWER_BOUND_S = 15.0


@pytest.fixture
def url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture
def private_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


def backend_pid(store: PostgresMetadataStore) -> int:
    return int(store.engine._conn.info.backend_pid)  # type: ignore[attr-defined]


async def unavailable(call: Awaitable[Any]) -> MetadataStoreUnavailable:
    """The MetadataStoreUnavailable the awaitable `call` raises, within the bound."""
    with pytest.raises(MetadataStoreUnavailable) as failed:
        await asyncio.wait_for(call, ANSWER_BOUND_S)
    assert failed.value.code == ErrorCode.request_timed_out
    return failed.value


def test_a_hung_server_answers_retriably_and_the_next_call_reconnects(url: str) -> None:
    async def run() -> None:
        store = PostgresMetadataStore(url, options=OPTIONS)
        await store.open()
        await store.create_topic("t", 1, {})
        hung = backend_pid(store)
        os.kill(hung, signal.SIGSTOP)
        try:
            failed = await unavailable(store.topics())
            assert f"no answer within {CALL_TIMEOUT_MS} ms" in str(failed)
        finally:
            os.kill(hung, signal.SIGCONT)
        assert [t.name for t in await store.topics()] == ["t"]
        assert backend_pid(store) != hung  # the silent connection was dropped
        await store.close()

    asyncio.run(run())


def test_a_statement_stuck_on_a_lock_is_cancelled_and_the_connection_kept(url: str) -> None:
    """Another session holds a lock the call needs (a hung broker mid-transaction, say):
    the server cancels the statement after statement_timeout, half the call's bound."""

    async def run() -> None:
        store = PostgresMetadataStore(url, options=OPTIONS)
        await store.open()
        pid = backend_pid(store)
        with psycopg.connect(url) as holder:
            holder.execute("LOCK TABLE group_offsets IN ACCESS EXCLUSIVE MODE")
            failed = await unavailable(store.commit_offsets("g", [OffsetRow("t", 0, 5, -1, "")], 1))
            assert "statement timeout" in str(failed)
        await store.commit_offsets("g", [OffsetRow("t", 0, 5, -1, "")], 1)
        assert (await store.fetch_offsets("g"))[("t", 0)].offset == 5
        assert backend_pid(store) == pid
        await store.close()

    asyncio.run(run())


def test_a_stopped_server_is_found_again_without_a_reopen(private_server: PostgresServer) -> None:
    url = private_server.create_database()

    async def run() -> None:
        store = PostgresMetadataStore(url, options=OPTIONS)
        await store.open()
        await store.commit_offsets("g", [OffsetRow("t", 0, 42, -1, "")], 1)
        private_server.halt()
        for _ in range(3):  # refused at once, or by the back-off: never a wait past the bound
            await unavailable(store.fetch_offsets("g"))
        private_server.resume()

        async def answers() -> bool:
            try:
                return (await store.fetch_offsets("g"))[("t", 0)].offset == 42
            except MetadataStoreUnavailable:
                return False

        await until(answers, ANSWER_BOUND_S, "the store back on the server")
        await store.commit_offsets("g", [OffsetRow("t", 0, 43, -1, "")], 2)
        await store.close()

    asyncio.run(run())


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Poll an async `condition` until it holds; fail naming `what` after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def test_the_url_s_own_parameters_win(url: str) -> None:
    own = f"{url}?connect_timeout=7&keepalives_idle=30&options=-c%20statement_timeout%3D12345"
    parameters = connection_parameters(own, OPTIONS)
    assert "connect_timeout" not in parameters and "keepalives_idle" not in parameters
    assert parameters["keepalives"] == 1 and parameters["tcp_user_timeout"] == CALL_TIMEOUT_MS
    assert [name for name, _ in session_settings(own, OPTIONS)] == [
        "synchronous_commit",
        "idle_in_transaction_session_timeout",
    ]

    async def shown(store_url: str) -> tuple[str, str]:
        store = PostgresMetadataStore(store_url, options=OPTIONS)
        await store.open()
        conn = store.engine._conn  # type: ignore[attr-defined]
        (timeout,) = conn.execute("SHOW statement_timeout").fetchone()
        (idle,) = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
        await store.close()
        return timeout, idle

    assert asyncio.run(shown(url)) == ("500ms", "1s")
    assert asyncio.run(shown(own)) == ("12345ms", "1s")


def test_a_stop_during_an_outage_leaves_the_tail_in_the_wal_without_waiting_it_out(
    private_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clean stop's final upload gives up once the store has stayed out of reach for
    its bound, instead of retrying (and leaving an orphan object per try) until
    `shutdown.timeout.ms`; the WAL keeps what was not published."""
    url = private_server.create_database()
    monkeypatch.setattr(uploader, "_DRAIN_STORE_OUTAGE_S", 1.0)

    async def run() -> None:
        settings = Settings(
            data_dir=tmp_path, upload_interval_ms=3_600_000, shutdown_timeout_ms=600_000
        )
        store = PostgresMetadataStore(url, options=OPTIONS)
        await store.open()
        await store.create_topic("t", 1, {})
        engine = StorageEngine(settings, store, wal=MemoryWal(), objects=MemoryObjectStore())
        await engine.open()
        await engine.append(engine.partitions[("t", 0)], batch(1, 0, 5, b"A")).durable
        private_server.halt()
        try:
            await asyncio.wait_for(engine.close(), ANSWER_BOUND_S * 2)
            assert engine.pending_bytes > 0
        finally:
            private_server.resume()
            await store.close()

    asyncio.run(run())


def test_listening_for_changes_can_be_turned_off_for_a_pooler(url: str) -> None:
    """`metadata.postgresql.listen=false` (a pooler in transaction mode carries no
    LISTEN): the store offers no change listener and the heartbeat reads changes."""
    settings = Settings(metadata_postgresql_listen=False)
    assert PostgresMetadataStore(url, options=OPTIONS).change_listener(lambda: None) is not None
    quiet = PostgresMetadataStore(url, options=PostgresOptions.from_settings(settings))
    assert quiet.change_listener(lambda: None) is None
