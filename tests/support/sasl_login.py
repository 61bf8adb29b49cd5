"""SASL login for a RawClient: SaslHandshake then SaslAuthenticate, as Kafka's clients do
it (KIP-152 framing), with PLAIN or SCRAM-SHA-256/512."""

from __future__ import annotations

from tests.support.rawclient import RawClient
from tests.support.scram_client import ScramClient

SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
_SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


class SaslLoginFailed(Exception):
    """The broker refused the handshake or the credentials: (error code, message)."""

    def __init__(self, code: int, message: str | None) -> None:
        super().__init__(f"SASL login failed: error {code}: {message}")
        self.code = code
        self.message = message


def login(client: RawClient, mechanism: str, user: str, password: str) -> RawClient:
    """Authenticate `client`'s connection as `user`; raises SaslLoginFailed when refused."""
    handshake = client.request(SASL_HANDSHAKE, 1, mechanism=mechanism)
    if handshake.error_code:
        raise SaslLoginFailed(int(handshake.error_code), f"enabled: {handshake.mechanisms}")
    if mechanism == "PLAIN":
        _authenticate(client, b"\0" + user.encode() + b"\0" + password.encode())
        return client
    scram = ScramClient(_SCRAM_HASHES[mechanism], user, password)
    server_first = _authenticate(client, scram.first())
    server_final = _authenticate(client, scram.final(server_first))
    if not scram.verify(server_final):
        raise SaslLoginFailed(-1, "the broker's SCRAM signature does not verify")
    return client


def _authenticate(client: RawClient, token: bytes) -> bytes:
    response = client.request(SASL_AUTHENTICATE, 2, auth_bytes=token)
    if response.error_code:
        raise SaslLoginFailed(int(response.error_code), response.error_message)
    return bytes(response.auth_bytes)
