"""The OAUTHBEARER rows of the settings table (`settings_table.SETTINGS` ends with them):
Kafka's `sasl.oauthbearer.*` broker settings, with Kafka's names, defaults and ranges
(SaslConfigs). Each is `Setting`'s fields; per listener they are given as
`listener.name.<listener>.oauthbearer.sasl.oauthbearer.<name>`
(security/oauthbearer_settings.py)."""

from __future__ import annotations

from typing import Any

from contextplane.limits import INT_MAX

_PER_LISTENER = " (per listener: `listener.name.<listener>.oauthbearer.<this name>`)"

OAUTHBEARER_SETTINGS: tuple[dict[str, Any], ...] = (
    dict(
        name="sasl.oauthbearer.jwks.endpoint.url",
        attr="sasl_oauthbearer_jwks_url",
        unit="",
        meaning="the JWKS whose public keys sign OAUTHBEARER tokens: a `file://` path or an "
        "`http(s)://` URL (read at start, which fails without it, then cached); required "
        "with OAUTHBEARER, whose tokens must be signed (RS*, PS*, ES*, EdDSA)" + _PER_LISTENER,
        default_text="empty (none)",
    ),
    dict(
        name="sasl.oauthbearer.jwks.endpoint.refresh.ms",
        attr="sasl_oauthbearer_jwks_refresh_ms",
        unit="ms",
        meaning="the JWKS is read again this long after the last read (on the next "
        "authentication), and at once for a token naming an unknown key id; fetches are at "
        "least 10 s apart" + _PER_LISTENER,
        low=1,
        high=2**63 - 1,
    ),
    dict(
        name="sasl.oauthbearer.expected.issuer",
        attr="sasl_oauthbearer_expected_issuer",
        unit="",
        meaning="a token's `iss` claim must be this; required with OAUTHBEARER unless "
        "`sasl.oauthbearer.allow.unverified.issuer=true`" + _PER_LISTENER,
        default_text="empty (none)",
    ),
    dict(
        name="sasl.oauthbearer.expected.audience",
        attr="sasl_oauthbearer_expected_audience",
        unit="",
        meaning="a token's `aud` claim must name one of these (comma-separated); required "
        "with OAUTHBEARER unless `sasl.oauthbearer.allow.unverified.audience=true`" + _PER_LISTENER,
        default_text="empty (none)",
    ),
    dict(
        name="sasl.oauthbearer.allow.unverified.issuer",
        attr="sasl_oauthbearer_allow_unverified_issuer",
        unit="",
        meaning="accept tokens of any (or no) issuer when no issuer is expected: insecure"
        + _PER_LISTENER,
    ),
    dict(
        name="sasl.oauthbearer.allow.unverified.audience",
        attr="sasl_oauthbearer_allow_unverified_audience",
        unit="",
        meaning="accept tokens for any (or no) audience when none is expected: insecure"
        + _PER_LISTENER,
    ),
    dict(
        name="sasl.oauthbearer.clock.skew.seconds",
        attr="sasl_oauthbearer_clock_skew_seconds",
        unit="seconds",
        meaning="the difference allowed between the identity provider's clock and the "
        "broker's when checking a token's `exp` and `nbf`" + _PER_LISTENER,
        low=0,
        high=INT_MAX,
    ),
    dict(
        name="sasl.oauthbearer.sub.claim.name",
        attr="sasl_oauthbearer_sub_claim_name",
        unit="",
        meaning="the token claim whose value is the principal's name (`User:<value>`)"
        + _PER_LISTENER,
    ),
    dict(
        name="sasl.oauthbearer.scope.claim.name",
        attr="sasl_oauthbearer_scope_claim_name",
        unit="",
        meaning="the token claim holding its scopes (checked to be a string or a list of "
        "strings when present)" + _PER_LISTENER,
    ),
)
