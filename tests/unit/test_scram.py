"""The SCRAM server exchange: RFC 7677's SHA-256 test vector byte for byte, Kafka's
failures, and hostile tokens (only the two SASL failure kinds may escape)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contextplane.metadata.records import ScramCredentialRecord
from contextplane.security import scram
from contextplane.security.sasl_errors import SaslAuthenticationError, SaslInvalid
from tests.support.scram_client import ScramClient

# RFC 7677, section 3.
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def _rfc_credential() -> ScramCredentialRecord:
    salted = scram.salted_password(scram.SHA_256, "pencil", RFC_SALT, 4096)
    return scram.credential(scram.SHA_256, "user", RFC_SALT, salted, 4096)


def _server(
    records: dict[str, ScramCredentialRecord], mechanism: scram.ScramMechanism = scram.SHA_256
) -> scram.ScramServer:
    return scram.ScramServer(
        mechanism,
        lambda user, name: records.get(user) if name == mechanism.name else None,
        nonce=lambda: RFC_SERVER_NONCE,
    )


def test_rfc_7677_test_vector() -> None:
    server = _server({"user": _rfc_credential()})
    assert server.evaluate(RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    assert not server.complete
    assert server.evaluate(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL
    assert server.complete and server.username == "user"


def test_stored_credential_holds_no_password() -> None:
    record = scram.credential_from_password(scram.SHA_512, "alice", "alice-secret")
    assert record.iterations == 4096 and len(record.salt) == scram.SALT_BYTES
    stored = record.salt + record.stored_key + record.server_key
    assert b"alice-secret" not in stored
    salted = scram.salted_password(scram.SHA_512, "alice-secret", record.salt, 4096)
    assert salted not in stored


@pytest.mark.parametrize("mechanism", [scram.SHA_256, scram.SHA_512])
def test_a_client_authenticates_and_verifies_the_server(mechanism: scram.ScramMechanism) -> None:
    record = scram.credential_from_password(mechanism, "alice", "secret")
    server = scram.ScramServer(mechanism, lambda u, m: record if u == "alice" else None)
    client = ScramClient(mechanism.hash_name, "alice", "secret")
    server_first = server.evaluate(client.first())
    assert server_first.startswith(f"r={client.nonce}".encode())
    assert client.verify(server.evaluate(client.final(server_first)))
    assert server.username == "alice"


def test_wrong_password_fails_without_telling_why() -> None:
    record = scram.credential_from_password(scram.SHA_512, "alice", "secret")
    server = scram.ScramServer(scram.SHA_512, lambda u, m: record)
    client = ScramClient("sha512", "alice", "secret")
    server_first = server.evaluate(client.first())
    with pytest.raises(SaslInvalid) as failed:
        server.evaluate(client.final(server_first, password="guess"))
    # Logged and audited only (never sent): which user tried.
    assert str(failed.value) == 'Invalid client credentials (user "alice")'
    assert not server.complete


def test_unknown_user_fails_at_the_first_message() -> None:
    with pytest.raises(SaslInvalid) as failed:
        _server({}).evaluate(b"n,,n=nobody,r=abc")
    assert str(failed.value) == 'Authentication failed: Invalid user credentials (user "nobody")'


def test_the_user_name_in_a_reason_is_bounded_and_escaped() -> None:
    name = "evil\x1b[2J=2C" + "x" * 10_000
    with pytest.raises(SaslInvalid) as failed:
        _server({}).evaluate(f"n,,n={name},r=abc".encode())
    reason = str(failed.value)
    assert '(user "evil\\x1b[2J,xxx' in reason and "\x1b" not in reason
    assert reason.endswith('...(10009 chars)")') and len(reason) < 300


def test_authorization_id_must_be_the_user() -> None:
    with pytest.raises(SaslAuthenticationError, match="authorization id that is different") as e:
        _server({"user": _rfc_credential()}).evaluate(b"n,a=admin,n=user,r=abc")
    assert e.value.reason.endswith('user "user" requested the authorization id "admin"')
    server = _server({"user": _rfc_credential()})
    assert server.evaluate(b"n,a=user,n=user,r=abc").startswith(b"r=abc")


def test_token_authentication_is_refused_without_delegation_tokens() -> None:
    with pytest.raises(SaslInvalid, match="Token Authentication failed"):
        _server({"user": _rfc_credential()}).evaluate(b"n,,n=user,r=abc,tokenauth=true")


@pytest.mark.parametrize(
    "first",
    [
        b"y,,n=user,r=abc",  # channel binding supported by the client: not accepted
        b"p=tls-unique,,n=user,r=abc",  # channel binding required
        b"n,,n=user",  # no nonce
        b"n,,n=,r=abc",  # empty name
        b"n,,n=us,er,r=abc",
        b"",
        b"\xff\xfe",
    ],
)
def test_malformed_first_messages(first: bytes) -> None:
    with pytest.raises(SaslInvalid):
        _server({"user": _rfc_credential()}).evaluate(first)


def test_final_message_must_carry_the_servers_nonce_and_channel_binding() -> None:
    server = _server({"user": _rfc_credential()})
    server.evaluate(RFC_CLIENT_FIRST)
    with pytest.raises(SaslInvalid, match="nonce"):
        server.evaluate(RFC_CLIENT_FINAL.replace(b"k0,p", b"k1,p"))
    server = _server({"user": _rfc_credential()})
    server.evaluate(RFC_CLIENT_FIRST)
    with pytest.raises(SaslInvalid, match="channel binding"):
        server.evaluate(RFC_CLIENT_FINAL.replace(b"c=biws", b"c=eSws"))


def test_too_few_stored_iterations_fail() -> None:
    salted = scram.salted_password(scram.SHA_256, "pencil", RFC_SALT, 1000)
    weak = scram.credential(scram.SHA_256, "user", RFC_SALT, salted, 1000)
    with pytest.raises(SaslInvalid, match="less than the minimum 4096"):
        _server({"user": weak}).evaluate(RFC_CLIENT_FIRST)


def test_sasl_names_are_unescaped() -> None:
    record = scram.credential_from_password(scram.SHA_256, "a,b=c", "pw")
    server = scram.ScramServer(scram.SHA_256, lambda u, m: record if u == "a,b=c" else None)
    server.evaluate(b"n,,n=a=2Cb=3Dc,r=abc")
    assert server.username == "a,b=c"


def test_server_nonce_is_130_random_bits_in_base_36() -> None:
    nonces = {scram.server_nonce() for _ in range(50)}
    assert len(nonces) == 50
    assert all(set(n) <= set("0123456789abcdefghijklmnopqrstuvwxyz") for n in nonces)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.booleans(), st.lists(st.binary(max_size=200), min_size=1, max_size=3))
def test_fuzz_scram_tokens_fail_only_as_sasl_failures(
    after_valid_first: bool, tokens: list[bytes]
) -> None:
    """Garbage as the first message, or as the final one after a valid first message."""
    server = _server({"user": _rfc_credential()})
    if after_valid_first:
        server.evaluate(RFC_CLIENT_FIRST)
    for token in tokens:
        try:
            server.evaluate(token)
        except (SaslInvalid, SaslAuthenticationError):
            assert not server.complete
            return
