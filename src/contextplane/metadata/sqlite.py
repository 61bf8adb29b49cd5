"""The SQLite engine of the metadata store (the embedded default).

`SqliteEngine` is the shared `SqlEngine` (sql_engine.py) on one sqlite3 connection: every
change readers rely on in one transaction (`BEGIN IMMEDIATE`, which takes the database's
one write lock, so epoch checks need no row locks), WAL journal with `synchronous=FULL` so that a
committed transaction survives power loss (the broker trims its own write-ahead log only
after a commit). `SqliteMetadataStore` is the async store (sql_store.py) over it.

A write that fails for lack of disk space releases the space reserve (reserve.py) and runs
once more, so uploads can always commit and drain a full disk. One that still fails
(nothing left to release) raises `MetadataStoreFull`, a `MetadataStoreUnavailable` with
KAFKA_STORAGE_ERROR (retriable), which handlers answer as they answer a PostgreSQL outage: the
request gets the code, its connection stays open. On a disk with no room even for the
shared-memory index (-shm) the database opens in exclusive locking mode; an open or a
leadership claim that cannot proceed for lack of space is retried until space returns,
after one log line.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from contextplane.metadata import migrations
from contextplane.metadata.records import BrokerEndpoint, ClaimOutcome, Registration
from contextplane.metadata.reserve import SpaceReserve
from contextplane.metadata.runner import Runner, ThreadRunner
from contextplane.metadata.sql_engine import SqlEngine
from contextplane.metadata.sql_store import SqlMetadataStore
from contextplane.metadata.sqlite_transaction import Transaction
from contextplane.metadata.store import MetadataStoreUnavailable
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_P = ParamSpec("_P")
ENGINE = "sqlite"
# SQLite's primary result codes for a failed write: the disk is full, or an I/O error
# (creating or growing the -shm file on a full disk reports SQLITE_IOERR_SHMSIZE).
_SQLITE_FULL, _SQLITE_IOERR = 13, 10
_OUT_OF_SPACE_CODES = (_SQLITE_FULL, _SQLITE_IOERR)
SPACE_RETRY_S = 1.0  # how often a start on a full disk tries again


def _out_of_space(exc: BaseException) -> bool:
    if isinstance(exc, MetadataStoreFull):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _OUT_OF_SPACE_CODES


class MetadataStoreFull(MetadataStoreUnavailable):
    """A metadata write failed for lack of disk space (or an I/O error, which is how
    SQLite reports a full disk while it grows its -shm index) with no reserve left to
    release; nothing of it was written. Retriable: it works again once space is freed."""

    def __init__(self, exc: sqlite3.Error) -> None:
        full = getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_FULL
        what = "its disk is full" if full else "its disk failed a write"
        super().__init__(
            f"metadata store write refused: {what} ({exc}); retry once space is freed",
            ErrorCode.kafka_storage_error,
        )


class SqliteEngine(SqlEngine):
    def __init__(self, path: str, reserve: SpaceReserve | None = None) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.reserve = reserve
        self._path = path
        self._db: sqlite3.Connection = self._run_write(self._connect)

    def _run_write(self, attempt: Callable[[], _T]) -> _T:
        """Run a write once more in the reserved space if it failed for lack of disk."""
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            if not _out_of_space(exc) or self.reserve is None or not self.reserve.release():
                raise
            return attempt()

    def _connect(self) -> sqlite3.Connection:
        try:
            return self._open(exclusive=False)
        except sqlite3.OperationalError as exc:
            if not _out_of_space(exc) or self._path == ":memory:":
                raise
            if self.reserve is not None and self.reserve.present:
                raise  # the reserve is released and the open retried (_run_write)
            # A disk that was full when the broker stopped: nothing left to release, and
            # no room for the shared-memory index (-shm) WAL mode opens with. In exclusive
            # locking mode the index lives in this process's memory, so the store opens
            # and reads (writes fail, retriably, until space returns); other processes
            # cannot read the database until the broker restarts.
            log.warning(
                "metadata store %s: no disk space for its shared-memory index (%s); "
                "opened in exclusive locking mode until the next restart",
                self._path,
                exc,
            )
            return self._open(exclusive=True)

    def _open(self, exclusive: bool) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            if exclusive:
                db.execute("PRAGMA locking_mode=EXCLUSIVE")  # before the first WAL access
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            migrations.apply(db, ENGINE, lambda: Transaction(db))
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> Transaction:
        return Transaction(self._db)


class SqliteMetadataStore(SqlMetadataStore):
    """`MetadataStore` on SQLite: every call runs on the runner (one worker thread)."""

    # Exclusive locking: one process, so no other broker can claim what this one leads.
    shared = False

    def __init__(
        self, path: str, reserve: SpaceReserve | None = None, runner: Runner | None = None
    ) -> None:
        self._runner = runner or ThreadRunner("metadata")
        self._engine: SqliteEngine | None = None
        self._path = path
        self.reserve = reserve

    async def open(self) -> None:
        self._engine = await self._until_space(
            "open", lambda: self._runner.run(SqliteEngine, self._path, self.reserve)
        )

    async def _call(self, method: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await self._runner.run(method, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            if not _out_of_space(exc):
                raise
            raise MetadataStoreFull(exc) from exc

    async def _until_space(self, what: str, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """`attempt`, retried until the disk has room for it; a start that cannot go on
        for lack of space says so once (no traceback, no exit)."""
        waiting = False
        while True:
            try:
                result = await attempt()
            except (sqlite3.OperationalError, MetadataStoreFull) as exc:
                if not _out_of_space(exc):
                    raise
                if not waiting:
                    log.error(
                        "metadata store %s cannot %s: the disk is full (%s); retrying "
                        "every %.0f s until space returns",
                        self._path,
                        what,
                        exc,
                        SPACE_RETRY_S,
                    )
                    waiting = True
                await asyncio.sleep(SPACE_RETRY_S)
                continue
            if waiting:
                log.info("metadata store %s: %s done, disk space returned", self._path, what)
            return result

    async def close(self) -> None:
        if self._engine is not None:
            await self._runner.run(self._engine.close)
            self._engine = None
            if self.reserve is not None and not self.reserve.present:
                # Closing deleted SQLite's -wal and -shm files: hold that space for the
                # next start (it needs room to open and to claim leadership), rather than
                # leave it to whatever else fills the disk meanwhile.
                await self._runner.run(self.reserve.hold_what_fits)
        await super().close()

    async def claim_leadership(
        self, claims: dict[int, int], node_id: int, unclean: frozenset[int] = frozenset()
    ) -> ClaimOutcome:
        # A start leads nothing before this commits: wait for space rather than fail.
        return await self._until_space(
            "claim leadership",
            lambda: self._call(self.engine.claim_leadership, claims, node_id, unclean),
        )

    async def register_broker(
        self,
        node_id: int,
        incarnation: int,
        rack: str | None,
        endpoints: tuple[BrokerEndpoint, ...],
        session_ms: int,
        replaces: int = -1,
        wal_url: str | None = None,
        zone_proxy: bool = False,
    ) -> Registration:
        # A start registers before it claims: wait for space as the claim does.
        return await self._until_space(
            "register the broker",
            lambda: self._call(
                self.engine.register_broker,
                node_id,
                incarnation,
                rack,
                endpoints,
                session_ms,
                replaces,
                wal_url,
                zone_proxy,
            ),
        )
