"""The broker's SASL authenticator: which mechanisms each SASL listener offers, and one
exchange (PLAIN, SCRAM or OAUTHBEARER) per connection that is authenticating.

`SaslSession` is what a connection carries once it has chosen a mechanism: the exchange
in progress, the principal it authenticated as, and when its session ends (KIP-368
re-authentication; None: never). The handlers (broker/handlers/sasl.py) drive it and
report verdicts to the connection's state machine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Protocol

from contextplane.clock import Clock
from contextplane.security import scram
from contextplane.security.jwks import Jwks
from contextplane.security.jwt_validator import JwtValidator
from contextplane.security.oauthbearer import OAuthBearerServer
from contextplane.security.principal import Principal
from contextplane.security.sasl_plain import PlainServer
from contextplane.security.sasl_settings import SaslListenerConfig
from contextplane.security.scram_credentials import ScramCredentials


class Exchange(Protocol):
    """One mechanism's server side: `evaluate` each client token, answer a challenge
    (OAUTHBEARER's may have to fetch keys, so it is awaited); raises
    SaslAuthenticationError or SaslInvalid on failure."""

    username: str | None
    complete: bool
    # Wall-clock epoch ms at which the credential expires (an OAUTHBEARER token's exp);
    # None: it does not.
    credential_expires_ms: int | None

    def evaluate(self, token: bytes) -> bytes | Awaitable[bytes]: ...


@dataclass(slots=True)
class SaslSession:
    mechanism: str
    exchange: Exchange | None  # None once the exchange is over
    principal: Principal | None = None  # set once authenticated
    expires_ms: int | None = None  # monotonic; None: the session never expires
    reauthenticating: bool = False


def session_lifetime_ms(
    max_reauth_ms: int, credential_expires_ms: int | None, now_ms: int
) -> int | None:
    """As Kafka's SaslServerAuthenticator: connections.max.reauth.ms (0: none), capped
    by the credential's remaining lifetime; None when neither limits the session."""
    if credential_expires_ms is None:
        return max_reauth_ms if max_reauth_ms > 0 else None
    remaining = max(0, credential_expires_ms - now_ms)
    return min(remaining, max_reauth_ms) if max_reauth_ms > 0 else remaining


class SaslAuthenticator:
    def __init__(
        self,
        listeners: Mapping[str, SaslListenerConfig],
        credentials: ScramCredentials,
        clock: Clock,
    ) -> None:
        self._listeners = {name.upper(): config for name, config in listeners.items()}
        self.credentials = credentials
        # One key set per JWKS URL and refresh interval, shared by the listeners using it.
        self.key_sets: dict[tuple[str, int], Jwks] = {}
        self._validators: dict[str, JwtValidator] = {}
        for name, config in self._listeners.items():
            if config.oauth is None:
                continue
            where = (config.oauth.jwks_url, config.oauth.jwks_refresh_ms)
            if where not in self.key_sets:
                self.key_sets[where] = Jwks(*where, clock)
            self._validators[name] = JwtValidator(config.oauth, self.key_sets[where], clock)

    async def load_keys(self) -> None:
        """Fetch each JWKS once at start: raises JwksError when one cannot be used."""
        for key_set in self.key_sets.values():
            await key_set.load()

    def token_validator(self) -> JwtValidator | None:
        """The first OAUTHBEARER listener's validation (the schema registry's bearer
        tokens are validated as that listener's are); None without one."""
        return next(iter(self._validators.values()), None)

    def mechanisms(self, listener: str) -> tuple[str, ...]:
        config = self._listeners.get(listener.upper())
        return config.mechanisms if config is not None else ()

    def start(self, listener: str, mechanism: str) -> Exchange:
        """A new exchange of an enabled mechanism of `listener`."""
        config = self._listeners[listener.upper()]
        assert mechanism in config.mechanisms, mechanism
        if mechanism == "PLAIN":
            return PlainServer(config.plain_users)
        if mechanism == "OAUTHBEARER":
            return OAuthBearerServer(self._validators[listener.upper()])
        return scram.ScramServer(scram.MECHANISMS[mechanism], self.credentials.lookup)
