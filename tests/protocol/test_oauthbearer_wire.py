"""SASL/OAUTHBEARER on the wire, byte by byte: Kafka's error challenge for a refused token
and the failure that follows the client's \\x01, the generic failure for a malformed first
message, the session lifetime capped by the token's expiry (KIP-368) and enforced, and
re-authentication with a new token of the same principal."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contextplane.protocol.error_codes import ErrorCode
from tests.support.inprocess import InProcessBroker
from tests.support.jwt_issuer import AUDIENCE, ISSUER, Issuer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

SASL_HANDSHAKE, SASL_AUTHENTICATE, METADATA = 17, 36, 3
ISSUER_KEYS = Issuer()


def oauth_broker(tmp_path: Path, **extra: str) -> InProcessBroker:
    settings = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "OAUTHBEARER",
        "sasl.oauthbearer.jwks.endpoint.url": ISSUER_KEYS.write_jwks(
            tmp_path / "jwks.json"
        ).as_uri(),
        "sasl.oauthbearer.expected.issuer": ISSUER,
        "sasl.oauthbearer.expected.audience": AUDIENCE,
        "connection.failed.authentication.delay.ms": "0",
        **extra,
    }
    return InProcessBroker(tmp_path / "data", settings=settings).start()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[InProcessBroker]:
    running = oauth_broker(tmp_path)
    yield running
    running.stop()


def first_message(token: str) -> bytes:
    return f"n,,\x01auth=Bearer {token}\x01\x01".encode()


def login(client: RawClient, token: str) -> object:
    handshake = client.request(SASL_HANDSHAKE, 1, mechanism="OAUTHBEARER")
    assert handshake.error_code == ErrorCode.none
    assert list(handshake.mechanisms) == ["OAUTHBEARER"]
    return client.request(SASL_AUTHENTICATE, 2, auth_bytes=first_message(token))


def test_a_token_logs_in_with_its_remaining_lifetime(broker: InProcessBroker) -> None:
    with RawClient(broker.bootstrap) as client:
        done = login(client, ISSUER_KEYS.token("alice", lifetime_s=120))
        assert done.error_code == ErrorCode.none  # type: ignore[attr-defined]
        assert done.auth_bytes == b""  # type: ignore[attr-defined]
        # No connections.max.reauth.ms: the session ends when the token does (Kafka's
        # SaslServerAuthenticator takes the credential's lifetime).
        lifetime = done.session_lifetime.total_seconds()  # type: ignore[attr-defined]
        assert 100 < lifetime <= 120
        assert client.request(METADATA, 12, topics=[]).brokers
    assert 'mechanism="OAUTHBEARER" result=SUCCESS' in broker.log_tail(50)
    assert 'principal="User:alice"' in broker.log_tail(50)


def test_a_refused_token_gets_kafkas_error_challenge_then_fails(broker: InProcessBroker) -> None:
    with RawClient(broker.bootstrap) as client:
        challenge = login(client, ISSUER_KEYS.token("alice", lifetime_s=-3600))
        assert challenge.error_code == ErrorCode.none  # type: ignore[attr-defined]
        assert json.loads(challenge.auth_bytes) == {"status": "invalid_token"}  # type: ignore[attr-defined]
        final = client.request(SASL_AUTHENTICATE, 2, auth_bytes=b"\x01")
        assert final.error_code == ErrorCode.sasl_authentication_failed
        assert final.error_message == '{"status":"invalid_token"}'
        assert client.closed_by_broker()
    failures = [line for line in broker.log_tail(50).splitlines() if "FAILED" in line]
    assert len(failures) == 1 and "expired: the Expiration Time (exp) claim" in failures[0]


@pytest.mark.parametrize(
    "message", [b"", b"garbage", b"n,,\x01\x01", b"n,,\x01auth=Bearer\x01\x01", b"\x00" * 4096]
)
def test_a_malformed_first_message_is_kafkas_generic_failure(
    broker: InProcessBroker, message: bytes
) -> None:
    with RawClient(broker.bootstrap) as client:
        client.request(SASL_HANDSHAKE, 1, mechanism="OAUTHBEARER")
        final = client.request(SASL_AUTHENTICATE, 2, auth_bytes=message)
        assert final.error_code == ErrorCode.sasl_authentication_failed
        assert final.error_message == (
            "Authentication failed during authentication due to invalid credentials with "
            "SASL mechanism OAUTHBEARER"
        )
        assert client.closed_by_broker()


def test_session_lifetime_is_the_smaller_of_reauth_and_token(tmp_path: Path) -> None:
    broker = oauth_broker(tmp_path, **{"connections.max.reauth.ms": "5000"})
    try:
        with RawClient(broker.bootstrap) as client:
            done = login(client, ISSUER_KEYS.token("alice", lifetime_s=600))
            assert done.session_lifetime.total_seconds() == 5  # type: ignore[attr-defined]
            # Re-authentication with a fresh token of the same principal: a new session.
            again = login(client, ISSUER_KEYS.token("alice", lifetime_s=3))
            assert again.error_code == ErrorCode.none  # type: ignore[attr-defined]
            assert 0 < again.session_lifetime.total_seconds() <= 3  # type: ignore[attr-defined]
            assert client.request(METADATA, 12, topics=[]).brokers

            def closed_after_expiry() -> bool:
                try:
                    client.request(METADATA, 12, topics=[])
                except (ConnectionError, OSError):
                    return True
                return False

            # The token expired: the connection is closed on its next request.
            wait_until(closed_after_expiry, 15, "the session closed at the token's expiry")
        with RawClient(broker.bootstrap) as client:
            login(client, ISSUER_KEYS.token("alice"))
            other = login(client, ISSUER_KEYS.token("bob"))
            assert other.error_code == ErrorCode.sasl_authentication_failed  # type: ignore[attr-defined]
            assert "Cannot change principals" in other.error_message  # type: ignore[attr-defined]
    finally:
        broker.stop()


def test_a_token_close_to_expiry_still_gets_a_bounded_session(broker: InProcessBroker) -> None:
    # Within the clock skew an expired token is valid; its session lifetime is 0, so the
    # next request (not a re-authentication) closes the connection, as in Kafka.
    token = ISSUER_KEYS.token("alice", now=time.time() - 610, lifetime_s=600)
    with RawClient(broker.bootstrap) as client:
        done = login(client, token)
        assert done.error_code == ErrorCode.none  # type: ignore[attr-defined]
        assert done.session_lifetime.total_seconds() == 0  # type: ignore[attr-defined]
        client.send(METADATA, 12, topics=[])
        assert client.closed_by_broker()


def test_a_token_above_the_sasl_frame_bound_closes_before_it_is_read(
    broker: InProcessBroker,
) -> None:
    # sasl.server.max.receive.size (512 KiB) bounds every frame until authentication
    # completes, re-authentication included: a huge token is never allocated or parsed.
    with RawClient(broker.bootstrap) as client:
        client.request(SASL_HANDSHAKE, 1, mechanism="OAUTHBEARER")
        client.send(SASL_AUTHENTICATE, 2, auth_bytes=first_message("a" * 600_000))
        assert client.closed_by_broker()
    assert "sasl.server.max.receive.size=524288" in broker.log_tail(50)
