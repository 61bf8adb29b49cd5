"""Kafka's `sasl.oauthbearer.*` broker settings for validating OAUTHBEARER tokens, read
and checked per listener.

    sasl.oauthbearer.jwks.endpoint.url=https://idp.example/keys      (or file:///etc/jwks.json)
    sasl.oauthbearer.expected.issuer=https://idp.example
    sasl.oauthbearer.expected.audience=kafka
    listener.name.sasl_ssl.oauthbearer.sasl.oauthbearer.expected.audience=kafka-external
    listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class=\
        org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler

The broker-wide values are the settings table's; Kafka's per-listener form
`listener.name.<listener>.oauthbearer.sasl.oauthbearer.<name>` overrides one for a
listener. As Kafka 4.4's BrokerJwtValidator, the issuer and the audience must be
expected unless `sasl.oauthbearer.allow.unverified.issuer|audience=true` says otherwise.
Unsecured (unsigned) tokens are never accepted: Kafka's default server callback handler
for OAUTHBEARER, OAuthBearerUnsecuredValidatorCallbackHandler, is refused by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VALIDATOR_HANDLERS = (
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    # Its name before Kafka 3.4 moved it out of `secured`.
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
)
UNSECURED_HANDLER = (
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured."
    "OAuthBearerUnsecuredValidatorCallbackHandler"
)
CALLBACK_HANDLER = "sasl.server.callback.handler.class"
DEFAULT_REFRESH_MS = 3_600_000  # Kafka's sasl.oauthbearer.jwks.endpoint.refresh.ms
DEFAULT_CLOCK_SKEW_SECONDS = 30  # Kafka's sasl.oauthbearer.clock.skew.seconds


class OAuthSettingsError(ValueError):
    """An OAUTHBEARER setting is invalid (the message names it)."""


@dataclass(frozen=True)
class OAuthBearerConfig:
    """How one listener validates OAUTHBEARER tokens."""

    jwks_url: str = ""
    jwks_refresh_ms: int = DEFAULT_REFRESH_MS
    expected_issuer: str = ""
    expected_audience: tuple[str, ...] = ()
    allow_unverified_issuer: bool = False
    allow_unverified_audience: bool = False
    clock_skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS
    sub_claim_name: str = "sub"
    scope_claim_name: str = "scope"


# Kafka's name -> (field, its range for an int)
FIELDS: dict[str, tuple[str, tuple[int, int] | None]] = {
    "sasl.oauthbearer.jwks.endpoint.url": ("jwks_url", None),
    "sasl.oauthbearer.jwks.endpoint.refresh.ms": ("jwks_refresh_ms", (1, 2**63 - 1)),
    "sasl.oauthbearer.expected.issuer": ("expected_issuer", None),
    "sasl.oauthbearer.expected.audience": ("expected_audience", None),
    "sasl.oauthbearer.allow.unverified.issuer": ("allow_unverified_issuer", None),
    "sasl.oauthbearer.allow.unverified.audience": ("allow_unverified_audience", None),
    "sasl.oauthbearer.clock.skew.seconds": ("clock_skew_seconds", (0, 2**31 - 1)),
    "sasl.oauthbearer.sub.claim.name": ("sub_claim_name", None),
    "sasl.oauthbearer.scope.claim.name": ("scope_claim_name", None),
}
PER_LISTENER = (*FIELDS, CALLBACK_HANDLER)


def _audience(text: str) -> tuple[str, ...]:
    return tuple(filter(None, (part.strip() for part in text.split(","))))


def from_settings(settings: Any) -> OAuthBearerConfig:
    """The broker-wide values (the Settings fields named `sasl_oauthbearer_<field>`)."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(OAuthBearerConfig):
        value = getattr(settings, f"sasl_oauthbearer_{field.name}")
        values[field.name] = _audience(value) if field.name == "expected_audience" else value
    return OAuthBearerConfig(**values)


def _value(name: str, text: str, current: Any, bounds: tuple[int, int] | None) -> Any:
    text = text.strip()
    if isinstance(current, bool):
        if text.lower() not in ("true", "false"):
            raise OAuthSettingsError(f"{name}: {text!r} is not a valid boolean (true or false)")
        return text.lower() == "true"
    if isinstance(current, int):
        try:
            number = int(text)
        except ValueError:
            raise OAuthSettingsError(f"{name}: {text!r} is not a valid int") from None
        assert bounds is not None
        if not bounds[0] <= number <= bounds[1]:
            raise OAuthSettingsError(f"{name}: {number} is not in [{bounds[0]}, {bounds[1]}]")
        return number
    if isinstance(current, tuple):
        return _audience(text)
    return text


def for_listener(base: OAuthBearerConfig, own: Mapping[str, str], prefix: str) -> OAuthBearerConfig:
    """`base` with the listener's `oauthbearer.sasl.*` overrides (`own`: name without the
    listener prefix -> value), checked."""
    changes: dict[str, Any] = {}
    for suffix, text in own.items():
        if not suffix.startswith("oauthbearer."):
            continue
        name = suffix[len("oauthbearer.") :]
        if name == CALLBACK_HANDLER:
            _check_handler(prefix + suffix, text.strip())
            continue
        if name not in FIELDS:
            continue  # not an OAUTHBEARER setting (sasl_settings reports unknown ones)
        field, bounds = FIELDS[name]
        changes[field] = _value(prefix + suffix, text, getattr(base, field), bounds)
    config = dataclasses.replace(base, **changes)
    _check(config, prefix)
    return config


def _check_handler(name: str, value: str) -> None:
    if value in VALIDATOR_HANDLERS:
        return
    if value == UNSECURED_HANDLER:
        raise OAuthSettingsError(
            f"{name}: unsecured (unsigned) OAUTHBEARER tokens are not accepted; use "
            f"{VALIDATOR_HANDLERS[0]} with sasl.oauthbearer.jwks.endpoint.url"
        )
    raise OAuthSettingsError(
        f"{name}: {value!r} is not available; OAUTHBEARER tokens are validated by the "
        f"broker's own {VALIDATOR_HANDLERS[0]}"
    )


def _check(config: OAuthBearerConfig, prefix: str) -> None:
    where = f"{prefix}oauthbearer.sasl.oauthbearer.*, or sasl.oauthbearer.*"
    url = config.jwks_url
    if not url:
        raise OAuthSettingsError(
            f"OAUTHBEARER needs sasl.oauthbearer.jwks.endpoint.url (a file:// path or an "
            f"http(s):// URL of the JWKS whose keys sign the tokens; {where}); unsecured "
            "tokens are not accepted"
        )
    if not url.lower().startswith(("file://", "http://", "https://")):
        raise OAuthSettingsError(
            f"sasl.oauthbearer.jwks.endpoint.url: {url!r} is not a file://, http:// or https:// URL"
        )
    if not config.expected_issuer and not config.allow_unverified_issuer:
        raise OAuthSettingsError(
            "OAUTHBEARER needs sasl.oauthbearer.expected.issuer so that the token's issuer "
            '("iss") claim can be verified, or sasl.oauthbearer.allow.unverified.issuer=true '
            f"to accept tokens regardless of their issuer ({where})"
        )
    if not config.expected_audience and not config.allow_unverified_audience:
        raise OAuthSettingsError(
            "OAUTHBEARER needs sasl.oauthbearer.expected.audience so that the token's audience "
            '("aud") claim can be verified, or sasl.oauthbearer.allow.unverified.audience=true '
            f"to accept tokens regardless of their audience ({where})"
        )
    for name in ("sub_claim_name", "scope_claim_name"):
        if not getattr(config, name).strip():
            raise OAuthSettingsError(f"sasl.oauthbearer.{name.replace('_', '.')} is empty")
