"""Kafka's sasl.jaas.config syntax, parsed strictly, and the per-listener SASL settings."""

from __future__ import annotations

import pytest

from contextplane.security import jaas, sasl_settings
from contextplane.settings import SettingsError, load_settings

PLAIN = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="a;b=\\"c";'
)


def test_plain_entry_with_users() -> None:
    options = jaas.server_options("PLAIN", PLAIN)
    assert jaas.plain_users(options) == {"admin": "admin-secret", "alice": 'a;b="c'}


def test_bare_values_and_line_breaks() -> None:
    entry = jaas.parse(
        "org.apache.kafka.common.security.scram.ScramLoginModule\n  required\n"
        "  username=admin password=x ;"
    )
    assert entry.flag == "required"
    assert entry.options == {"username": "admin", "password": "x"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("org.apache.kafka.common.security.plain.PlainLoginModule;", "control flag"),
        ("org.apache.kafka.common.security.plain.PlainLoginModule maybe;", "invalid control flag"),
        ("org.apache.kafka.common.security.plain.PlainLoginModule required user_a=x", "';'"),
        ("org.apache.kafka.common.security.plain.PlainLoginModule required user_a;", "value not"),
        ("org.apache.kafka.common.security.plain.PlainLoginModule required user_a=;", "value not"),
        ("", "0 login modules"),
        (PLAIN + PLAIN, "2 login modules"),
        (
            "org.apache.kafka.common.security.plain.PlainLoginModule required a=1 a=2;",
            "given twice",
        ),
    ],
)
def test_syntax_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(jaas.JaasError, match=message):
        jaas.parse(text)


def test_module_must_match_the_mechanism() -> None:
    with pytest.raises(jaas.JaasError, match="PLAIN needs the login module"):
        jaas.server_options(
            "PLAIN", "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        )


def test_unknown_options_are_refused() -> None:
    with pytest.raises(jaas.JaasError, match="unknown option 'usr_alice'"):
        jaas.server_options(
            "PLAIN",
            'org.apache.kafka.common.security.plain.PlainLoginModule required usr_alice="x";',
        )


def test_listener_settings_are_read_and_checked() -> None:
    settings = load_settings(
        environ={},
        overrides={
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN,
        },
    )
    config = sasl_settings.for_listener(
        settings.sasl_enabled_mechanisms, settings.listener_sasl, "SASL_PLAINTEXT"
    )
    assert config.mechanisms == ("PLAIN", "SCRAM-SHA-256")
    assert config.plain_users["alice"] == 'a;b="c'
    other = sasl_settings.for_listener(
        settings.sasl_enabled_mechanisms, settings.listener_sasl, "OTHER"
    )
    assert other.mechanisms == ("SCRAM-SHA-512",) and other.plain_users == {}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sasl.enabled.mechanisms": "SCRAM-SHA-1"}, "unknown SASL mechanism 'SCRAM-SHA-1'"),
        (
            {"listener.name.sasl_plaintext.plain.sasl.jaas.config": "PlainLoginModule required"},
            "listener.name.sasl_plaintext.plain.sasl.jaas.config: ",
        ),
        ({"listener.name.x.md5.sasl.jaas.config": PLAIN}, "no SASL mechanism 'md5'"),
        ({"sasl.jaas.config": PLAIN}, "sasl.jaas.config"),
        ({"connection.failed.authentication.delay.ms": "600000"}, "less than"),
    ],
)
def test_bad_sasl_settings_stop_the_start(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ={}, overrides=overrides)


@pytest.mark.parametrize(
    ("enabled", "given", "message"),
    [
        ("GSSAPI", {}, "GSSAPI is not available"),
        ("PLAIN", {}, "plain.sasl.jaas.config is not set"),
        ("", {}, "enables no SASL mechanism"),
    ],
)
def test_a_sasl_listener_needs_usable_mechanisms(
    enabled: str, given: dict[str, str], message: str
) -> None:
    with pytest.raises(sasl_settings.SaslSettingsError, match=message):
        sasl_settings.for_listener(enabled, given, "SASL_PLAINTEXT")
