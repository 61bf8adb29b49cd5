"""The JSON Web Key Set that signs OAUTHBEARER tokens (`sasl.oauthbearer.jwks.endpoint.url`):
a `file://` path or an `http(s)://` URL, read with a bounded size (limits.JWKS_BYTES_MAX)
and, over HTTP, a bounded time, off the event loop.

The keys are cached and fetched again once `sasl.oauthbearer.jwks.endpoint.refresh.ms`
has passed (on the next authentication that needs them), and at once when a token names a
key id the set does not have (a provider rotating its keys), at most once per
limits.JWKS_REFETCH_MIN_INTERVAL_MS: a client inventing key ids cannot make the broker
hammer its identity provider. A fetch that fails keeps the keys it had (and says so in one
log line); concurrent authentications share one fetch. Only public signature keys are
kept: symmetric (`oct`) keys and keys whose `use` is not `sig` are left out, so a token
signed with HMAC can never be checked against a public key.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from contextplane import limits
from contextplane.clock import Clock

log = logging.getLogger(__name__)


class JwksError(Exception):
    """The key set could not be read or holds no usable key."""


@dataclass(frozen=True)
class VerificationKey:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None  # the key's own `alg`, when the set names one
    key: Any  # the cryptography public key


def _read_url(url: str) -> bytes:
    """The document at `url`, at most limits.JWKS_BYTES_MAX bytes (blocking: run in a
    thread)."""
    import urllib.parse
    import urllib.request  # with http.client and email: loaded only where a JWKS is read

    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme.lower() == "file":
        path = urllib.request.url2pathname(parsed.path)
        with open(path, "rb") as file:
            data = file.read(limits.JWKS_BYTES_MAX + 1)
    else:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        timeout = limits.JWKS_FETCH_TIMEOUT_MS / 1000
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            data = response.read(limits.JWKS_BYTES_MAX + 1)
    if len(data) > limits.JWKS_BYTES_MAX:
        raise JwksError(f"larger than {limits.JWKS_BYTES_MAX} bytes")
    return data


def parse_jwks(data: bytes) -> list[VerificationKey]:
    """The public signature keys of a JWKS document."""
    import jwt  # PyJWT and cryptography: ~0.1 s of every start, loaded only for OAUTHBEARER

    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise JwksError(f"not JSON: {exc}"[:300]) from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksError('not a JWKS: no "keys" array')
    keys: list[VerificationKey] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue  # symmetric or unknown key types are never used to verify
        if entry.get("use", "sig") != "sig":
            continue
        try:
            parsed = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            log.warning("JWKS key %r left out: %s", entry.get("kid"), exc)
            continue
        kid = entry.get("kid")
        keys.append(
            VerificationKey(
                kid if isinstance(kid, str) else None,
                entry["kty"],
                entry.get("crv") if isinstance(entry.get("crv"), str) else None,
                entry.get("alg") if isinstance(entry.get("alg"), str) else None,
                parsed.key,
            )
        )
    if not keys:
        raise JwksError("no usable public signature key (RSA, EC or OKP)")
    return keys


class Jwks:
    """The cached key set of one `sasl.oauthbearer.jwks.endpoint.url`."""

    def __init__(self, url: str, refresh_ms: int, clock: Clock) -> None:
        self.url = url
        self._refresh_ms = refresh_ms
        self._clock = clock
        self._keys: list[VerificationKey] = []
        self._fetched_ms: int | None = None  # monotonic, of the last successful fetch
        self._attempted_ms: int | None = None  # monotonic, of the last attempt
        self._lock = asyncio.Lock()
        self.fetches = 0  # attempts, for tests and diagnostics

    async def load(self) -> None:
        """The first fetch, at start: raises JwksError when the set cannot be used."""
        async with self._lock:
            await self._fetch(raise_errors=True)

    async def keys(self, kid: str | None) -> list[VerificationKey]:
        """The current keys; fetched again first when they are due for a refresh, or when
        `kid` is not among them and the last attempt is long enough ago."""
        if self._due(kid):
            async with self._lock:
                if self._due(kid):  # another authentication may have fetched meanwhile
                    await self._fetch(raise_errors=False)
        return self._keys

    def _due(self, kid: str | None) -> bool:
        now = self._clock.monotonic_ms()
        if self._attempted_ms is None:
            return True
        since_attempt = now - self._attempted_ms
        if since_attempt < limits.JWKS_REFETCH_MIN_INTERVAL_MS:
            return False
        if self._fetched_ms is None or now - self._fetched_ms >= self._refresh_ms:
            return True
        return kid is not None and all(key.kid != kid for key in self._keys)

    async def _fetch(self, raise_errors: bool) -> None:
        self._attempted_ms = self._clock.monotonic_ms()
        self.fetches += 1
        try:
            data = await asyncio.to_thread(_read_url, self.url)
            keys = parse_jwks(data)
        except (OSError, JwksError, ValueError) as exc:
            message = f"JWKS {self.url} could not be read: {exc}"
            if raise_errors:
                raise JwksError(message) from None
            log.warning("%s (keeping the %d keys it had)", message, len(self._keys))
            return
        self._keys = keys
        self._fetched_ms = self._clock.monotonic_ms()
