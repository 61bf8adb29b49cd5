"""How this broker reaches and authenticates to another broker (Kafka's inter-broker
settings), read and checked at start.

The listener: `inter.broker.listener.name`, or the listener named after
`security.inter.broker.protocol`. Neither given: Kafka's default
(`security.inter.broker.protocol=PLAINTEXT`), the listener named PLAINTEXT, or else the
first listener whose protocol is PLAINTEXT; a broker with no such listener has no
inter-broker path until one of the settings names one (its peers' calls fail, and say so).

On that listener the broker is itself: with TLS it presents its own keystore (the
listener's `ssl.*` settings, `listener.name.<l>.ssl.*` overriding), so a peer requiring
client certificates sees its certificate's subject, mapped by
`ssl.principal.mapping.rules`; it trusts the listener's truststore and checks the peer's
host name (Kafka's default `ssl.endpoint.identification.algorithm=https`). On SASL it logs
in with `sasl.mechanism.inter.broker.protocol` (PLAIN or SCRAM), which must be enabled on
the listener, as the `username` and `password` of the listener's
`listener.name.<l>.<mechanism>.sasl.jaas.config`, as Kafka's brokers do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from contextplane.listener_settings import ListenerSpec
from contextplane.security import jaas, sasl_settings

if TYPE_CHECKING:
    from contextplane.settings import Settings

# The mechanisms the inter-broker client logs in with (no OAUTHBEARER token login).
CLIENT_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_MECHANISM_SETTING = "sasl.mechanism.inter.broker.protocol"


class InterBrokerError(ValueError):
    """The inter-broker settings cannot give a login (the message names the setting)."""


@dataclass(frozen=True)
class InterBrokerLogin:
    """The listener brokers call each other on, and how this broker logs in there."""

    listener: str
    security_protocol: str
    mechanism: str = ""  # "": no SASL
    username: str = ""
    password: str = ""

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")


def inter_broker_listener(settings: Settings) -> ListenerSpec | None:
    """The listener this broker dials on its peers (None: no inter-broker listener)."""
    specs = settings.listeners
    if settings.inter_broker_listener:
        return next(s for s in specs if s.name == settings.inter_broker_listener)
    named = [s for s in specs if s.name == "PLAINTEXT" and s.security_protocol == "PLAINTEXT"]
    plain = [s for s in specs if s.security_protocol == "PLAINTEXT"]
    return (named or plain or [None])[0]


def login(settings: Settings) -> InterBrokerLogin | None:
    """The inter-broker login, checked; InterBrokerError names the setting at fault."""
    spec = inter_broker_listener(settings)
    if spec is None:
        return None
    if not spec.sasl:
        return InterBrokerLogin(spec.name, spec.security_protocol)
    named_by = settings.inter_broker_setting or "the listeners"
    mechanism = settings.sasl_mechanism_inter_broker_protocol.strip().upper()
    where = f"inter-broker listener {spec.name} ({spec.security_protocol}, from {named_by})"
    if mechanism not in CLIENT_MECHANISMS:
        raise InterBrokerError(
            f"{_MECHANISM_SETTING}={settings.sasl_mechanism_inter_broker_protocol}: the "
            f"{where} needs a mechanism brokers log in with: {', '.join(CLIENT_MECHANISMS)}"
        )
    enabled = sasl_settings.for_listener(
        settings.sasl_enabled_mechanisms, settings.listener_sasl, spec.name
    ).mechanisms
    if mechanism not in enabled:
        # Kafka: "sasl.mechanism.inter.broker.protocol must be included in
        # sasl.enabled.mechanisms when SASL is used for inter-broker communication".
        raise InterBrokerError(
            f"{_MECHANISM_SETTING}={mechanism} must be included in the mechanisms enabled on the"
            f" {where}: {','.join(enabled)}"
        )
    setting = f"listener.name.{spec.name.lower()}.{mechanism.lower()}.sasl.jaas.config"
    text = next((v for k, v in settings.listener_sasl.items() if k.lower() == setting), None)
    if text is None:
        raise InterBrokerError(
            f"{setting} is not set: the {where} logs in with {mechanism} as the username and"
            f' password of that entry (e.g. {jaas.MODULES[mechanism]} required username="broker"'
            ' password="...";)'
        )
    options = jaas.server_options(mechanism, text)  # parsed at load already
    missing = [key for key in ("username", "password") if not options.get(key)]
    if missing:
        raise InterBrokerError(
            f"{setting}: no {' and no '.join(missing)}: the {where} logs in with {mechanism} "
            "as that entry's username and password"
        )
    return InterBrokerLogin(
        spec.name, spec.security_protocol, mechanism, options["username"], options["password"]
    )


def problem(settings: Settings) -> str | None:
    """The inter-broker settings' first problem, as a start-up message (None: none)."""
    try:
        login(settings)
    except (InterBrokerError, sasl_settings.SaslSettingsError, jaas.JaasError) as exc:
        return str(exc)
    return None
