"""SCRAM-SHA-256 and SCRAM-SHA-512, the client side (RFC 5802), as Kafka's clients log
in: `contextplane mirror`'s raw connections, and tests that speak SASL byte by byte.

The server's first message is bounded before any work is done for it: its nonce must
extend ours (else a replayed or forged exchange), and its iteration count is at most
ITERATIONS_MAX (Kafka's own limit), so a hostile broker cannot make the client hash for
minutes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

ITERATIONS_MAX = 16_384  # Kafka's ScramMechanism maximum


class ScramError(ValueError):
    """The server's message is not what SCRAM allows (the message says why)."""


def _saslname(user: str) -> str:
    """RFC 5802's escaping of a user name: `=` and `,` would end the field."""
    return user.replace("=", "=3D").replace(",", "=2C")


class ScramClient:
    def __init__(self, hash_name: str, user: str, password: str, nonce: str | None = None):
        self.hash_name = hash_name
        self.user = user
        self.password = password
        self.nonce = nonce or secrets.token_hex(12)
        self.first_bare = f"n={_saslname(user)},r={self.nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        return f"n,,{self.first_bare}".encode()

    def final(self, server_first: bytes, password: str | None = None) -> bytes:
        """The client-final message answering `server_first` (`password` overrides the
        one given, to send a wrong proof); ScramError for a server message SCRAM forbids."""
        try:
            text = server_first.decode()
            fields = dict(item.split("=", 1) for item in text.split(","))
            salt = base64.b64decode(fields["s"], validate=True)
            iterations = int(fields["i"])
            nonce = fields["r"]
        except (UnicodeDecodeError, ValueError, KeyError, binascii.Error):
            raise ScramError("the server's first SCRAM message is malformed") from None
        if not nonce.startswith(self.nonce) or len(nonce) == len(self.nonce):
            raise ScramError("the server's SCRAM nonce does not extend the client's")
        if not 1 <= iterations <= ITERATIONS_MAX:
            raise ScramError(f"the server asks for {iterations} SCRAM iterations")
        salted = hashlib.pbkdf2_hmac(
            self.hash_name, (password or self.password).encode(), salt, iterations
        )
        client_key = hmac.new(salted, b"Client Key", self.hash_name).digest()
        stored_key = hashlib.new(self.hash_name, client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self.first_bare},{text},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, self.hash_name).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.new(salted, b"Server Key", self.hash_name).digest()
        self.server_signature = hmac.new(server_key, auth_message, self.hash_name).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> bool:
        """Whether the server proved it knows the credential (compared in constant time)."""
        return hmac.compare_digest(server_final, b"v=" + base64.b64encode(self.server_signature))
