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

Migrations (sql/postgresql/NNNN-*.sql, the numbers and meaning of SQLite's) run at open,
one transaction each, under a session advisory lock so that brokers starting together
apply each once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg

from contextplane.metadata import migrations
from contextplane.metadata.runner import Runner, ThreadRunner
from contextplane.metadata.sql_db import Cursor
from contextplane.metadata.sql_engine import SqlEngine
from contextplane.metadata.sql_store import SqlMetadataStore
from contextplane.metadata.store import MetadataStoreUnreachable

log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_T = TypeVar("_T")
ENGINE = "postgresql"
CONNECT_TIMEOUT_S = 10
# pg_advisory_lock keys (any fixed 64-bit numbers unique to this application).
_MIGRATION_LOCK = 0x6370_6D69_6772_0001
_UNREFERENCE_LOCK = 0x6370_6D69_6772_0002


def redacted(url: str) -> str:
    """`url` without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


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
        if not self._outer or self._conn.closed:
            return
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")


class PostgresEngine(SqlEngine):
    _lock = " FOR UPDATE"
    _now_ms = "(extract(epoch from clock_timestamp()) * 1000)::bigint"

    def __init__(self, url: str) -> None:
        self.reserve = None
        self._url = url
        self._conn = _connect(url)
        self._db = PostgresDb(self._conn)
        try:
            _migrate(self._conn, self._db)
        except BaseException:
            self._conn.close()
            raise

    def _transaction(self) -> Transaction:
        return Transaction(self._conn)

    def reconnect_if_lost(self) -> None:
        """A connection the server closed (a restart, a failover) is opened again before
        the next call; the call that found it lost has already failed to its caller."""
        if self._conn.broken or self._conn.closed:
            log.warning("metadata store %s: connection lost, reconnecting", redacted(self._url))
            self._conn = _connect(self._url)
            self._db = PostgresDb(self._conn)

    def _before_range_deletes(self) -> None:
        self._db.execute("SELECT pg_advisory_xact_lock(?)", (_UNREFERENCE_LOCK,))

    def close(self) -> None:
        self._conn.close()


def _connect(url: str) -> psycopg.Connection[Any]:
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MetadataStoreUnreachable(
            f"cannot connect to the metadata store {redacted(url)}: {detail}"
        ) from exc
    # The broker trims its write-ahead log once a commit returns: the commit must be on
    # the server's disk by then, whatever the server's default.
    conn.execute("SET synchronous_commit = on")
    return conn


def _migrate(conn: psycopg.Connection[Any], db: PostgresDb) -> None:
    db.execute("SELECT pg_advisory_lock(?)", (_MIGRATION_LOCK,))
    try:
        migrations.apply(db, ENGINE, lambda: Transaction(conn))
    finally:
        if not conn.broken:
            db.execute("SELECT pg_advisory_unlock(?)", (_MIGRATION_LOCK,))


class PostgresMetadataStore(SqlMetadataStore):
    """`MetadataStore` on PostgreSQL: every call runs on the runner (one worker thread)."""

    def __init__(self, url: str, runner: Runner | None = None) -> None:
        self._runner = runner or ThreadRunner("metadata")
        self._engine: PostgresEngine | None = None
        self._url = url

    async def open(self) -> None:
        self._engine = await self._runner.run(PostgresEngine, self._url)

    def companion(self) -> PostgresMetadataStore:
        """A second connection on a second thread: a heartbeat never queues behind a long
        transaction of this store's."""
        return PostgresMetadataStore(self._url, ThreadRunner("metadata-heartbeat"))

    async def _call(self, method: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        engine = self._engine
        assert engine is not None, "the metadata store is not open"

        def call() -> _T:
            engine.reconnect_if_lost()
            return method(*args, **kwargs)

        return await self._runner.run(call)
