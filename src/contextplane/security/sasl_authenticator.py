"""The broker's SASL authenticator: which mechanisms each SASL listener offers, and one
exchange (PLAIN or SCRAM) per connection that is authenticating.

`SaslSession` is what a connection carries once it has chosen a mechanism: the exchange
in progress, the principal it authenticated as, and when its session ends (KIP-368
re-authentication; None: never). The handlers (broker/handlers/sasl.py) drive it and
report verdicts to the connection's state machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from contextplane.security import scram
from contextplane.security.principal import Principal
from contextplane.security.sasl_plain import PlainServer
from contextplane.security.sasl_settings import SaslListenerConfig
from contextplane.security.scram_credentials import ScramCredentials


class Exchange(Protocol):
    """One mechanism's server side: `evaluate` each client token, answer a challenge;
    raises SaslAuthenticationError or SaslInvalid on failure."""

    username: str | None
    complete: bool

    def evaluate(self, token: bytes) -> bytes: ...


@dataclass(slots=True)
class SaslSession:
    mechanism: str
    exchange: Exchange | None  # None once the exchange is over
    principal: Principal | None = None  # set once authenticated
    expires_ms: int | None = None  # monotonic; None: the session never expires
    reauthenticating: bool = False


class SaslAuthenticator:
    def __init__(
        self, listeners: Mapping[str, SaslListenerConfig], credentials: ScramCredentials
    ) -> None:
        self._listeners = {name.upper(): config for name, config in listeners.items()}
        self.credentials = credentials

    def mechanisms(self, listener: str) -> tuple[str, ...]:
        config = self._listeners.get(listener.upper())
        return config.mechanisms if config is not None else ()

    def start(self, listener: str, mechanism: str) -> Exchange:
        """A new exchange of an enabled mechanism of `listener`."""
        config = self._listeners[listener.upper()]
        assert mechanism in config.mechanisms, mechanism
        if mechanism == "PLAIN":
            return PlainServer(config.plain_users)
        return scram.ScramServer(scram.MECHANISMS[mechanism], self.credentials.lookup)
