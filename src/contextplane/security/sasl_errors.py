"""How a SASL mechanism fails, in Kafka's two kinds."""

from __future__ import annotations


class SaslAuthenticationError(Exception):
    """Authentication failed; the message is sent to the client (Kafka's
    SaslAuthenticationException). `reason`, when given, is what the log and the audit
    record say instead (OAUTHBEARER tells the client only `invalid_token`)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class SaslInvalid(Exception):
    """Authentication failed; the message is logged, never sent: the client gets Kafka's
    generic message (a SaslException's text could say whether a user exists)."""


def generic_failure(mechanism: str, reauthenticating: bool = False) -> str:
    """Kafka's SaslServerAuthenticator message for a SaslException."""
    what = "re-authentication" if reauthenticating else "authentication"
    return (
        f"Authentication failed during {what} due to invalid credentials with SASL "
        f"mechanism {mechanism}"
    )
