"""HTTP Basic passwords of a registry run alone (`contextplane registry`), checked by the
Kafka cluster itself: a SASL login (SCRAM or PLAIN) as the user, with the registry's own
security protocol and TLS settings. The cluster is the one authority on its users, so
the registry keeps no copy of them and works against any Kafka cluster.

A login costs a connection and the cluster's hashing, so answers are cached: a success
for LOGIN_CACHE_S, a refusal for only REFUSAL_CACHE_S (a password just set works at
once), at most CACHE_ENTRIES of them, keyed by an HMAC of user and password under a key
of this process (no password is kept). One login at a time per user and LOGINS_AT_ONCE
at all: a flood of wrong passwords for one user waits its turn, and costs the cluster one
login per distinct password at a time (and per client address, two different credentials
at once: address_logins.py).

A user name or password librdkafka would not send as given is refused unasked: it ends a
setting at a NUL and drops leading whitespace, so "alice\\0x" or " alice" with alice's
password would log in as alice while the registry named the caller by what it was sent,
a principal no DENY of User:alice matches.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from contextplane.cli.kafka_client import BrokerUnreachable, Connection
from contextplane.clock import SystemClock

log = logging.getLogger(__name__)

MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
LOGIN_CACHE_S = 60.0
REFUSAL_CACHE_S = 2.0
CACHE_ENTRIES = 10_000
LOGINS_AT_ONCE = 4
# What librdkafka strips from the start of a setting (C isspace).
_LEADING_SPACE = " \t\n\v\f\r"
# The longest a login may wait for the cluster (librdkafka reports a refused login at
# once; this bounds a cluster that does not answer).
LOGIN_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class _Answer:
    accepted: bool
    expires_ms: int


def _sent_as_given(text: str) -> bool:
    """Would librdkafka's login carry `text` unchanged?"""
    return "\0" not in text and not text.startswith(tuple(_LEADING_SPACE))


def login_config(registry_config: dict[str, str], mechanism: str) -> dict[str, str]:
    """librdkafka settings for a user's login: the registry's own connection (bootstrap,
    TLS) with its SASL settings replaced by `mechanism` over SASL_PLAINTEXT or SASL_SSL."""
    config = {k: v for k, v in registry_config.items() if not k.startswith("sasl.")}
    protocol = config.get("security.protocol", "PLAINTEXT").upper()
    config["security.protocol"] = (
        "SASL_SSL" if protocol in ("SSL", "SASL_SSL") else "SASL_PLAINTEXT"
    )
    config["sasl.mechanism"] = mechanism
    return config


class ClusterLogins:
    def __init__(self, config: dict[str, str], topic: str, timeout_s: float = LOGIN_TIMEOUT_S):
        """`config`: login_config's; `topic`: the one topic whose metadata a login asks
        for (the registry's, which exists: never the whole cluster's metadata)."""
        self._config = config
        self._topic = topic
        self._timeout_s = timeout_s
        self._clock = SystemClock()
        self._key = os.urandom(32)
        self._answers: OrderedDict[bytes, _Answer] = OrderedDict()
        self._per_user: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}
        self._threads = ThreadPoolExecutor(LOGINS_AT_ONCE, "registry-login")
        self.logins = 0  # logins made (a test and an operator read it)

    async def check(self, user: str, password: str) -> bool:
        """Does the cluster accept this user's password? False also when it could not be
        asked (logged, not cached)."""
        if not (_sent_as_given(user) and _sent_as_given(password)):
            return False
        digest = hmac.new(self._key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        known = self._cached(digest)
        if known is not None:
            return known
        lock = self._per_user.setdefault(user, asyncio.Lock())
        self._waiting[user] = self._waiting.get(user, 0) + 1
        try:
            async with lock:
                known = self._cached(digest)  # a login made while this one waited
                if known is not None:
                    return known
                loop = asyncio.get_running_loop()
                accepted = await loop.run_in_executor(self._threads, self._login, user, password)
        finally:
            self._waiting[user] -= 1
            if not self._waiting[user]:
                del self._waiting[user], self._per_user[user]
        if accepted is None:
            return False
        lasts_s = LOGIN_CACHE_S if accepted else REFUSAL_CACHE_S
        self._answers[digest] = _Answer(accepted, self._clock.monotonic_ms() + int(lasts_s * 1000))
        self._answers.move_to_end(digest)
        while len(self._answers) > CACHE_ENTRIES:
            self._answers.popitem(last=False)
        return accepted

    def _cached(self, digest: bytes) -> bool | None:
        answer = self._answers.get(digest)
        if answer is None:
            return None
        if answer.expires_ms <= self._clock.monotonic_ms():
            del self._answers[digest]
            return None
        return answer.accepted

    def _login(self, user: str, password: str) -> bool | None:
        """True: logged in; False: the cluster refused the login; None: no answer."""
        from confluent_kafka.admin import AdminClient

        self.logins += 1
        connection = Connection(self._config | {"sasl.username": user, "sasl.password": password})
        admin = AdminClient(connection.client_config())
        try:
            connection.metadata(admin, self._timeout_s, self._topic)
            return True
        except BrokerUnreachable as exc:
            if connection.refused:
                return False
            log.warning("cannot check %r's password: %s", user[:256], exc)
            return None
        finally:
            del admin

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
