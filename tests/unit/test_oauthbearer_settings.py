"""OAUTHBEARER's settings as a Kafka server.properties gives them: the broker-wide
`sasl.oauthbearer.*` names, their per-listener form, Kafka's validator callback handler,
and what is refused (no JWKS, no expected issuer or audience, unsecured tokens)."""

from __future__ import annotations

import pytest

from contextplane.broker.app import sasl_listener_configs
from contextplane.settings import Settings, SettingsError, load_settings

VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
BASE = {
    "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
    "sasl.enabled.mechanisms": "OAUTHBEARER",
    "sasl.oauthbearer.jwks.endpoint.url": "file:///etc/jwks.json",
    "sasl.oauthbearer.expected.issuer": "https://issuer.test",
    "sasl.oauthbearer.expected.audience": "kafka, kafka-internal",
}


def load(**changes: str | None) -> Settings:
    overrides = {name: value for name, value in {**BASE, **changes}.items() if value is not None}
    return load_settings(environ={}, overrides=overrides)


def test_kafkas_oauthbearer_settings_are_read() -> None:
    settings = load(
        **{
            "sasl.oauthbearer.clock.skew.seconds": "5",
            "sasl.oauthbearer.sub.claim.name": "client_id",
            "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": (
                VALIDATOR
            ),
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config": (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
            ),
            "listener.name.sasl_plaintext.oauthbearer.sasl.oauthbearer.expected.audience": "ext",
        }
    )
    oauth = sasl_listener_configs(settings)["SASL_PLAINTEXT"].oauth
    assert oauth is not None
    assert oauth.jwks_url == "file:///etc/jwks.json" and oauth.jwks_refresh_ms == 3_600_000
    assert oauth.expected_issuer == "https://issuer.test"
    assert oauth.expected_audience == ("ext",)  # the listener's own value wins
    assert (oauth.clock_skew_seconds, oauth.sub_claim_name) == (5, "client_id")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sasl.oauthbearer.jwks.endpoint.url": None}, "needs sasl.oauthbearer.jwks.endpoint"),
        ({"sasl.oauthbearer.jwks.endpoint.url": "ftp://x/jwks"}, "is not a file://"),
        ({"sasl.oauthbearer.expected.issuer": None}, "needs sasl.oauthbearer.expected.issuer"),
        ({"sasl.oauthbearer.expected.audience": None}, "needs sasl.oauthbearer.expected.aud"),
        ({"sasl.oauthbearer.clock.skew.seconds": "-1"}, "sasl.oauthbearer.clock.skew.seconds"),
        ({"sasl.oauthbearer.jwks.endpoint.refresh.ms": "0"}, "refresh.ms"),
        (
            {
                "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": (
                    "org.apache.kafka.common.security.oauthbearer.internals.unsecured."
                    "OAuthBearerUnsecuredValidatorCallbackHandler"
                )
            },
            "unsecured (unsigned) OAUTHBEARER tokens are not accepted",
        ),
        (
            {
                "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": (
                    "com.example.MyHandler"
                )
            },
            "is not available",
        ),
        (
            {
                "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config": (
                    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule "
                    'required unsecuredLoginStringClaim_sub="admin";'
                )
            },
            "unsecuredLoginStringClaim_sub is for unsecured (unsigned) tokens",
        ),
        (
            {"listener.name.sasl_plaintext.oauthbearer.sasl.oauthbearer.clock.skew.seconds": "x"},
            "is not a valid int",
        ),
        (
            {"listener.name.sasl_plaintext.oauthbearer.sasl.oauthbearer.token.endpoint.url": "x"},
            "not a setting of the broker's OAUTHBEARER token validation",
        ),
        ({"sasl.oauthbearer.token.endpoint.url": "https://idp/token"}, "sasl.oauthbearer"),
        ({"sasl.server.callback.handler.class": VALIDATOR}, "custom callback handlers"),
    ],
)
def test_refused(changes: dict[str, str | None], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(**changes)


def test_unverified_issuer_and_audience_when_allowed() -> None:
    settings = load(
        **{
            "sasl.oauthbearer.expected.issuer": None,
            "sasl.oauthbearer.expected.audience": None,
            "sasl.oauthbearer.allow.unverified.issuer": "true",
            "sasl.oauthbearer.allow.unverified.audience": "true",
        }
    )
    oauth = sasl_listener_configs(settings)["SASL_PLAINTEXT"].oauth
    assert oauth is not None and oauth.allow_unverified_issuer and not oauth.expected_audience


def test_other_listeners_need_no_oauth_settings() -> None:
    settings = load(
        **{
            "sasl.enabled.mechanisms": "PLAIN",
            "sasl.oauthbearer.jwks.endpoint.url": None,
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                'org.apache.kafka.common.security.plain.PlainLoginModule required user_a="b";'
            ),
        }
    )
    assert sasl_listener_configs(settings)["SASL_PLAINTEXT"].oauth is None
