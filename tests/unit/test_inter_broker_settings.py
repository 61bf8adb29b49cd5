"""The inter-broker settings (security/inter_broker.py), checked at start: which listener
a broker calls other brokers on, and the SASL login it uses there. A listener that does
not exist, a controller listener, a mechanism the client cannot log in with or that the
listener does not enable, and a mechanism without credentials stop the start with a
message naming the setting."""

from __future__ import annotations

import pytest

from contextplane.security.inter_broker import InterBrokerLogin, login
from contextplane.settings import Settings, SettingsError, load_settings

SCRAM_JAAS = (
    "org.apache.kafka.common.security.scram.ScramLoginModule required"
    ' username="broker" password="broker-secret";'
)
SASL = {
    "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
    "sasl.enabled.mechanisms": "SCRAM-SHA-512",
    "inter.broker.listener.name": "SASL_PLAINTEXT",
}


def _load(**given: str) -> Settings:
    return load_settings(environ={}, overrides=given)


def test_the_plaintext_listener_is_the_default_and_logs_in_as_no_one() -> None:
    assert login(_load()) == InterBrokerLogin("PLAINTEXT", "PLAINTEXT")
    # A broker with no PLAINTEXT listener and neither setting has no inter-broker path.
    assert login(_load(**{"listeners": "SASL_PLAINTEXT://127.0.0.1:0"}, **_mechanisms())) is None


def _mechanisms() -> dict[str, str]:
    return {"sasl.enabled.mechanisms": "SCRAM-SHA-512"}


def test_a_sasl_listener_logs_in_with_the_mechanism_and_the_listeners_jaas_credentials() -> None:
    settings = _load(
        **SASL,
        **{
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": SCRAM_JAAS,
        },
    )
    assert login(settings) == InterBrokerLogin(
        "SASL_PLAINTEXT", "SASL_PLAINTEXT", "SCRAM-SHA-512", "broker", "broker-secret"
    )
    plain = _load(
        **{
            "listeners": "INTERNAL://127.0.0.1:0",
            "listener.security.protocol.map": "INTERNAL:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "PLAIN",
            "inter.broker.listener.name": "internal",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.internal.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required"
                ' username="b" password="s" user_b="s";'
            ),
        }
    )
    assert login(plain) == InterBrokerLogin("INTERNAL", "SASL_PLAINTEXT", "PLAIN", "b", "s")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"inter.broker.listener.name": "REPLICATION"},
            "inter.broker.listener.name must name a listener defined in advertised.listeners",
        ),
        (
            {
                "listeners": "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "controller.listener.names": "CONTROLLER",
                "inter.broker.listener.name": "CONTROLLER",
            },
            "inter.broker.listener.name=CONTROLLER: listener CONTROLLER is in "
            "controller.listener.names",
        ),
        (SASL, "sasl.mechanism.inter.broker.protocol=GSSAPI: the inter-broker listener"),
        (
            {**SASL, "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER"},
            "sasl.mechanism.inter.broker.protocol=OAUTHBEARER",
        ),
        (
            {**SASL, "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-256"},
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256 must be included in the "
            "mechanisms enabled on the inter-broker listener SASL_PLAINTEXT",
        ),
        (
            {**SASL, "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512"},
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config is not set",
        ),
        (
            {
                **SASL,
                "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
                "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
                    'org.apache.kafka.common.security.scram.ScramLoginModule required username="b";'
                ),
            },
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config: no password",
        ),
    ],
)
def test_bad_inter_broker_settings_stop_the_start(given: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        _load(**given)
    assert message in str(raised.value)
