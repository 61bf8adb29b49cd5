"""The PostgreSQL engine of the metadata store (`postgresql://user@host:port/db`).

The shared `SqlEngine` (sql_engine.py) on one psycopg 3 connection. The connection is
synchronous and used from the store's runner (one worker thread in the broker, inline in
the simulations), as SQLite's is: the engine logic is written once, synchronously, for
both engines, and the event loop never waits on the database. (psycopg's async connection
would need a second, async copy of that logic.)

Concurrency: several brokers commit at once, so transactions run at READ COMMITTED with
row locks rather than SERIALIZABLE with retries. Every check a transaction's writes depend
on reads the partition row with `SELECT ... FOR UPDATE` (`SqlEngine.leader_epoch`), in
stream order so that two transactions never wait on each other in a cycle: an object
commit holds the rows of the partitions it publishes until it commits, so a leadership
claim (`UPDATE ... WHERE leader_epoch = seen`, which re-checks its condition after the
lock) lands wholly before or wholly after it, and a commit whose epoch moved is refused.
Row locks serialise only the transactions that touch the same partitions, and the hot
path (object commits of different partitions) never retries; SERIALIZABLE would abort and
re-run any pair whose reads overlap (every commit reads `objects`). Transactions that drop
ranges additionally take one advisory lock (`_before_range_deletes`) so that objects left
unreferenced are always found.

A PostgreSQL outage (a restart, a killed backend, a stopped or unreachable server) never
blocks a caller for longer than `metadata.postgresql.call.timeout.ms` and never needs a
broker restart. Every wait is bounded (postgres_connection.py); a call the server did not
answer in time has its connection shut down under it. A call that fails for it raises
`MetadataStoreUnavailable`, a retriable Kafka error (REQUEST_TIMED_OUT) the handlers
answer with; it is not retried here, since a write whose reply was lost may have
committed (the uploader retries its object commit, which is idempotent). The next call
opens a new connection, attempts spaced by a back-off while the server stays away.

Migrations (sql/postgresql/NNNN-*.sql, the numbers and meaning of SQLite's) run at open,
one transaction each, under a session advisory lock so that brokers starting together
apply each once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar

import psycopg

from contextplane.clock import SystemClock
from contextplane.metadata import migrations
from contextplane.metadata.postgres_connection import (
    PostgresOptions,
    ReconnectBackoff,
    apply_session_settings,
    connection_parameters,
    first_line,
    redacted,
    session_settings,
)
from contextplane.metadata.postgres_listener import GenerationListener
from contextplane.metadata.runner import Runner, ThreadRunner
from contextplane.metadata.sql_db import Cursor
from contextplane.metadata.sql_engine import SqlEngine
from contextplane.metadata.sql_store import SqlMetadataStore
from contextplane.metadata.store import MetadataStoreUnavailable, MetadataStoreUnreachable

__all__ = ["PostgresEngine", "PostgresMetadataStore", "PostgresOptions", "redacted"]

log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_T = TypeVar("_T")
ENGINE = "postgresql"
# pg_advisory_lock keys (any fixed 64-bit numbers unique to this application).
_MIGRATION_LOCK = 0x6370_6D69_6772_0001
_UNREFERENCE_LOCK = 0x6370_6D69_6772_0002
# What a lost, refused, cancelled or timed-out connection raises (psycopg's QueryCanceled,
# AdminShutdown and friends are OperationalErrors; a closed connection's use, InterfaceError).
_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError)


@functools.lru_cache(maxsize=512)
def _dialect(sql: str) -> str:
    """The shared statements' `?` placeholders as psycopg's `%s` (a literal % doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresDb:
    """A psycopg connection as `sql_db.Db`: `?` placeholders, a cursor per statement."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return self.conn.execute(_dialect(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        cursor = self.conn.cursor()
        rows = list(parameters)
        if rows:
            cursor.executemany(_dialect(sql), rows)
        return cursor


class Transaction:
    """BEGIN ... COMMIT on an autocommit connection, rolled back on any exception; a
    transaction inside another joins the outer one."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._outer = False

    def __enter__(self) -> None:
        idle = self._conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        self._outer = idle
        if self._outer:
            self._conn.execute("BEGIN")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._outer or self._conn.closed or self._conn.broken:
            return  # a lost connection's transaction ended with it, on the server
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")


class PostgresEngine(SqlEngine):
    _lock = " FOR UPDATE"
    _now_ms = "(extract(epoch from clock_timestamp()) * 1000)::bigint"

    def __init__(self, url: str, options: PostgresOptions | None = None) -> None:
        self.reserve = None
        self._url = url
        self._options = options or PostgresOptions()
        self._backoff = ReconnectBackoff(self._options.reconnect_backoff_max_ms)
        self._running_since: float | None = None  # the call on the worker thread, if any
        conn = _connect(url, self._options)
        try:
            # Migrations first: they may wait long for another broker's (advisory lock)
            # and run long statements; the sessions' bounds apply from then on.
            _migrate(conn, PostgresDb(conn))
            apply_session_settings(conn, session_settings(url, self._options))
        except BaseException:
            conn.close()
            raise
        self._use(conn)

    def _use(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._db = PostgresDb(conn)
        self._socket = conn.pgconn.socket

    def _transaction(self) -> Transaction:
        return Transaction(self._conn)

    def call(self, method: Callable[[], _T]) -> _T:
        """Run `method` on the connection, reopened first if it was lost; a failure of
        the connection or the server raises MetadataStoreUnavailable."""
        self._ensure_connected()
        self._running_since = _monotonic_s()
        try:
            return method()
        except _UNAVAILABLE as exc:
            if self._conn.broken or self._conn.closed:
                log.warning(
                    "metadata store %s: connection lost (%s); the next call reconnects",
                    redacted(self._url),
                    first_line(exc),
                )
            raise MetadataStoreUnavailable(
                f"metadata store {redacted(self._url)}: {first_line(exc)}"
            ) from exc
        finally:
            self._running_since = None

    def _ensure_connected(self) -> None:
        if not (self._conn.broken or self._conn.closed):
            return
        self._conn.close()  # what libpq still holds of the lost one
        wait_s = self._backoff.wait_s()
        if wait_s > 0:
            raise MetadataStoreUnavailable(
                f"metadata store {redacted(self._url)} unreachable; reconnecting in {wait_s:.1f} s"
            )
        try:
            conn = _connect(self._url, self._options)
            try:
                apply_session_settings(conn, session_settings(self._url, self._options))
            except BaseException:
                conn.close()
                raise
        except (MetadataStoreUnreachable, *_UNAVAILABLE) as exc:
            if self._backoff.failing_since is None:
                log.warning("%s; retrying with back-off", first_line(exc))
            self._backoff.failed()
            raise MetadataStoreUnavailable(first_line(exc)) from exc
        down_s = self._backoff.succeeded()
        log.warning(
            "metadata store %s: reconnected%s",
            redacted(self._url),
            "" if down_s is None else f" after {down_s:.1f} s of failed attempts",
        )
        self._use(conn)

    def interrupt_if_overdue(self, overdue_s: float) -> None:
        """Called from another thread: if the call running now has run for `overdue_s`,
        shut its connection's socket down, so that a server or network that stopped
        answering cannot hold the worker thread (the call fails, the next reconnects)."""
        started = self._running_since
        if started is None or _monotonic_s() - started < overdue_s:
            return
        log.warning(
            "metadata store %s: no answer in %.1f s, dropping the connection",
            redacted(self._url),
            _monotonic_s() - started,
        )
        try:
            # A duplicate of the descriptor: shutting it down shuts the shared socket
            # down (the worker's poll wakes), closing it leaves psycopg's own alone.
            with socket.socket(fileno=os.dup(self._socket)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # closed meanwhile: the call ended

    def _before_range_deletes(self) -> None:
        self._db.execute("SELECT pg_advisory_xact_lock(?)", (_UNREFERENCE_LOCK,))

    def close(self) -> None:
        self._conn.close()


def _connect(url: str, options: PostgresOptions) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=True, **connection_parameters(url, options))
    except psycopg.OperationalError as exc:
        raise MetadataStoreUnreachable(
            f"cannot connect to the metadata store {redacted(url)}: {first_line(exc)}"
        ) from exc


def _migrate(conn: psycopg.Connection[Any], db: PostgresDb) -> None:
    db.execute("SELECT pg_advisory_lock(?)", (_MIGRATION_LOCK,))
    try:
        migrations.apply(db, ENGINE, lambda: Transaction(conn))
    finally:
        if not conn.broken:
            db.execute("SELECT pg_advisory_unlock(?)", (_MIGRATION_LOCK,))


class PostgresMetadataStore(SqlMetadataStore):
    """`MetadataStore` on PostgreSQL: every call runs on the runner (one worker thread),
    bounded by the call timeout, queueing included."""

    def __init__(
        self, url: str, runner: Runner | None = None, options: PostgresOptions | None = None
    ) -> None:
        self._runner = runner or ThreadRunner("metadata")
        self._engine: PostgresEngine | None = None
        self._url = url
        self._options = options or PostgresOptions()

    async def open(self) -> None:
        self._engine = await self._runner.run(PostgresEngine, self._url, self._options)

    def companion(self) -> PostgresMetadataStore:
        """A second connection on a second thread: a heartbeat never queues behind a long
        transaction of this store's. The same bounded waits apply to it."""
        return PostgresMetadataStore(self._url, ThreadRunner("metadata-heartbeat"), self._options)

    def change_listener(self, wake: Callable[[], None]) -> GenerationListener | None:
        """One LISTEN connection that calls `wake` on every committed generation bump
        (None with `metadata.postgresql.listen` off: the heartbeat reads them)."""
        if not self._options.listen:
            return None
        return GenerationListener(self._url, self._options, wake)

    async def _call(self, method: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        engine = self._engine
        assert engine is not None, "the metadata store is not open"
        deadline_s = self._options.call_timeout_s
        bound = asyncio.timeout(deadline_s)
        try:
            async with bound:
                return await self._runner.run(
                    engine.call, functools.partial(method, *args, **kwargs)
                )
        except TimeoutError:
            if not bound.expired():
                raise
            # A call still queued is dropped. The one running is stuck on its socket if it
            # has run past statement_timeout (half the bound), which a server that still
            # answers would have applied: whoever's it is, it cannot hold the thread.
            engine.interrupt_if_overdue(self._options.statement_timeout_ms / 1000)
            raise MetadataStoreUnavailable(
                f"metadata store {redacted(self._url)}: no answer within"
                f" {self._options.call_timeout_ms} ms"
            ) from None


_CLOCK = SystemClock()  # a running call's age: real time, whatever clock the broker injects


def _monotonic_s() -> float:
    return _CLOCK.monotonic_ms() / 1000
