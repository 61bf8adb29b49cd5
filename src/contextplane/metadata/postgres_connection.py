"""How the PostgreSQL metadata store connects: every wait bounded.

A connection attempt gives up after `connect_timeout`; TCP keepalives and
`tcp_user_timeout` drop a connection whose peer went silent (a dead host, a network that
swallows packets); `statement_timeout` cancels a statement that runs too long on the
server (a lock held by a hung peer) and `idle_in_transaction_session_timeout` ends the
transaction of a client that went away mid-way, so its row locks cannot block the other
brokers. The URL's own libpq parameters and `options` win over these.

`PostgresOptions` holds the broker's `metadata.postgresql.*` settings; `ReconnectBackoff`
spaces the attempts to reopen a lost connection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from contextplane import limits
from contextplane.clock import Clock, SystemClock
from contextplane.settings import Settings

LIBPQ_CONNECT_TIMEOUT_MIN_S = 2  # libpq treats 1 as 2
KEEPALIVE_PROBES = 3
RECONNECT_BACKOFF_FIRST_S = 0.1


@dataclass(frozen=True, slots=True)
class PostgresOptions:
    connect_timeout_ms: int = limits.METADATA_CONNECT_TIMEOUT_MS
    call_timeout_ms: int = limits.METADATA_CALL_TIMEOUT_MS
    keepalive_idle_ms: int = limits.METADATA_KEEPALIVE_IDLE_MS
    reconnect_backoff_max_ms: int = limits.METADATA_RECONNECT_BACKOFF_MAX_MS
    listen: bool = True  # LISTEN for other brokers' committed changes

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgresOptions:
        return cls(
            settings.metadata_postgresql_connect_timeout_ms,
            settings.metadata_postgresql_call_timeout_ms,
            settings.metadata_postgresql_keepalive_idle_ms,
            settings.metadata_postgresql_reconnect_backoff_max_ms,
            settings.metadata_postgresql_listen,
        )

    @property
    def call_timeout_s(self) -> float:
        return self.call_timeout_ms / 1000

    @property
    def statement_timeout_ms(self) -> int:
        # Half the call's bound: a slow statement on a working server is cancelled there
        # (the connection stays usable) before the client gives up on the connection.
        return max(1, self.call_timeout_ms // 2)


def redacted(url: str) -> str:
    """`url` without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connection_parameters(url: str, options: PostgresOptions) -> dict[str, Any]:
    """The libpq parameters of bounded waits that `url` does not set itself."""
    keepalive_s = max(1, options.keepalive_idle_ms // 1000)
    wanted: dict[str, Any] = {
        "connect_timeout": max(
            LIBPQ_CONNECT_TIMEOUT_MIN_S, math.ceil(options.connect_timeout_ms / 1000)
        ),
        "keepalives": 1,
        "keepalives_idle": keepalive_s,
        "keepalives_interval": keepalive_s,
        "keepalives_count": KEEPALIVE_PROBES,
        # Data sent and not acknowledged for this long drops the connection.
        "tcp_user_timeout": options.call_timeout_ms,
    }
    given = conninfo_to_dict(url)
    return {name: value for name, value in wanted.items() if name not in given}


def session_settings(url: str, options: PostgresOptions) -> list[tuple[str, str]]:
    """The server settings of every session, but those the URL's `options` sets."""
    given = str(conninfo_to_dict(url).get("options", ""))
    wanted = [
        # The broker trims its write-ahead log once a commit returns: the commit must be
        # on the server's disk by then, whatever the server's default.
        ("synchronous_commit", "on"),
        ("statement_timeout", f"{options.statement_timeout_ms}ms"),
        ("idle_in_transaction_session_timeout", f"{options.call_timeout_ms}ms"),
    ]
    return [(name, value) for name, value in wanted if name not in given]


def apply_session_settings(conn: psycopg.Connection[Any], settings: list[tuple[str, str]]) -> None:
    for name, value in settings:
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))


class ReconnectBackoff:
    """When the next attempt to reopen a lost connection may run: at once after a loss,
    then doubling from 100 ms up to the configured bound while attempts fail."""

    def __init__(self, max_ms: int, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._max_s = max_ms / 1000
        self._delay_s = 0.0
        self._next_at = 0.0
        self.failing_since: float | None = None

    def _now_s(self) -> float:
        return self._clock.monotonic_ms() / 1000

    def wait_s(self) -> float:
        """How long until the next attempt may run (0: now)."""
        return max(0.0, self._next_at - self._now_s())

    def failed(self) -> None:
        now = self._now_s()
        if self.failing_since is None:
            self.failing_since = now
        self._delay_s = min(max(RECONNECT_BACKOFF_FIRST_S, self._delay_s * 2), self._max_s)
        self._next_at = now + self._delay_s

    def succeeded(self) -> float | None:
        """Reset; returns how long the attempts had failed (None: none had)."""
        since, self.failing_since = self.failing_since, None
        self._delay_s = self._next_at = 0.0
        return None if since is None else self._now_s() - since
