"""TLS settings as Kafka names them, read into a listener's SSLContext: what is refused
(old protocols, JKS and PKCS12, a missing keystore, a wrong key password) and per-listener
overrides (`listener.name.<listener>.ssl.*`)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from contextplane.security.tls import (
    SSL_SETTINGS,
    ReloadingContext,
    TlsConfigError,
    build_context,
    tls_config,
)
from contextplane.settings import Settings, SettingsError, load_settings
from contextplane.settings_table import SETTINGS
from tests.support.tls import TestCa


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("stores")
    ca = TestCa()
    encrypted = ca.issue("broker", server=True, key_password="s3cret")
    return {
        "ca": ca.write(where / "ca.pem"),
        "keystore": ca.issue("broker", server=True).write(where / "broker.pem"),
        "encrypted": encrypted.write(where / "encrypted.pem"),
        "jks": _write(where / "broker.jks", b"\xfe\xed\xfe\xed\x00\x00\x00\x02"),
    }


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _settings(**given: str) -> Settings:
    return load_settings(environ={}, overrides={"listeners": "SSL://127.0.0.1:0", **given})


def _context(settings: Settings, listener: str = "SSL") -> ssl.SSLContext:
    return build_context(tls_config(settings, listener))


def test_every_kafka_ssl_setting_read_is_a_setting() -> None:
    assert set(SSL_SETTINGS) == {s.name for s in SETTINGS if s.name.startswith("ssl.")}


def test_a_pem_keystore_gives_tls_1_2_and_1_3_only(stores: dict[str, Path]) -> None:
    context = _context(_settings(**{"ssl.keystore.location": str(stores["keystore"])}))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.maximum_version == ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_NONE  # ssl.client.auth=none, Kafka's default
    only_13 = _settings(
        **{"ssl.keystore.location": str(stores["keystore"]), "ssl.enabled.protocols": "TLSv1.3"}
    )
    assert _context(only_13).minimum_version == ssl.TLSVersion.TLSv1_3


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"ssl.enabled.protocols": "TLSv1.2,TLSv1.1"}, "TLSv1.1 is refused"),
        ({"ssl.enabled.protocols": "TLSv1"}, "TLSv1 is refused"),
        ({"ssl.keystore.type": "JKS"}, "only PEM keystores are supported"),
        ({"ssl.keystore.type": "PKCS12"}, "convert a JKS or PKCS12 store to PEM"),
        ({"ssl.truststore.type": "JKS"}, "only PEM truststores"),
        ({"ssl.principal.mapping.rules": "RULE:x/y/Z"}, "Invalid rule"),
        ({"ssl.keystore.password": "p"}, "not used with a PEM keystore"),
    ],
)
def test_settings_kafka_would_take_but_this_broker_refuses_say_why(
    stores: dict[str, Path], given: dict[str, str], message: str
) -> None:
    settings = _settings(**{"ssl.keystore.location": str(stores["keystore"]), **given})
    with pytest.raises(TlsConfigError, match=message):
        _context(settings)


def test_a_bad_client_auth_in_a_file_names_the_file_and_line(tmp_path: Path) -> None:
    broker = tmp_path / "broker.properties"
    broker.write_text("listeners=SSL://127.0.0.1:0\nssl.client.auth=requird\n")
    with pytest.raises(
        SettingsError,
        match=r"broker.properties:2: setting 'ssl.client.auth': 'requird' is not one of "
        r"required, requested, none",
    ):
        load_settings(broker, environ={})
    with pytest.raises(SettingsError, match="'always' is not one of required, requested, none"):
        _settings(**{"ssl.client.auth": "always"})
    assert _settings(**{"ssl.client.auth": "Required"}).ssl_client_auth == "Required"


def test_a_keystore_without_a_private_key_says_so(stores: dict[str, Path], tmp_path: Path) -> None:
    certificate_only = tmp_path / "certificate-only.pem"
    certificate_only.write_bytes(stores["ca"].read_bytes())
    with pytest.raises(TlsConfigError, match="certificate-only.pem: holds no private key") as e:
        _context(_settings(**{"ssl.keystore.location": str(certificate_only)}))
    assert "ssl.key.password" not in str(e.value)


def test_keystore_problems_name_the_setting(stores: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TlsConfigError, match="listener SSL uses TLS but has no keystore"):
        _context(_settings())
    with pytest.raises(TlsConfigError, match="a JKS keystore; only PEM"):
        _context(_settings(**{"ssl.keystore.location": str(stores["jks"])}))
    with pytest.raises(TlsConfigError, match=r"ssl.keystore.location=.*missing.pem"):
        _context(_settings(**{"ssl.keystore.location": str(tmp_path / "missing.pem")}))
    encrypted = {"ssl.keystore.location": str(stores["encrypted"])}
    with pytest.raises(TlsConfigError, match="wrong or missing ssl.key.password"):
        _context(_settings(**encrypted))  # never a prompt on the terminal
    with pytest.raises(TlsConfigError, match="wrong or missing ssl.key.password"):
        _context(_settings(**encrypted, **{"ssl.key.password": "wrong"}))
    _context(_settings(**encrypted, **{"ssl.key.password": "s3cret"}))


def test_inline_pem_keystore_and_truststore(stores: dict[str, Path]) -> None:
    pem = stores["keystore"].read_text()
    key, _, chain = pem.partition("-----END PRIVATE KEY-----\n")
    settings = _settings(
        **{
            "ssl.keystore.key": key + "-----END PRIVATE KEY-----\n",
            "ssl.keystore.certificate.chain": chain,
            "ssl.truststore.certificates": stores["ca"].read_text(),
            "ssl.client.auth": "required",
        }
    )
    context = _context(settings)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1


def test_per_listener_settings_override_the_global_ones(stores: dict[str, Path]) -> None:
    settings = load_settings(
        environ={},
        overrides={
            "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,MTLS://127.0.0.1:0",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL",
            "ssl.keystore.location": str(stores["keystore"]),
            "listener.name.mtls.ssl.client.auth": "required",
            "listener.name.mtls.ssl.truststore.location": str(stores["ca"]),
        },
    )
    assert _context(settings, "SSL").verify_mode == ssl.CERT_NONE
    assert _context(settings, "MTLS").verify_mode == ssl.CERT_REQUIRED
    bad = tls_config(settings, "MTLS")
    assert bad.name("ssl.client.auth") == "listener.name.mtls.ssl.client.auth"
    with pytest.raises(SettingsError, match="no SSL or SASL_SSL listener is named PLAIN"):
        load_settings(
            environ={},
            overrides={"listener.name.plain.ssl.keystore.location": str(stores["keystore"])},
        )
    with pytest.raises(SettingsError, match="`listener.name.<listener>.ssl.\\*`"):
        load_settings(environ={}, overrides={"listener.name.ssl.max.connections": "3"})


def test_a_bad_principal_mapping_rule_names_the_setting(stores: dict[str, Path]) -> None:
    """A listener's reloading context is built from its settings; a bad
    ssl.principal.mapping.rules is a TlsConfigError naming it (the CLI's clear message),
    not a ValueError traceback."""
    settings = _settings(
        **{
            "ssl.keystore.location": str(stores["keystore"]),
            "ssl.principal.mapping.rules": "RULE:bad",
        }
    )
    with pytest.raises(TlsConfigError, match="ssl.principal.mapping.rules: Invalid rule"):
        ReloadingContext(tls_config(settings, "SSL"))
