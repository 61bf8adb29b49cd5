"""A did-you-mean for a misspelt setting of a refused family (`ssl.*`,
`sasl.oauthbearer.*`, `listener.name.*`): the closest of that family's names, counting
Kafka's own names there (supported or not) so a correctly spelt Kafka setting that is
refused gets no hint, and a misspelt one is pointed at what was meant."""

from __future__ import annotations

import difflib

from contextplane.security.sasl_settings import AVAILABLE
from contextplane.settings_oauthbearer import OAUTHBEARER_SETTINGS
from contextplane.settings_table import SETTINGS

# Kafka 4.x broker and client names of each family (ConfigDef of SslConfigs,
# SaslConfigs, BrokerSecurityConfigs), beyond the rows of the settings table.
_KAFKA_SSL = (
    "ssl.cipher.suites",
    "ssl.keymanager.algorithm",
    "ssl.trustmanager.algorithm",
    "ssl.secure.random.implementation",
    "ssl.provider",
    "ssl.engine.factory.class",
    "ssl.endpoint.identification.algorithm",
    "ssl.allow.dn.changes",
    "ssl.allow.san.changes",
)
_KAFKA_OAUTHBEARER = (
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
    "sasl.oauthbearer.token.endpoint.url",
    "sasl.oauthbearer.header.urlencode",
    "sasl.oauthbearer.scope",
    "sasl.oauthbearer.client.credentials.client.id",
    "sasl.oauthbearer.client.credentials.client.secret",
    "sasl.oauthbearer.jwt.retriever.class",
    "sasl.oauthbearer.jwt.validator.class",
    "sasl.oauthbearer.assertion.algorithm",
    "sasl.oauthbearer.assertion.claim.aud",
    "sasl.oauthbearer.assertion.claim.exp.seconds",
    "sasl.oauthbearer.assertion.claim.iss",
    "sasl.oauthbearer.assertion.claim.jti.include",
    "sasl.oauthbearer.assertion.claim.nbf.seconds",
    "sasl.oauthbearer.assertion.claim.sub",
    "sasl.oauthbearer.assertion.file",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.template.file",
)
# Kafka's per-listener forms besides ssl.* and the SASL ones below.
_KAFKA_PER_LISTENER = (
    "max.connections",
    "max.connection.creation.rate",
    "connections.max.reauth.ms",
    "sasl.server.max.receive.size",
    "principal.builder.class",
)

SSL_NAMES = tuple(sorted({s.name for s in SETTINGS if s.name.startswith("ssl.")} | {*_KAFKA_SSL}))
OAUTHBEARER_NAMES = tuple(
    sorted({str(row["name"]) for row in OAUTHBEARER_SETTINGS} | {*_KAFKA_OAUTHBEARER})
)
# What may follow `listener.name.<listener>.`.
PER_LISTENER_NAMES = (
    *SSL_NAMES,
    "sasl.enabled.mechanisms",
    *(f"{mechanism.lower()}.sasl.jaas.config" for mechanism in AVAILABLE),
    "oauthbearer.sasl.server.callback.handler.class",
    *(f"oauthbearer.{name}" for name in OAUTHBEARER_NAMES),
    *_KAFKA_PER_LISTENER,
)
_CUTOFF = 0.75


def _closest(name: str, candidates: tuple[str, ...]) -> str | None:
    if name in candidates:
        return None  # spelt right: a Kafka setting refused for its own reason
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=_CUTOFF)
    return matches[0] if matches else None


def family_suggestion(name: str) -> str | None:
    """The setting a refused `ssl.*`, `sasl.oauthbearer.*` or `listener.name.*` name was
    probably meant to be, or None."""
    if name.startswith("listener.name."):
        listener, _, rest = name.removeprefix("listener.name.").partition(".")
        if not listener or not rest:
            return None
        found = _closest(rest, PER_LISTENER_NAMES)
        return None if found is None else f"listener.name.{listener}.{found}"
    if name.startswith("ssl."):
        return _closest(name, SSL_NAMES)
    if name.startswith("sasl.oauthbearer."):
        return _closest(name, OAUTHBEARER_NAMES)
    return None
