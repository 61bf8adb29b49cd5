"""SASL/PLAIN, the server side (RFC 4616), as Kafka's PlainSaslServer: one message,
`[authzid] NUL user NUL password`, checked against the `user_<name>="<password>"`
entries of the listener's PlainLoginModule JAAS configuration. The authorization id must
be empty or the user. Passwords are compared in constant time, and an unknown user costs
the same comparison as a known one."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from contextplane.security.sasl_errors import SaslAuthenticationError

_UNKNOWN_USER_PASSWORD = b"\x00" * 32  # compared against when the user does not exist


def _tokens(text: str) -> list[str]:
    """Kafka's extractTokens: at most four NUL-separated pieces; exactly three expected."""
    pieces = text.split("\x00", 3)
    if len(pieces) != 3:
        raise SaslAuthenticationError(
            f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(pieces)}"
        )
    return pieces


class PlainServer:
    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {user: password.encode() for user, password in users.items()}
        self.username: str | None = None
        self.complete = False
        self.credential_expires_ms: int | None = None  # the password does not expire

    def evaluate(self, token: bytes) -> bytes:
        if self.complete:
            raise SaslAuthenticationError("PLAIN exchange already complete")
        authzid, user, password = _tokens(token.decode("utf-8", errors="replace"))
        if not user:
            raise SaslAuthenticationError("Authentication failed: username not specified")
        if not password:
            raise SaslAuthenticationError("Authentication failed: password not specified")
        expected = self._users.get(user)
        matches = hmac.compare_digest(
            password.encode(), expected if expected is not None else _UNKNOWN_USER_PASSWORD
        )
        if expected is None or not matches:
            raise SaslAuthenticationError("Authentication failed: Invalid username or password")
        if authzid and authzid != user:
            raise SaslAuthenticationError(
                "Authentication failed: Client requested an authorization id that is "
                "different from username"
            )
        self.username = user
        self.complete = True
        return b""
