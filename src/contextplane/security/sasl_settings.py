"""Kafka's SASL settings for a listener, read and checked.

    sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
    listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN          (wins for that listener)
    listener.name.sasl_plaintext.plain.sasl.jaas.config=\
        org.apache.kafka.common.security.plain.PlainLoginModule required \
        user_alice="alice-secret";

Listener names are matched case-insensitively (Kafka lower-cases them in these prefixes);
the mechanism in a JAAS setting's name is lower case. Every JAAS value is parsed when the
settings are loaded (jaas.py), so a typo stops the broker at start, not a client at
login. PLAIN needs its JAAS entry (its `user_<name>` options are its users); SCRAM's
users are in the metadata store, so its entry, which has no server options, may be left
out; so may OAUTHBEARER's, whose tokens are validated against a JWKS
(oauthbearer_settings.py: `sasl.oauthbearer.*` and
`listener.name.<listener>.oauthbearer.sasl.*`). GSSAPI (Kafka's default) is refused on a
SASL listener.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from contextplane.security import jaas, oauthbearer_settings
from contextplane.security.oauthbearer_settings import OAuthBearerConfig

AVAILABLE = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
KNOWN = (*AVAILABLE, "GSSAPI")
_LISTENER_SETTING = re.compile(
    r"listener\.name\.(?P<listener>[^.]+)\."
    r"(?:sasl\.enabled\.mechanisms|(?P<mechanism>[a-z0-9-]+)\.sasl\.jaas\.config"
    r"|oauthbearer\.(?P<oauth>sasl\.server\.callback\.handler\.class|sasl\.oauthbearer\.[a-z.]+))"
)


class SaslSettingsError(ValueError):
    """A SASL setting is invalid (the message names it)."""


@dataclass(frozen=True)
class SaslListenerConfig:
    """What one SASL listener accepts."""

    listener: str
    mechanisms: tuple[str, ...]  # in the order given (SaslHandshake lists them so)
    plain_users: dict[str, str] = field(default_factory=dict)  # user -> password
    oauth: OAuthBearerConfig | None = None  # with OAUTHBEARER: how tokens are validated


def is_listener_sasl_setting(name: str) -> bool:
    return _LISTENER_SETTING.fullmatch(name) is not None


def _mechanisms(setting: str, text: str) -> tuple[str, ...]:
    found: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item not in KNOWN:
            raise SaslSettingsError(
                f"{setting}: unknown SASL mechanism {item!r} (available: {', '.join(AVAILABLE)})"
            )
        if item not in found:
            found.append(item)
    return tuple(found)


def check(
    enabled: str,
    given: dict[str, str],
    listeners: Sequence[tuple[str, str]],
    oauth: OAuthBearerConfig | None = None,
) -> None:
    """Check every SASL setting's syntax, and that each SASL listener (name, security
    protocol) has mechanisms it can use."""
    _mechanisms("sasl.enabled.mechanisms", enabled)
    for name, value in given.items():
        match = _LISTENER_SETTING.fullmatch(name)
        assert match is not None, name
        mechanism = match["mechanism"]
        if match["oauth"] is not None:
            if match["oauth"] not in oauthbearer_settings.PER_LISTENER:
                raise SaslSettingsError(
                    f"{name}: not a setting of the broker's OAUTHBEARER token validation (a "
                    "client's or inter-broker login is not configured here; per listener: "
                    f"{', '.join(oauthbearer_settings.PER_LISTENER)})"
                    + _did_you_mean(name, match["oauth"], oauthbearer_settings.PER_LISTENER)
                )
            continue
        if mechanism is None:
            _mechanisms(name, value)
            continue
        if mechanism.upper() not in KNOWN or mechanism != mechanism.lower():
            raise SaslSettingsError(
                f"{name}: no SASL mechanism {mechanism!r} (lower case, one of "
                f"{', '.join(m.lower() for m in AVAILABLE)})"
                + _did_you_mean(
                    name,
                    f"{mechanism}.sasl.jaas.config",
                    [f"{m.lower()}.sasl.jaas.config" for m in AVAILABLE],
                )
            )
        if mechanism.upper() in jaas.MODULES:
            try:
                jaas.server_options(mechanism.upper(), value)
            except jaas.JaasError as exc:
                raise SaslSettingsError(f"{name}: {exc}") from None
    # After the names: a misspelt per-listener name is reported as such, not as the
    # setting it failed to override.
    for name, protocol in listeners:
        try:
            for_listener(enabled, given, name, oauth)
        except SaslSettingsError as exc:
            raise SaslSettingsError(
                f"listener {name} is {protocol} (listeners, listener.security.protocol.map): {exc}"
            ) from None


def _did_you_mean(name: str, suffix: str, known: Sequence[str]) -> str:
    matches = difflib.get_close_matches(suffix, known, n=1, cutoff=0.75)
    if not matches:
        return ""
    return f"; did you mean {name[: len(name) - len(suffix)] + matches[0]!r}?"


def for_listener(
    enabled: str, given: dict[str, str], listener: str, oauth: OAuthBearerConfig | None = None
) -> SaslListenerConfig:
    """The mechanisms, PLAIN users and OAUTHBEARER validation of the SASL listener
    `listener`; `oauth` holds the broker-wide `sasl.oauthbearer.*` values."""
    prefix = f"listener.name.{listener.lower()}."
    own = {
        name[len(prefix) :]: value
        for name, value in given.items()
        if name.lower().startswith(prefix)
    }
    if "sasl.enabled.mechanisms" in own:
        setting = prefix + "sasl.enabled.mechanisms"
        mechanisms = _mechanisms(setting, own["sasl.enabled.mechanisms"])
    else:
        setting = "sasl.enabled.mechanisms"
        mechanisms = _mechanisms(setting, enabled)
    if not mechanisms:
        raise SaslSettingsError(f"{setting}: listener {listener} enables no SASL mechanism")
    for mechanism in mechanisms:
        if mechanism not in AVAILABLE:
            raise SaslSettingsError(
                f"{setting}={','.join(mechanisms)}: {mechanism} is not available on listener"
                f" {listener} (available: {', '.join(AVAILABLE)})"
            )
    plain_users: dict[str, str] = {}
    if "PLAIN" in mechanisms:
        jaas_setting = f"{prefix}plain.sasl.jaas.config"
        if "plain.sasl.jaas.config" not in own:
            raise SaslSettingsError(
                f"listener {listener} enables PLAIN but {jaas_setting} is not set (its "
                f'PlainLoginModule entry names the users: user_alice="<password>")'
            )
        try:
            options = jaas.server_options("PLAIN", own["plain.sasl.jaas.config"])
        except jaas.JaasError as exc:
            raise SaslSettingsError(f"{jaas_setting}: {exc}") from None
        plain_users = jaas.plain_users(options)
    oauth_config = None
    if "OAUTHBEARER" in mechanisms:
        try:
            oauth_config = oauthbearer_settings.for_listener(
                oauth or OAuthBearerConfig(), own, prefix
            )
        except oauthbearer_settings.OAuthSettingsError as exc:
            raise SaslSettingsError(str(exc)) from None
    return SaslListenerConfig(listener, mechanisms, plain_users, oauth_config)
