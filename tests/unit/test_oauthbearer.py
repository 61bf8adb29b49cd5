"""SASL/OAUTHBEARER's server side without a broker: the client's first message parsed
byte by byte with Kafka's grammar, tokens validated against a JWKS (signature, algorithm,
key id, issuer, audience, expiry, clock skew, principal claim) with a manual clock, the
key set's caching, refresh and rate-limited re-fetch, hostile input, and a fuzz case."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contextplane import limits
from contextplane.clock import ManualClock
from contextplane.security.jwks import Jwks, JwksError
from contextplane.security.jwt_validator import JwtValidator, TokenInvalid
from contextplane.security.oauthbearer import (
    INVALID_TOKEN,
    OAuthBearerServer,
    parse_client_first_message,
)
from contextplane.security.oauthbearer_settings import OAuthBearerConfig
from contextplane.security.sasl_authenticator import session_lifetime_ms
from contextplane.security.sasl_errors import SaslAuthenticationError, SaslInvalid
from tests.support.jwt_issuer import AUDIENCE, ISSUER, Issuer, JwksServer

ISSUER_KEYS = Issuer()  # key generation is slow: one issuer for the module


def first_message(token: str, authzid: str = "", extra: str = "") -> bytes:
    authz = f"a={authzid}" if authzid else ""
    return f"n,{authz},\x01auth=Bearer {token}\x01{extra}\x01".encode()


def validator(tmp_path: Path, clock: ManualClock, **changes: object) -> JwtValidator:
    jwks_file = ISSUER_KEYS.write_jwks(tmp_path / "jwks.json")
    fields: dict[str, object] = {
        "jwks_url": jwks_file.as_uri(),
        "expected_issuer": ISSUER,
        "expected_audience": (AUDIENCE,),
        **changes,
    }
    config = OAuthBearerConfig(**fields)  # type: ignore[arg-type]
    return JwtValidator(config, Jwks(config.jwks_url, config.jwks_refresh_ms, clock), clock)


def now_clock() -> ManualClock:
    import time

    return ManualClock(wall_ms=int(time.time() * 1000))


# The first message, byte by byte.


def test_first_message_parsed() -> None:
    parsed = parse_client_first_message(first_message("a.b.c", extra="traceId=42\x01"))
    assert parsed.token == "a.b.c" and parsed.authorization_id == ""
    assert parsed.extensions == {"traceId": "42"}
    with_authzid = parse_client_first_message(first_message("a.b.c", authzid="alice"))
    assert with_authzid.authorization_id == "alice"
    # The scheme is case-insensitive; several spaces may separate it from the token.
    assert parse_client_first_message(b"n,,\x01auth=bearer   x.y.z\x01\x01").token == "x.y.z"


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (b"", "Invalid OAUTHBEARER client first message"),
        (b"n,,\x01\x01", "'auth' not specified"),
        (b"n,,\x01host=h\x01\x01", "'auth' not specified"),
        (b"y,,\x01auth=Bearer a.b.c\x01\x01", "Invalid OAUTHBEARER client first message"),
        (b"n,,\x01auth=Bearer a.b.c\x01", "Invalid OAUTHBEARER client first message"),
        (b"n,,auth=Bearer a.b.c\x01\x01", "Invalid OAUTHBEARER client first message"),
        (b"n,,\x01auth=Basic a.b.c\x01\x01", "Invalid scheme"),
        (b"n,,\x01auth=Bearer\x01\x01", "invalid 'auth' format"),
        (b"n,,\x01auth=Bearer a b\x01\x01", "invalid 'auth' format"),
        (b"n,,\x01auth=Bearer a/b\x01\x01", "invalid 'auth' format"),
        (b"n,a=x,y,\x01auth=Bearer t\x01\x01", "Invalid OAUTHBEARER client first message"),
        (b"n,,\x01auth=Bearer t\x01k1=v\x01\x01", "Invalid OAUTHBEARER client first message"),
        (b"n,,\x01auth=Bearer t\x01k=\x00\x01\x01", "Invalid OAUTHBEARER client first message"),
        (b"\xff\xfe\x00garbage", "Invalid OAUTHBEARER client first message"),
    ],
)
def test_malformed_first_messages_are_refused(message: bytes, why: str) -> None:
    with pytest.raises(SaslInvalid, match=why):
        parse_client_first_message(message)


def test_a_huge_first_message_is_parsed_in_linear_time() -> None:
    # The SASL frame bound (sasl.server.max.receive.size) limits a token to 512 KiB;
    # the grammar has no nested repetition to backtrack on.
    token = "a" * (limits.SASL_RECEIVE_BYTES_MAX - 64)
    assert parse_client_first_message(first_message(token)).token == token
    with pytest.raises(SaslInvalid):
        parse_client_first_message(first_message(token) + b"\x01" * 100)


# Tokens validated against the JWKS.


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
def test_signed_tokens_are_valid(tmp_path: Path, kid: str) -> None:
    clock = now_clock()
    checked = validator(tmp_path, clock)
    token = ISSUER_KEYS.token("alice", kid=kid, now=clock.wall_ms() / 1000, scope="a b")
    valid = asyncio.run(checked.validate(token))
    assert valid.principal_name == "alice" and valid.scopes == ("a", "b")
    assert valid.expires_ms == (clock.wall_ms() // 1000 + 600) * 1000


def test_principal_claim_and_audience_list(tmp_path: Path) -> None:
    clock = now_clock()
    checked = validator(tmp_path, clock, sub_claim_name="client_id")
    token = ISSUER_KEYS.token(
        "ignored", now=clock.wall_ms() / 1000, client_id="svc-orders", aud=["x", AUDIENCE]
    )
    assert asyncio.run(checked.validate(token)).principal_name == "svc-orders"


def refusal(tmp_path: Path, token: str, clock: ManualClock | None = None, **changes: object) -> str:
    checked = validator(tmp_path, clock or now_clock(), **changes)
    with pytest.raises(TokenInvalid) as refused:
        asyncio.run(checked.validate(token))
    return str(refused.value)


def test_expiry_with_clock_skew(tmp_path: Path) -> None:
    clock = now_clock()
    now = clock.wall_ms() / 1000
    token = ISSUER_KEYS.token("alice", now=now - 620, lifetime_s=600)  # expired 20 s ago
    assert asyncio.run(validator(tmp_path, clock).validate(token)).principal_name == "alice"
    assert "expired" in refusal(tmp_path, token, clock, clock_skew_seconds=10)
    old = ISSUER_KEYS.token("alice", now=now - 700, lifetime_s=600)  # 100 s ago
    assert "expired" in refusal(tmp_path, old, clock)
    later = ISSUER_KEYS.token("alice", now=now, nbf=int(now) + 120)
    assert "not valid yet" in refusal(tmp_path, later, clock)


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        (
            {"iss": "https://other.test"},
            f'Issuer (iss) claim value "https://other.test" doesn\'t match expected value of '
            f'"{ISSUER}"',
        ),
        ({"iss": None}, f'No Issuer (iss) claim present but was expecting "{ISSUER}"'),
        (
            {"aud": ["other", "x"]},
            "Audience (aud) claim \"['other', 'x']\" doesn't contain an acceptable identifier."
            f" Expected one of \"['{AUDIENCE}']\" as an aud value.",
        ),
        ({"aud": [7]}, 'Audience (aud) claim "[7]" is not a string or a list of strings'),
        ({"aud": None}, "No Audience (aud) claim present."),
        ({"exp": None}, "no 'exp' claim"),
        ({"iat": None}, "no 'iat' claim"),
        ({"exp": "soon"}, ""),
        ({"sub": None}, "no 'sub' claim"),
        ({"sub": "  "}, "no 'sub' claim"),
        ({"sub": 42}, "no 'sub' claim that is a non-empty string (received \"42\")"),
        ({"scope": 7}, "'scope' claim is not a string or a list of strings (received \"7\")"),
    ],
)
def test_claims_are_checked(tmp_path: Path, claims: dict[str, object], why: str) -> None:
    assert why in refusal(tmp_path, ISSUER_KEYS.token(**{"sub": "alice", **claims}))


def test_a_claim_quoted_in_a_reason_is_bounded_and_escaped(tmp_path: Path) -> None:
    hostile = "evil\n\x1b[31m" + "x" * 100_000
    why = refusal(tmp_path, ISSUER_KEYS.token("alice", iss=hostile))
    assert "\n" not in why and "\x1b" not in why and len(why) < 600
    assert 'Issuer (iss) claim value "evil\\n\\x1b[31mxxx' in why
    assert "(100010 chars)" in why


def test_unverified_issuer_and_audience_only_when_allowed(tmp_path: Path) -> None:
    token = ISSUER_KEYS.token("alice", iss=None, aud=None)
    checked = validator(
        tmp_path,
        now_clock(),
        expected_issuer="",
        expected_audience=(),
        allow_unverified_issuer=True,
        allow_unverified_audience=True,
    )
    assert asyncio.run(checked.validate(token)).principal_name == "alice"


def test_forged_tokens_are_refused(tmp_path: Path) -> None:
    good = ISSUER_KEYS.token("alice")
    header, payload, signature = good.split(".")
    other = ISSUER_KEYS.token("mallory").split(".")[1]
    assert "InvalidSignatureError" in refusal(tmp_path, f"{header}.{other}.{signature}")
    assert "algorithm 'none'" in refusal(tmp_path, ISSUER_KEYS.unsigned_token())
    assert "algorithm 'HS256'" in refusal(tmp_path, ISSUER_KEYS.hmac_with_public_key())
    stranger = Issuer()
    assert "InvalidSignatureError" in refusal(tmp_path, stranger.token("alice"))
    stranger.add_key("rsa-9", "RS256")
    assert "no key with id 'rsa-9'" in refusal(tmp_path, stranger.token("alice", kid="rsa-9"))
    # The header's algorithm must fit the key it names.
    _, rsa_key = ISSUER_KEYS.keys["rsa-1"]
    claims = jwt.decode(good, options={"verify_signature": False})
    mismatched = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "ec-1"})
    assert "key 'ec-1' is not a RS256 key" in refusal(tmp_path, mismatched)


@pytest.mark.parametrize(
    "token", ["", "garbage", "a.b.c", "a" * 100_000, "..", "e30.e30.", "eyJhbGciOiJSUzI1NiJ9.x.y"]
)
def test_hostile_tokens_are_refused(tmp_path: Path, token: str) -> None:
    assert refusal(tmp_path, token)


# The exchange.


def exchange(tmp_path: Path, clock: ManualClock) -> OAuthBearerServer:
    return OAuthBearerServer(validator(tmp_path, clock))


def test_exchange_success_sets_principal_and_expiry(tmp_path: Path) -> None:
    clock = now_clock()
    server = exchange(tmp_path, clock)
    token = ISSUER_KEYS.token("alice", now=clock.wall_ms() / 1000)
    assert asyncio.run(server.evaluate(first_message(token, authzid="alice"))) == b""
    assert server.complete and server.username == "alice"
    assert server.credential_expires_ms == (clock.wall_ms() // 1000 + 600) * 1000


def test_exchange_refusal_is_kafkas_error_challenge_then_failure(tmp_path: Path) -> None:
    server = exchange(tmp_path, now_clock())
    expired = ISSUER_KEYS.token("alice", lifetime_s=-3600)
    challenge = asyncio.run(server.evaluate(first_message(expired)))
    assert json.loads(challenge) == {"status": "invalid_token"}
    assert not server.complete
    with pytest.raises(SaslAuthenticationError) as failed:
        asyncio.run(server.evaluate(b"\x01"))
    assert str(failed.value) == INVALID_TOKEN and "expired" in failed.value.reason


def test_exchange_refuses_a_second_token_after_the_error(tmp_path: Path) -> None:
    server = exchange(tmp_path, now_clock())
    asyncio.run(server.evaluate(first_message(ISSUER_KEYS.unsigned_token())))
    with pytest.raises(SaslAuthenticationError):
        asyncio.run(server.evaluate(first_message(ISSUER_KEYS.token("alice"))))


def test_exchange_refuses_another_authorization_id(tmp_path: Path) -> None:
    server = exchange(tmp_path, now_clock())
    with pytest.raises(SaslAuthenticationError, match="authorization id"):
        asyncio.run(server.evaluate(first_message(ISSUER_KEYS.token("alice"), authzid="bob")))


def test_session_lifetime_is_capped_by_the_token() -> None:
    assert session_lifetime_ms(0, None, 1000) is None
    assert session_lifetime_ms(5000, None, 1000) == 5000
    assert session_lifetime_ms(0, 61_000, 1000) == 60_000
    assert session_lifetime_ms(5000, 61_000, 1000) == 5000
    assert session_lifetime_ms(90_000, 61_000, 1000) == 60_000
    assert session_lifetime_ms(5000, 500, 1000) == 0


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.text(max_size=200).map(first_message),
            st.sampled_from([b"\x01", first_message(ISSUER_KEYS.unsigned_token())]),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_fuzzed_messages_fail_cleanly(
    tmp_path_factory: pytest.TempPathFactory, tokens: list[bytes]
) -> None:
    # Whatever the client sends: a challenge, or one of the two SASL failures.
    server = FUZZ_SERVER.get(tmp_path_factory)
    fresh = OAuthBearerServer(server)
    for token in tokens:
        try:
            asyncio.run(fresh.evaluate(token))
        except (SaslInvalid, SaslAuthenticationError):
            return
    assert not fresh.complete


class _FuzzServer:
    def __init__(self) -> None:
        self._validator: JwtValidator | None = None

    def get(self, factory: pytest.TempPathFactory) -> JwtValidator:
        if self._validator is None:
            self._validator = validator(factory.mktemp("fuzz"), now_clock())
        return self._validator


FUZZ_SERVER = _FuzzServer()


# The key set: cached, refreshed, re-fetched for an unknown key id at a bounded rate.


def test_jwks_refetch_for_an_unknown_kid_is_rate_limited(tmp_path: Path) -> None:
    clock = now_clock()
    path = ISSUER_KEYS.write_jwks(tmp_path / "jwks.json", ["rsa-1"])
    key_set = Jwks(path.as_uri(), 3_600_000, clock)
    asyncio.run(key_set.load())
    assert key_set.fetches == 1
    ISSUER_KEYS.write_jwks(path)  # the provider adds ec-1
    asyncio.run(key_set.keys("ec-1"))
    assert key_set.fetches == 1  # too soon after the last fetch
    clock.advance(limits.JWKS_REFETCH_MIN_INTERVAL_MS)
    assert {key.kid for key in asyncio.run(key_set.keys("ec-1"))} == {"rsa-1", "ec-1"}
    assert key_set.fetches == 2
    clock.advance(limits.JWKS_REFETCH_MIN_INTERVAL_MS)
    for _ in range(5):
        asyncio.run(key_set.keys("made-up"))
    assert key_set.fetches == 3  # once, not five times
    asyncio.run(key_set.keys("rsa-1"))  # a known kid: no fetch before the refresh is due
    assert key_set.fetches == 3
    clock.advance(3_600_000)
    asyncio.run(key_set.keys("rsa-1"))
    assert key_set.fetches == 4


def test_jwks_failures_keep_the_keys(tmp_path: Path) -> None:
    clock = now_clock()
    path = ISSUER_KEYS.write_jwks(tmp_path / "jwks.json")
    key_set = Jwks(path.as_uri(), 1, clock)
    asyncio.run(key_set.load())
    path.write_text("{not json")
    clock.advance(limits.JWKS_REFETCH_MIN_INTERVAL_MS)
    assert len(asyncio.run(key_set.keys("rsa-1"))) == 2
    assert key_set.fetches == 2


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (b"{not json", "not JSON"),
        (b"[]", 'no "keys" array'),
        (json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).encode(), "no usable"),
        (json.dumps({"keys": [{"kty": "RSA", "n": "x"}]}).encode(), "no usable"),
        (b" " * (limits.JWKS_BYTES_MAX + 1), "larger than"),
    ],
)
def test_unusable_jwks_stops_the_load(tmp_path: Path, document: bytes, why: str) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(document)
    with pytest.raises(JwksError, match=why):
        asyncio.run(Jwks(path.as_uri(), 1000, now_clock()).load())


def test_jwks_over_http(tmp_path: Path) -> None:
    server = JwksServer(json.dumps(ISSUER_KEYS.jwks()).encode())
    with server.running():
        key_set = Jwks(server.url, 3_600_000, now_clock())
        asyncio.run(key_set.load())
        assert server.requests == 1
        assert {key.kid for key in asyncio.run(key_set.keys("rsa-1"))} == {"rsa-1", "ec-1"}
        assert server.requests == 1  # cached
    with pytest.raises(JwksError, match="could not be read"):
        asyncio.run(Jwks(server.url, 1000, now_clock()).load())  # the server is gone


def test_jwks_over_http_is_bounded_in_size_and_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = JwksServer(b" " * (limits.JWKS_BYTES_MAX + 1))
    with server.running():
        with pytest.raises(JwksError, match="larger than"):
            asyncio.run(Jwks(server.url, 1000, now_clock()).load())
        monkeypatch.setattr(limits, "JWKS_FETCH_TIMEOUT_MS", 200)
        server.answering.clear()  # the provider stalls
        with pytest.raises(JwksError, match="timed out"):
            asyncio.run(Jwks(server.url, 1000, now_clock()).load())


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": float("nan")},
        {"exp": float("inf")},
        {"exp": 1e300},
        {"exp": 2**62},
        {"iat": float("nan")},
        {"nbf": float("nan")},
        {"nbf": float("-inf")},
    ],
)
def test_times_that_are_not_finite_or_not_plausible_are_refused(
    tmp_path: Path, claims: dict[str, object]
) -> None:
    # A NaN `nbf` would pass its comparison; a huge `exp` overflowed the session lifetime.
    token = ISSUER_KEYS.token("alice", **claims)
    assert "is not a time in seconds" in refusal(tmp_path, token)


def test_a_jwks_nested_too_deep_is_an_error_not_a_crash() -> None:
    from contextplane.security.jwks import JwksError, parse_jwks

    with pytest.raises(JwksError, match="not JSON"):
        parse_jwks(b"[" * 200_000 + b"]" * 200_000)
