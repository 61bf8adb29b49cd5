"""Security for the mirror's raw connections (cli/wire.py), from the same librdkafka
settings the command's admin clients use (client_properties.py maps Kafka's property
names to them): TLS with a CA file, an optional client certificate and hostname
verification; SASL PLAIN or SCRAM-SHA-256/512 as Kafka's clients log in (SaslHandshake
v1, then SaslAuthenticate v2 frames)."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import Any

from contextplane.security.scram_client import ScramClient, ScramError

SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MECHANISMS = ("PLAIN", *_SCRAM_HASHES)


class SecurityError(ValueError):
    """Settings the raw connection cannot use (the message names the setting)."""


class LoginRefused(Exception):
    """The broker refused the SASL login, or proved nothing back (the message says)."""


@dataclass(frozen=True)
class Security:
    protocol: str = "PLAINTEXT"
    mechanism: str = ""
    username: str = ""
    password: str = ""
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: str | None = None
    check_hostname: bool = True

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Security:
        """From librdkafka settings (client_properties.librdkafka_config's output)."""
        protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
        if protocol not in PROTOCOLS:
            raise SecurityError(f"security.protocol={protocol} is not one of {PROTOCOLS}")
        mechanism = str(config.get("sasl.mechanism", "GSSAPI")).upper()
        if protocol.startswith("SASL_") and mechanism not in MECHANISMS:
            raise SecurityError(
                f"sasl.mechanism={mechanism}: the mirror logs in with {', '.join(MECHANISMS)}"
            )
        return cls(
            protocol=protocol,
            mechanism=mechanism if protocol.startswith("SASL_") else "",
            username=str(config.get("sasl.username", "")),
            password=str(config.get("sasl.password", "")),
            ca_file=config.get("ssl.ca.location"),
            cert_file=config.get("ssl.certificate.location"),
            key_file=config.get("ssl.key.location"),
            key_password=config.get("ssl.key.password"),
            check_hostname=str(config.get("ssl.endpoint.identification.algorithm", "https"))
            .lower()
            .strip()
            != "none",
        )

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def wrap(self, sock: socket.socket, host: str) -> socket.socket:
        """`sock` with TLS when the protocol asks for it (ssl.SSLError or OSError when the
        handshake fails)."""
        if not self.tls:
            return sock
        context = ssl.create_default_context(cafile=self.ca_file)
        context.check_hostname = self.check_hostname
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file, self.key_password)
        return context.wrap_socket(sock, server_hostname=host)

    def login(self, connection: Any) -> None:
        """SASL login on a BrokerConnection, when the protocol asks for it."""
        if not self.mechanism:
            return
        handshake = connection.request(SASL_HANDSHAKE, 1, mechanism=self.mechanism)
        if handshake.error_code:
            raise LoginRefused(
                f"sasl.mechanism={self.mechanism} is not enabled there "
                f"(enabled: {', '.join(handshake.mechanisms)})"
            )
        if self.mechanism == "PLAIN":
            _authenticate(connection, f"\0{self.username}\0{self.password}".encode())
            return
        scram = ScramClient(_SCRAM_HASHES[self.mechanism], self.username, self.password)
        server_first = _authenticate(connection, scram.first())
        try:
            client_final = scram.final(server_first)
        except ScramError as exc:
            raise LoginRefused(str(exc)) from None
        if not scram.verify(_authenticate(connection, client_final)):
            raise LoginRefused("the broker's SCRAM signature does not verify")


def _authenticate(connection: Any, token: bytes) -> bytes:
    from contextplane.cli.wire import error_name

    response = connection.request(SASL_AUTHENTICATE, 2, auth_bytes=token)
    if response.error_code:
        detail = f" ({response.error_message})" if response.error_message else ""
        raise LoginRefused(f"authentication failed: {error_name(response.error_code)}{detail}")
    return bytes(response.auth_bytes)
