"""SASL/OAUTHBEARER, the server side (RFC 7628), as Kafka's OAuthBearerSaslServer.

The client's first message is
`n,[a=<authzid>],\\x01auth=Bearer <token>\\x01[key=value\\x01...]\\x01`,
parsed with Kafka's OAuthBearerClientInitialResponse grammar (a message that does not
match it fails with Kafka's generic message). The token is validated (jwt_validator.py).
A token that is refused is answered, as Kafka answers it, with the challenge
`{"status":"invalid_token"}`; the client acknowledges with `\\x01` and the exchange then
fails with SASL_AUTHENTICATION_FAILED carrying that JSON as its message (the reason, which
the client is not told, is logged and audited). Any other message after that challenge
fails the same way (Kafka would take it as a new first message: a second token without
the failed-authentication delay). An authorization id other than the token's principal
is refused; SASL extensions are accepted and unused, as Kafka's validator accepts them.

`credential_expires_ms` (the token's `exp`) caps the session's lifetime (KIP-368).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from contextplane.security.jwt_validator import JwtValidator, TokenInvalid
from contextplane.security.sasl_errors import SaslAuthenticationError, SaslInvalid

SEPARATOR = "\x01"
INVALID_TOKEN = '{"status":"invalid_token"}'
# Kafka's OAuthBearerClientInitialResponse patterns (ASCII classes, as Java's).
_SASLNAME = r"(?:[\x01-\x2b\x2d-\x3c\x3e-\x7f]|=2C|=3D)+"
_KVPAIRS = r"(?:[A-Za-z]+=[\x21-\x7e \t\r\n]+\x01)*"
_FIRST_MESSAGE = re.compile(
    rf"n,(?:a=(?P<authzid>{_SASLNAME}))?,\x01(?P<kvpairs>{_KVPAIRS})\x01", re.ASCII
)
_AUTH = re.compile(r"(?P<scheme>\w+) +(?P<token>[-_.a-zA-Z0-9]+)", re.ASCII)
_EXTENSION_KEY = re.compile(r"[a-zA-Z]+", re.ASCII)


@dataclass(frozen=True)
class ClientFirstMessage:
    token: str
    authorization_id: str = ""
    extensions: dict[str, str] = field(default_factory=dict)


def parse_client_first_message(message: bytes) -> ClientFirstMessage:
    """The token, authorization id and extensions of a client's first message; raises
    SaslInvalid (Kafka's SaslException) when it does not follow the grammar."""
    text = message.decode("utf-8", errors="replace")
    match = _FIRST_MESSAGE.fullmatch(text)
    if match is None:
        raise SaslInvalid("Invalid OAUTHBEARER client first message")
    properties: dict[str, str] = {}
    for pair in filter(None, match["kvpairs"].split(SEPARATOR)):
        key, _, value = pair.partition("=")
        properties[key] = value
    auth = properties.pop("auth", None)
    if auth is None:
        raise SaslInvalid("Invalid OAUTHBEARER client first message: 'auth' not specified")
    for key in properties:
        if not _EXTENSION_KEY.fullmatch(key):
            raise SaslInvalid(f"Invalid OAUTHBEARER extension key {key!r}")
    auth_match = _AUTH.fullmatch(auth)
    if auth_match is None:
        raise SaslInvalid("Invalid OAUTHBEARER client first message: invalid 'auth' format")
    if auth_match["scheme"].lower() != "bearer":
        raise SaslInvalid(
            f"Invalid scheme in OAUTHBEARER client first message: {auth_match['scheme']}"
        )
    return ClientFirstMessage(auth_match["token"], match["authzid"] or "", properties)


class OAuthBearerServer:
    def __init__(self, validator: JwtValidator) -> None:
        self._validator = validator
        self.username: str | None = None
        self.complete = False
        self.credential_expires_ms: int | None = None
        self._refused: str | None = None  # why the token was refused, once it was

    async def evaluate(self, token: bytes) -> bytes:
        if self.complete:
            raise SaslAuthenticationError("OAUTHBEARER exchange already complete")
        if self._refused is not None:
            # The client's \x01 after our error challenge (or anything else): the end.
            raise SaslAuthenticationError(INVALID_TOKEN, reason=self._refused)
        first = parse_client_first_message(token)
        try:
            valid = await self._validator.validate(first.token)
        except TokenInvalid as exc:
            self._refused = f"invalid token: {exc}"
            return INVALID_TOKEN.encode()
        if first.authorization_id and first.authorization_id != valid.principal_name:
            raise SaslAuthenticationError(
                f"Authentication failed: Client requested an authorization id "
                f"({first.authorization_id}) that is different from the token's principal "
                f"name ({valid.principal_name})"
            )
        self.username = valid.principal_name
        self.credential_expires_ms = valid.expires_ms
        self.complete = True
        return b""
