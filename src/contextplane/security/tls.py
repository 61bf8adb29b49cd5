"""TLS for SSL and SASL_SSL listeners: Kafka's ssl.* settings turned into an SSLContext,
rebuilt when a keystore or truststore file changes.

Settings are Kafka's: the global `ssl.*` ones, each overridden for one listener by
`listener.name.<listener>.ssl.*`. Keystores and truststores are PEM (a file with the
private key and certificate chain, or the inline `ssl.keystore.key` /
`ssl.keystore.certificate.chain` / `ssl.truststore.certificates`); JKS and PKCS12 are
refused with a message saying how to convert them. Only TLS 1.2 and 1.3.

`ReloadingContext.current(now)` is asked on every accepted connection: at most once a
second it compares the files' (inode, size, mtime) with those it was built from and
rebuilds on a change, so a renewed certificate is used for new connections without a
restart. A file that cannot be read or used (half written, wrong password) keeps the
previous context, with one error logged per change.
"""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from contextplane.security.ssl_principal import SslPrincipalMapper
from contextplane.security.tls_alert import AlertKeepingSSLObject
from contextplane.settings import Settings

log = logging.getLogger(__name__)

# Kafka's ssl.* settings read here -> the Settings field of each.
SSL_SETTINGS = {
    "ssl.keystore.type": "ssl_keystore_type",
    "ssl.keystore.location": "ssl_keystore_location",
    "ssl.keystore.password": "ssl_keystore_password",
    "ssl.key.password": "ssl_key_password",
    "ssl.keystore.certificate.chain": "ssl_keystore_certificate_chain",
    "ssl.keystore.key": "ssl_keystore_key",
    "ssl.truststore.type": "ssl_truststore_type",
    "ssl.truststore.location": "ssl_truststore_location",
    "ssl.truststore.password": "ssl_truststore_password",
    "ssl.truststore.certificates": "ssl_truststore_certificates",
    "ssl.enabled.protocols": "ssl_enabled_protocols",
    "ssl.protocol": "ssl_protocol",
    "ssl.client.auth": "ssl_client_auth",
    "ssl.principal.mapping.rules": "ssl_principal_mapping_rules",
}
_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_REFUSED_VERSIONS = ("TLSv1.1", "TLSv1", "SSLv3", "SSLv2", "SSLv2Hello")
_CLIENT_AUTH = {
    "none": ssl.CERT_NONE,
    "requested": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
# Files are compared with what the context was built from at most this often.
RELOAD_CHECK_INTERVAL_S = 1.0
_JKS_MAGIC = b"\xfe\xed\xfe\xed"


class TlsConfigError(ValueError):
    """A listener's TLS settings cannot give a context; the message names the setting."""


@dataclass(frozen=True)
class TlsConfig:
    """One listener's TLS settings, overrides applied (`prefix`: how its messages name
    them: `ssl.` or `listener.name.<listener>.ssl.`)."""

    listener: str
    ssl_keystore_type: str
    ssl_keystore_location: str
    ssl_keystore_password: str
    ssl_key_password: str
    ssl_keystore_certificate_chain: str
    ssl_keystore_key: str
    ssl_truststore_type: str
    ssl_truststore_location: str
    ssl_truststore_password: str
    ssl_truststore_certificates: str
    ssl_enabled_protocols: str
    ssl_protocol: str
    ssl_client_auth: str
    ssl_principal_mapping_rules: str
    overridden: frozenset[str] = frozenset()
    # Set: every setting is named with it (the schema registry's own `contextplane.registry.`).
    prefix: str = ""

    def name(self, setting: str) -> str:
        """How a message names a setting: with the listener prefix when overridden."""
        if self.prefix:
            return self.prefix + setting
        if setting in self.overridden:
            return f"listener.name.{self.listener.lower()}.{setting}"
        return setting

    def files(self) -> list[str]:
        return [p for p in (self.ssl_keystore_location, self.ssl_truststore_location) if p]


def tls_config(settings: Settings, listener: str) -> TlsConfig:
    """The TLS settings of one listener: the global ssl.* ones, overridden by
    listener.name.<listener>.ssl.*."""
    overrides = settings.listener_ssl.get(listener, {})
    values = {attr: getattr(settings, attr) for attr in SSL_SETTINGS.values()}
    for name, value in overrides.items():
        values[SSL_SETTINGS[name]] = value
    return TlsConfig(listener=listener, overridden=frozenset(overrides), **values)


def _protocols(config: TlsConfig) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    setting = config.name("ssl.enabled.protocols")
    wanted = [p.strip() for p in config.ssl_enabled_protocols.split(",") if p.strip()]
    if not wanted:
        raise TlsConfigError(f"{setting}: empty; TLSv1.2 and TLSv1.3 are supported")
    for protocol in wanted:
        if protocol in _REFUSED_VERSIONS:
            raise TlsConfigError(
                f"{setting}: {protocol} is refused: only TLSv1.2 and TLSv1.3 are supported"
            )
        if protocol not in _VERSIONS:
            raise TlsConfigError(
                f"{setting}: unknown protocol {protocol!r} (TLSv1.2 and TLSv1.3 are supported)"
            )
    versions = sorted(_VERSIONS[p] for p in wanted)
    if config.ssl_protocol.strip() not in ("TLSv1.3", "TLSv1.2", "TLS"):
        raise TlsConfigError(
            f"{config.name('ssl.protocol')}: {config.ssl_protocol!r} is not supported "
            "(TLSv1.3, TLSv1.2 or TLS)"
        )
    return versions[0], versions[-1]


def _check_type(config: TlsConfig, setting: str, kind: str) -> None:
    if kind.strip().upper() == "PEM":
        return
    store = "keystore" if "keystore" in setting else "truststore"
    raise TlsConfigError(
        f"{config.name(setting)}={kind}: only PEM {store}s are supported; convert a JKS or "
        "PKCS12 store to PEM (keytool -importkeystore -deststoretype PKCS12, then "
        "openssl pkcs12 -nodes) and set it to PEM"
    )


def _read_pem(config: TlsConfig, setting: str, path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{config.name(setting)}={path}: {exc.strerror or exc}") from None
    if data.startswith(_JKS_MAGIC):
        raise TlsConfigError(
            f"{config.name(setting)}={path}: a JKS keystore; only PEM is supported"
        )
    if b"-----BEGIN" not in data:
        raise TlsConfigError(f"{config.name(setting)}={path}: not a PEM file")
    return data


def _load_keystore(context: ssl.SSLContext, config: TlsConfig) -> None:
    _check_type(config, "ssl.keystore.type", config.ssl_keystore_type)
    # Never None: OpenSSL would prompt for an encrypted key's password on the terminal.
    password = config.ssl_key_password
    if config.ssl_keystore_location:
        if config.ssl_keystore_certificate_chain or config.ssl_keystore_key:
            raise TlsConfigError(
                f"{config.name('ssl.keystore.location')} and an inline keystore "
                f"({config.name('ssl.keystore.key')}) are both set: give one"
            )
        if config.ssl_keystore_password:
            # Kafka: a PEM keystore file has no store password; the key's is ssl.key.password.
            raise TlsConfigError(
                f"{config.name('ssl.keystore.password')} is not used with a PEM keystore: "
                f"set the key's password as {config.name('ssl.key.password')}"
            )
        pem = _read_pem(config, "ssl.keystore.location", config.ssl_keystore_location)
        where = config.name("ssl.keystore.location")
    elif config.ssl_keystore_certificate_chain and config.ssl_keystore_key:
        pem = (config.ssl_keystore_key + "\n" + config.ssl_keystore_certificate_chain).encode()
        where = config.name("ssl.keystore.key")
    else:
        raise TlsConfigError(
            f"listener {config.listener} uses TLS but has no keystore: set "
            f"{config.name('ssl.keystore.location')} (a PEM file with the private key and "
            f"certificate chain), or {config.name('ssl.keystore.key')} and "
            f"{config.name('ssl.keystore.certificate.chain')}"
        )
    if b"PRIVATE KEY-----" not in pem:
        # OpenSSL would blame the password; the file simply has no key.
        holder = (
            f"{where}={config.ssl_keystore_location}" if config.ssl_keystore_location else where
        )
        raise TlsConfigError(
            f"{holder}: holds no private key (a PEM keystore is the private key, then the "
            "certificate chain)"
        )
    # load_cert_chain reads files only: the PEM goes through a private temporary file.
    import tempfile  # here: ~30 ms (with shutil) of every start otherwise

    with tempfile.TemporaryDirectory(prefix="contextplane-tls-") as private:
        path = Path(private) / "keystore.pem"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
        try:
            context.load_cert_chain(path, password=lambda: password)
        except ssl.SSLError as exc:
            hint = (
                " (the key is not the certificate's)"
                if "KEY_VALUES_MISMATCH" in str(exc)
                else f" (wrong or missing {config.name('ssl.key.password')}?)"
            )
            raise TlsConfigError(
                f"{where}: cannot use the key and certificate: {exc}{hint}"
            ) from None


def _load_truststore(
    context: ssl.SSLContext, config: TlsConfig, purpose: ssl.Purpose = ssl.Purpose.CLIENT_AUTH
) -> None:
    _check_type(config, "ssl.truststore.type", config.ssl_truststore_type)
    try:
        if config.ssl_truststore_location:
            pem = _read_pem(config, "ssl.truststore.location", config.ssl_truststore_location)
            context.load_verify_locations(cadata=pem.decode("ascii", "replace"))
        elif config.ssl_truststore_certificates:
            context.load_verify_locations(cadata=config.ssl_truststore_certificates)
        elif context.verify_mode != ssl.CERT_NONE:
            context.load_default_certs(purpose)  # as the JVM's cacerts
    except ssl.SSLError as exc:
        setting = (
            "ssl.truststore.location"
            if config.ssl_truststore_location
            else "ssl.truststore.certificates"
        )
        raise TlsConfigError(f"{config.name(setting)}: no usable certificate: {exc}") from None


def build_context(config: TlsConfig) -> ssl.SSLContext:
    """A server SSLContext from one listener's settings; TlsConfigError if they cannot
    give one."""
    low, high = _protocols(config)
    client_auth = config.ssl_client_auth.strip().lower()
    if client_auth not in _CLIENT_AUTH:
        raise TlsConfigError(
            f"{config.name('ssl.client.auth')}={config.ssl_client_auth}: "
            "one of required, requested, none"
        )
    try:
        SslPrincipalMapper(config.ssl_principal_mapping_rules)
    except ValueError as exc:
        raise TlsConfigError(f"{config.name('ssl.principal.mapping.rules')}: {exc}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = low
    context.maximum_version = high
    context.verify_mode = _CLIENT_AUTH[client_auth]
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.sslobject_class = AlertKeepingSSLObject  # a refusal's alert reaches the client
    _load_keystore(context, config)
    _load_truststore(context, config)
    return context


def build_client_context(config: TlsConfig) -> ssl.SSLContext:
    """A client SSLContext from one listener's settings, for this broker's calls to the
    same listener on another broker: it presents its own keystore (so a peer that asks
    for a certificate sees this broker's) and verifies the peer's certificate and host
    name against the listener's truststore. TlsConfigError names a setting it refuses."""
    low, high = _protocols(config)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the peer and its name
    context.minimum_version = low
    context.maximum_version = high
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    _load_keystore(context, config)
    _load_truststore(context, config, ssl.Purpose.SERVER_AUTH)
    return context


def _signature(paths: list[str]) -> tuple[tuple[int, int, int] | None, ...]:
    found: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            found.append(None)
            continue
        found.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(found)


class ReloadingContext:
    """A listener's SSLContext, rebuilt when one of its files changes."""

    def __init__(self, config: TlsConfig) -> None:
        self.config = config
        self._files = config.files()
        self._signature = _signature(self._files)
        self._context = build_context(config)  # first: it names a setting it refuses
        self.mapper = SslPrincipalMapper(config.ssl_principal_mapping_rules)
        self._checked_at: float | None = None
        self._failed_signature: tuple[tuple[int, int, int] | None, ...] | None = None
        self.reloads = 0

    def current(self, now: float) -> ssl.SSLContext:
        """The context for a new connection; `now` in seconds (the loop's clock)."""
        if self._files and (
            self._checked_at is None or now - self._checked_at >= RELOAD_CHECK_INTERVAL_S
        ):
            self._checked_at = now
            signature = _signature(self._files)
            if signature != self._signature and signature != self._failed_signature:
                self._reload(signature)
        return self._context

    def _reload(self, signature: tuple[tuple[int, int, int] | None, ...]) -> None:
        try:
            context = build_context(self.config)
        except TlsConfigError as exc:
            self._failed_signature = signature
            log.error(
                "listener %s: the changed TLS files cannot be used, keeping the previous ones: %s",
                self.config.listener,
                exc,
            )
            return
        self._context = context
        self._signature = signature
        self._failed_signature = None
        self.reloads += 1
        log.info("listener %s: TLS keystore or truststore reloaded", self.config.listener)
