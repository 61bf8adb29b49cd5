"""An OAUTHBEARER token checked as Kafka 4.4's BrokerJwtValidator checks it: a signed
JWT (JWS compact form) whose signature verifies with a key of the listener's JWKS, with
an expiry (`exp`) and an issue time (`iat`), not expired and not before its `nbf` give or
take `sasl.oauthbearer.clock.skew.seconds`, its issuer and audience the expected ones, and
a principal claim (`sasl.oauthbearer.sub.claim.name`, `sub` by default) that is a
non-empty string. PyJWT parses the token and checks the signature; times are read from
the broker's Clock.

Only asymmetric algorithms are accepted (RS*, PS*, ES*, EdDSA): `alg: none` and HMAC
(`HS*`) are refused before any key is looked at, so a public key can never be used as
an HMAC secret. A token without `kid` is checked with the one key of the set that fits
its algorithm, if there is exactly one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from contextplane.clock import Clock
from contextplane.logsafe import quoted_bounded
from contextplane.security.jwks import Jwks, VerificationKey
from contextplane.security.oauthbearer_settings import OAuthBearerConfig

# alg -> (kty, crv)
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}


class TokenInvalid(Exception):
    """The token is refused; the message says why (logged, never sent to the client)."""


@dataclass(frozen=True)
class ValidToken:
    principal_name: str
    expires_ms: int  # wall-clock epoch ms of `exp`
    scopes: tuple[str, ...]


def _fits(key: VerificationKey, alg: str) -> bool:
    kty, crv = ALGORITHMS[alg]
    return key.kty == kty and (crv is None or key.crv == crv) and key.alg in (None, alg)


# 9999-12-31T23:59:59Z: later NumericDate values are refused.
_LATEST_TIME_S = 253_402_300_799


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if value is None:
        raise TokenInvalid(f"no {name!r} claim")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenInvalid(f"the {name!r} claim is not a number")
    # NaN compares false with everything (an `nbf` of NaN would pass its check) and a huge
    # value overflows the session lifetime: a time is finite and before the year 10000.
    if not math.isfinite(value) or abs(value) > _LATEST_TIME_S:
        raise TokenInvalid(f"the {name!r} claim is not a time in seconds: {value!r}"[:200])
    return float(value)


def _scopes(claims: dict[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise TokenInvalid(
        f"the {name!r} claim is not a string or a list of strings (received {_shown(value)})"
    )


# A claim value quoted in a reason (log line, audit record) is cut to this many characters.
SHOWN_CHARS_MAX = 128


def _shown(value: object) -> str:
    return quoted_bounded(value, SHOWN_CHARS_MAX)


def _check_issuer(claims: dict[str, Any], expected: str) -> None:
    """As jose4j's IssValidator (Kafka's validator): `iss` equal to the expected issuer."""
    if not expected:
        return  # sasl.oauthbearer.allow.unverified.issuer
    if "iss" not in claims:
        raise TokenInvalid(f"No Issuer (iss) claim present but was expecting {_shown(expected)}")
    received = claims["iss"]
    if received != expected:
        raise TokenInvalid(
            f"Issuer (iss) claim value {_shown(received)} doesn't match expected value of "
            f"{_shown(expected)}"
        )


def _check_audience(claims: dict[str, Any], expected: tuple[str, ...]) -> None:
    """As jose4j's AudValidator: `aud` (a string or a list of strings) holds one of the
    expected audiences."""
    if not expected:
        return  # sasl.oauthbearer.allow.unverified.audience
    if "aud" not in claims:
        raise TokenInvalid("No Audience (aud) claim present.")
    received = claims["aud"]
    audiences = [received] if isinstance(received, str) else received
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise TokenInvalid(
            f"Audience (aud) claim {_shown(received)} is not a string or a list of strings"
        )
    if not set(audiences) & set(expected):
        raise TokenInvalid(
            f"Audience (aud) claim {_shown(audiences)} doesn't contain an acceptable "
            f"identifier. Expected one of {_shown(list(expected))} as an aud value."
        )


class JwtValidator:
    def __init__(self, config: OAuthBearerConfig, jwks: Jwks, clock: Clock) -> None:
        self._config = config
        self._jwks = jwks
        self._clock = clock

    async def validate(self, token: str) -> ValidToken:
        import jwt  # PyJWT and cryptography: ~0.1 s, loaded only where a token is checked

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"not a signed JWT: {exc}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise TokenInvalid(f"algorithm {alg!r} is not accepted (only {', '.join(ALGORITHMS)})")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenInvalid("the 'kid' header is not a string")
        key = self._choose(await self._jwks.keys(kid), kid, alg)
        claims = self._verified_claims(token, key, alg)
        return self._checked(claims)

    def _choose(self, keys: list[VerificationKey], kid: str | None, alg: str) -> Any:
        if kid is not None:
            named = [key for key in keys if key.kid == kid]
            if not named:
                raise TokenInvalid(f"no key with id {kid!r} in {self._jwks.url}")
            if not _fits(named[0], alg):
                raise TokenInvalid(f"key {kid!r} is not a {alg} key")
            return named[0].key
        fitting = [key for key in keys if _fits(key, alg)]
        if len(fitting) != 1:
            raise TokenInvalid(f"no 'kid' header and {len(fitting)} {alg} keys in the set")
        return fitting[0].key

    def _verified_claims(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        import jwt

        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                options={
                    # Checked below: times with the broker's clock, issuer and audience
                    # with messages that say what was expected and what was received.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,  # the principal claim, checked below
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"{type(exc).__name__}: {exc}") from None
        return claims

    def _checked(self, claims: dict[str, Any]) -> ValidToken:
        config = self._config
        _check_issuer(claims, config.expected_issuer)
        _check_audience(claims, config.expected_audience)
        now_s = self._clock.wall_ms() / 1000
        skew = config.clock_skew_seconds
        expires = _number(claims, "exp")
        _number(claims, "iat")
        if now_s > expires + skew:
            raise TokenInvalid(
                f"expired: the Expiration Time (exp) claim {expires:.0f} is before the "
                f"evaluation time {now_s:.0f} by more than the allowed {skew} seconds of "
                "clock skew"
            )
        if "nbf" in claims and now_s + skew < (not_before := _number(claims, "nbf")):
            raise TokenInvalid(
                f"not valid yet: the Not Before (nbf) claim {not_before:.0f} is after the "
                f"evaluation time {now_s:.0f} by more than the allowed {skew} seconds of "
                "clock skew"
            )
        subject = claims.get(config.sub_claim_name)
        if not isinstance(subject, str) or not subject.strip():
            raise TokenInvalid(
                f"no {config.sub_claim_name!r} claim that is a non-empty string (received "
                f"{_shown(subject)})"
            )
        return ValidToken(
            subject.strip(),
            int(expires * 1000),
            _scopes(claims, config.scope_claim_name),
        )
