"""SASL/PLAIN as Kafka's PlainSaslServer answers it: messages, authorization id, and
hostile tokens."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contextplane.security.sasl_errors import SaslAuthenticationError
from contextplane.security.sasl_plain import PlainServer

USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def test_user_and_password_authenticate() -> None:
    server = PlainServer(USERS)
    assert server.evaluate(b"\x00alice\x00alice-secret") == b""
    assert server.complete and server.username == "alice"


def test_authorization_id_equal_to_the_user_is_accepted() -> None:
    server = PlainServer(USERS)
    server.evaluate(b"alice\x00alice\x00alice-secret")
    assert server.username == "alice"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (b"\x00alice\x00wrong", "Authentication failed: Invalid username or password"),
        (b"\x00mallory\x00alice-secret", "Authentication failed: Invalid username or password"),
        (b"\x00\x00secret", "Authentication failed: username not specified"),
        (b"\x00alice\x00", "Authentication failed: password not specified"),
        (b"alice-secret", "Invalid SASL/PLAIN response: expected 3 tokens, got 1"),
        (b"a\x00b\x00c\x00d", "Invalid SASL/PLAIN response: expected 3 tokens, got 4"),
        (
            b"bob\x00alice\x00alice-secret",
            "Authentication failed: Client requested an authorization id that is different "
            "from username",
        ),
    ],
)
def test_kafkas_failures(token: bytes, message: str) -> None:
    server = PlainServer(USERS)
    with pytest.raises(SaslAuthenticationError) as raised:
        server.evaluate(token)
    assert str(raised.value) == message
    assert not server.complete and server.username is None


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=300))
def test_fuzz_plain_tokens_fail_only_as_authentication_failures(token: bytes) -> None:
    server = PlainServer(USERS)
    try:
        server.evaluate(token)
    except SaslAuthenticationError:
        assert not server.complete
        return
    assert server.username in USERS
