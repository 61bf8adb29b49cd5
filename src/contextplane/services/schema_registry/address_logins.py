"""Credential checks in flight, per client address: a password check costs a SASL login
to the cluster (a registry run alone) or a PBKDF2 on one of two threads (beside the
broker), so one address sending wrong passwords for many user names would otherwise
queue its checks ahead of every other client's.

At most PER_ADDRESS different credentials are checked at once per address, and past that
a request is refused at once (TooManyLogins: 429 with Retry-After), before any check is
queued. The same credentials again count once (a client's burst of requests at start is
never refused); each request still makes its own check, so a flood of one wrong password
is paced by the checks as before (the cluster logins answer it from their cache, one
login per user at a time). A cached answer completes without waiting, so
it holds its place for no time at all. The table holds an address only while one of its
checks is in flight, so it never outgrows the connections served at once (uvicorn's
CONNECTIONS_MAX) times PER_ADDRESS.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

# Different credentials one address may have checked at once: the cluster logins' four
# threads (cluster_logins.py) keep two for everyone else, and beside the broker the other
# clients' checks queue behind at most two of this address's.
PER_ADDRESS = 2
# What a refused client is told to wait (the Retry-After header), in seconds.
RETRY_AFTER_S = 1

Checked = TypeVar("Checked")


class TooManyLogins(Exception):
    """This address already has PER_ADDRESS different credentials being checked."""


class AddressLogins:
    def __init__(self, per_address: int = PER_ADDRESS) -> None:
        self.per_address = per_address
        self.refused = 0  # requests answered 429 (a test and an operator read it)
        # Credentials are keyed by an HMAC under a key of this process: none is kept.
        self._key = os.urandom(32)
        # address -> credentials being checked -> requests checking them
        self._in_flight: dict[str, dict[bytes, int]] = {}

    def addresses(self) -> int:
        """Addresses with a check in flight now."""
        return len(self._in_flight)

    async def check(
        self, host: str, credentials: str, run: Callable[[], Awaitable[Checked]]
    ) -> Checked:
        """`run()`'s answer, unless `host` already has PER_ADDRESS other credentials in
        flight (TooManyLogins)."""
        digest = hmac.new(
            self._key, credentials.encode("utf-8", "surrogateescape"), hashlib.sha256
        ).digest()
        checks = self._in_flight.get(host)
        if checks is not None and digest not in checks and len(checks) >= self.per_address:
            self.refused += 1
            raise TooManyLogins
        checks = self._in_flight.setdefault(host, {})
        checks[digest] = checks.get(digest, 0) + 1
        try:
            return await run()
        finally:
            checks[digest] -= 1
            if not checks[digest]:
                del checks[digest]
                if not checks:
                    del self._in_flight[host]
