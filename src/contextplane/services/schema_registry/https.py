"""HTTPS on the registry's port: the `contextplane.registry.ssl.*` settings turned into a
server SSLContext by the broker's own TLS code (security/tls.py), so the registry takes
the PEM files a TLS listener takes (the private key then the chain; JKS and PKCS12
refused with the same conversion hint) and only TLS 1.2 and 1.3.

Confluent's names, under the prefix of the registry's other settings: its
`ssl.keystore.location` is a Java keystore, so the name here says it is the broker's PEM
keystore; `ssl.client.authentication` takes Confluent's NONE, REQUESTED, REQUIRED. A
keystore turns HTTPS on (Confluent's `listeners=https://...`: the address stays
`--host`/`--port` or `--registry-port`).
"""

from __future__ import annotations

import ssl

from contextplane.security.tls import TlsConfig, TlsConfigError, build_context
from contextplane.settings import Settings

PREFIX = "contextplane.registry."
CLIENT_AUTHENTICATION = ("NONE", "REQUESTED", "REQUIRED")


def registry_tls(settings: Settings) -> ssl.SSLContext | None:
    """The registry's server context (None: plain HTTP); TlsConfigError names the setting
    that cannot be used."""
    if not settings.registry_ssl_keystore_location.strip():
        return None
    client_authentication = settings.registry_ssl_client_authentication.strip().upper() or "NONE"
    if client_authentication not in CLIENT_AUTHENTICATION:
        raise TlsConfigError(
            f"{PREFIX}ssl.client.authentication={settings.registry_ssl_client_authentication}:"
            f" one of {', '.join(CLIENT_AUTHENTICATION)}"
        )
    config = TlsConfig(
        listener="schema registry",
        ssl_keystore_type="PEM",
        ssl_keystore_location=settings.registry_ssl_keystore_location.strip(),
        ssl_keystore_password="",
        ssl_key_password=settings.registry_ssl_key_password,
        ssl_keystore_certificate_chain="",
        ssl_keystore_key="",
        ssl_truststore_type="PEM",
        ssl_truststore_location=settings.registry_ssl_truststore_location.strip(),
        ssl_truststore_password="",
        ssl_truststore_certificates="",
        ssl_enabled_protocols="TLSv1.2,TLSv1.3",
        ssl_protocol="TLS",
        ssl_client_auth=client_authentication.lower(),
        ssl_principal_mapping_rules="DEFAULT",
        prefix=PREFIX,
    )
    return build_context(config)
