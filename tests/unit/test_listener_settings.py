"""`listeners` and its companions, with Kafka's meaning and Kafka's validation messages."""

from __future__ import annotations

import pytest

from contextplane import listener_settings
from contextplane.settings import Settings, SettingsError, load_settings


def _load(**given: str) -> Settings:
    return load_settings(environ={}, overrides=given)


def test_no_listener_settings_is_one_plaintext_listener_on_loopback_9092() -> None:
    (only,) = load_settings(environ={}).listeners
    assert (only.name, only.security_protocol, only.host, only.port) == (
        "PLAINTEXT",
        "PLAINTEXT",
        "127.0.0.1",
        9092,
    )


def test_several_listeners_with_custom_names_are_each_served() -> None:
    settings = _load(
        **{
            "listeners": "PLAINTEXT://127.0.0.1:9092,internal://localhost:9093,EXT://:9094",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,"
            "EXT:PLAINTEXT",
            "advertised.listeners": "INTERNAL://broker.internal:19093",
        }
    )
    specs = [(s.name, s.security_protocol, s.host, s.port) for s in settings.listeners]
    assert specs == [
        ("PLAINTEXT", "PLAINTEXT", "127.0.0.1", 9092),
        ("INTERNAL", "PLAINTEXT", "localhost", 9093),  # names are upper-cased, as in Kafka
        ("EXT", "PLAINTEXT", "127.0.0.1", 9094),  # an empty host binds listener.host
    ]
    internal = settings.listeners[1]
    assert (internal.advertised_host, internal.advertised_port) == ("broker.internal", 19093)
    assert settings.listeners[0].advertised_host is None  # the bind host and bound port
    assert (settings.host, settings.port) == ("127.0.0.1", 9092)  # the first listener


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"listeners": "PLAINTEXT://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9093"},
            "Each listener must have a different name, listeners: PLAINTEXT://127.0.0.1:9092,",
        ),
        (
            {
                "listeners": "A://127.0.0.1:9092,B://127.0.0.1:9092",
                "listener.security.protocol.map": "A:PLAINTEXT,B:PLAINTEXT",
            },
            "Each listener must have a different port, listeners: A://127.0.0.1:9092,",
        ),
        (
            {"listeners": "CLIENT://127.0.0.1:9092"},
            "No security protocol defined for listener CLIENT",
        ),
        (
            {"listener.security.protocol.map": "PLAINTEXT:TLS"},
            "no security protocol 'TLS'",
        ),
        (
            {
                "advertised.listeners": "OTHER://b:1",
                "listener.security.protocol.map": "OTHER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            },
            "advertised.listeners listener names must be equal to or a subset of the ones "
            "defined in listeners. Found OTHER",
        ),
        (
            {"advertised.listeners": "PLAINTEXT://0.0.0.0:9092"},
            "cannot use the nonroutable meta-address 0.0.0.0",
        ),
        (
            {"security.inter.broker.protocol": "PLAINTEXT", "inter.broker.listener.name": "X"},
            "Only one of inter.broker.listener.name and security.inter.broker.protocol",
        ),
        (
            {"inter.broker.listener.name": "REPLICATION"},
            "inter.broker.listener.name must name a listener",
        ),
        (
            {"security.inter.broker.protocol": "SSL"},
            "security.inter.broker.protocol must name a listener",
        ),
        ({"listeners": "PLAINTEXT://host-without-port"}, "Unable to parse"),
    ],
)
def test_bad_listener_settings_get_kafkas_messages(given: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace(".", r"\.")):
        _load(**given)


def test_two_listeners_on_port_zero_are_not_duplicates() -> None:
    settings = _load(
        **{
            "listeners": "A://127.0.0.1:0,B://127.0.0.1:0",
            "listener.security.protocol.map": "A:PLAINTEXT,B:PLAINTEXT",
        }
    )
    assert [s.port for s in settings.listeners] == [0, 0]


def test_inter_broker_settings_name_the_listener_brokers_call_each_other_on() -> None:
    settings = _load(
        **{
            "listeners": "PLAINTEXT://127.0.0.1:9092,REPLICATION://127.0.0.1:9093",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,REPLICATION:PLAINTEXT",
            "inter.broker.listener.name": "replication",
        }
    )
    assert settings.inter_broker_listener == "REPLICATION"
    assert "inter.broker.listener.name" not in settings.ignored
    settings = _load(**{"security.inter.broker.protocol": "PLAINTEXT"})
    assert settings.inter_broker_listener == "PLAINTEXT"
    assert settings.inter_broker_setting == "security.inter.broker.protocol"
    assert _load().inter_broker_listener == ""


def test_controller_listeners_are_not_served() -> None:
    settings = _load(
        **{
            "listeners": "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        }
    )
    assert [s.name for s in settings.listeners] == ["PLAINTEXT"]


@pytest.mark.parametrize(
    "given",
    [
        {"listeners": "SASL_PLAINTEXT://127.0.0.1:9092"},
        {"listeners": "SASL_SSL://127.0.0.1:9094"},
        {
            "listeners": "CLIENT://127.0.0.1:9092",
            "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT",
        },
        # The default listener, PLAINTEXT://:9092, whose name maps to SASL.
        {"listener.security.protocol.map": "PLAINTEXT:SASL_PLAINTEXT"},
    ],
)
def test_a_sasl_listener_is_refused_without_a_mechanism_it_can_use(given: dict[str, str]) -> None:
    # Kafka's default sasl.enabled.mechanisms is GSSAPI (Kerberos), which is not available.
    with pytest.raises(SettingsError, match="GSSAPI is not available|TLS listeners are not"):
        _load(**given)


def test_a_sasl_listener_starts_in_the_handshake_once_sasl_is_available(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _load(
        **{
            "listeners": "PLAINTEXT://127.0.0.1:9092,CLIENTS://127.0.0.1:9093",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CLIENTS:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        }
    )
    clients = settings.listeners[1]
    assert clients.security_protocol == "SASL_PLAINTEXT" and clients.sasl


def test_a_listener_without_tls_beyond_loopback_needs_the_allowance() -> None:
    allow = listener_settings.ALLOW_NON_LOOPBACK
    for given in (
        {
            "listeners": "PLAINTEXT://0.0.0.0:9092",
            "advertised.listeners": "PLAINTEXT://broker.example:9092",
        },
        {"listener.host": "0.0.0.0", "advertised.host": "broker.example"},  # --host 0.0.0.0
        {
            "listeners": "PLAINTEXT://127.0.0.1:9092,EXT://10.1.2.3:9093",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,EXT:PLAINTEXT",
        },
    ):
        with pytest.raises(SettingsError, match=f"beyond loopback, without TLS.*{allow}=true"):
            _load(**given)
        settings = _load(**given, **{allow: "true"})
        assert any(not listener_settings.is_loopback(s.host) for s in settings.listeners)


def test_the_meta_address_is_never_advertised() -> None:
    """Kafka advertises `listeners` where advertised.listeners names no entry, and refuses
    0.0.0.0 there as it refuses it in advertised.listeners: clients would dial 0.0.0.0."""
    allow = {listener_settings.ALLOW_NON_LOOPBACK: "true"}
    for given in (
        {"listeners": "PLAINTEXT://0.0.0.0:9092"},
        {"listener.host": "0.0.0.0"},
        {"listeners": "PLAINTEXT://127.0.0.1:9092,SSL://0.0.0.0:9093"},
    ):
        with pytest.raises(SettingsError, match="nonroutable meta-address 0.0.0.0"):
            _load(**given, **allow)
