"""The SCRAM client `contextplane mirror` logs in with refuses a server's first message
that does not extend its nonce or asks for more iterations than Kafka allows, and escapes
the user name as RFC 5802 asks; the mirror's security settings refuse a SASL mechanism its
raw connections cannot speak."""

from __future__ import annotations

import base64

import pytest

from contextplane.cli.wire_security import Security, SecurityError
from contextplane.security.scram_client import ITERATIONS_MAX, ScramClient, ScramError

SALT = base64.b64encode(b"salt").decode()


def test_a_server_nonce_that_does_not_extend_the_clients_is_refused() -> None:
    client = ScramClient("sha256", "alice", "secret", nonce="abc")
    with pytest.raises(ScramError, match="nonce"):
        client.final(f"r=xyz123,s={SALT},i=4096".encode())
    with pytest.raises(ScramError, match="nonce"):
        client.final(f"r=abc,s={SALT},i=4096".encode())  # nothing of the server's


def test_too_many_iterations_and_a_malformed_message_are_refused() -> None:
    client = ScramClient("sha512", "alice", "secret", nonce="abc")
    with pytest.raises(ScramError, match=str(ITERATIONS_MAX + 1)):
        client.final(f"r=abcdef,s={SALT},i={ITERATIONS_MAX + 1}".encode())
    with pytest.raises(ScramError, match="malformed"):
        client.final(b"r=abcdef,s=%%%,i=4096")
    assert client.final(f"r=abcdef,s={SALT},i=4096".encode()).startswith(b"c=biws,r=abcdef,p=")


def test_the_user_name_is_escaped() -> None:
    assert ScramClient("sha256", "a=b,c", "secret", nonce="n").first() == b"n,,n=a=3Db=2Cc,r=n"


def test_a_mechanism_the_raw_connection_cannot_speak_is_refused() -> None:
    with pytest.raises(SecurityError, match="sasl.mechanism=OAUTHBEARER"):
        Security.from_config({"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"})
    scram = Security.from_config(
        {"security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512"}
    )
    assert (scram.tls, scram.mechanism, scram.check_hostname) == (True, "SCRAM-SHA-512", True)
    plain = Security.from_config({"ssl.endpoint.identification.algorithm": "none"})
    assert (plain.tls, plain.mechanism, plain.check_hostname) == (False, "", False)
