"""The broker's LISTEN connection: wakes the registry when a change generation moves.

Every bump of a change generation sends `NOTIFY` on GENERATION_CHANNEL in the bumping
transaction (sql_assignment.py `bump_generation`), so PostgreSQL delivers it on commit
to every listening broker. On each notification this calls `wake`, which makes the
registry read the generations at once (its heartbeat's path) instead of at its next
heartbeat; the heartbeat stays the fallback, so nothing is lost while this connection
is down. Notifications carry nothing the registry needs: it reads the generations
themselves, and a burst of notifications ends in one read (the registry coalesces).

One connection per broker, async (psycopg's notifies), with the store's bounded waits
(keepalives drop a silent peer). A lost connection is reopened with the store's
back-off, and `wake` is called once it listens again: what was committed meanwhile is
read then. It never raises into the broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

from contextplane.metadata.postgres_connection import (
    RECONNECT_BACKOFF_FIRST_S,
    PostgresOptions,
    ReconnectBackoff,
    connection_parameters,
    first_line,
    redacted,
)
from contextplane.metadata.sql_assignment import GENERATION_CHANNEL

log = logging.getLogger(__name__)


class GenerationListener:
    def __init__(self, url: str, options: PostgresOptions, wake: Callable[[], None]) -> None:
        self._url = url
        self._options = options
        self._wake = wake
        self._backoff = ReconnectBackoff(options.reconnect_backoff_max_ms)
        self._task: asyncio.Task[None] | None = None
        # Whether the connection is listening now (for tests and logs).
        self.listening = asyncio.Event()
        # How many times it has started listening (a reconnection adds one), and the
        # server process of the connection that listens now (-1: none).
        self.connections = 0
        self.backend_pid = -1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="metadata-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.listening.clear()

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the heartbeat covers the gap
                self.listening.clear()
                self.backend_pid = -1
                if self._backoff.failing_since is None:
                    log.warning(
                        "metadata store %s: change notifications lost (%s); reconnecting,"
                        " the heartbeat reads changes meanwhile",
                        redacted(self._url),
                        first_line(exc),
                    )
                self._backoff.failed()
            await asyncio.sleep(max(RECONNECT_BACKOFF_FIRST_S, self._backoff.wait_s()))

    async def _listen(self) -> None:
        parameters = connection_parameters(self._url, self._options)
        async with asyncio.timeout(self._options.call_timeout_s):
            conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, **parameters)
        async with conn:
            async with asyncio.timeout(self._options.call_timeout_s):
                await conn.execute(f"LISTEN {GENERATION_CHANNEL}")
            down_s = self._backoff.succeeded()
            if down_s is not None:
                log.warning(
                    "metadata store %s: change notifications back after %.1f s",
                    redacted(self._url),
                    down_s,
                )
            self.connections += 1
            self.backend_pid = conn.info.backend_pid
            self.listening.set()
            self._wake()  # whatever committed while nobody listened
            async for _ in conn.notifies():
                self._wake()
        raise ConnectionError("the notification stream ended")
