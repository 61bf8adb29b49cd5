"""SASL on the wire, byte by byte, against a broker with a SASL_PLAINTEXT listener: the
handshake states as Kafka's SaslServerAuthenticator drives them, the SCRAM and PLAIN
exchanges, Kafka's errors, hostile tokens and frames, re-authentication (KIP-368), and
the principal reaching the authorizer."""

from __future__ import annotations

import io
import json
import re
import select
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from contextplane.cli.main import main as cli
from contextplane.protocol.error_codes import ErrorCode
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.scram_client import ScramClient
from tests.support.wait import wait_until

SASL_HANDSHAKE, SASL_AUTHENTICATE, API_VERSIONS, METADATA = 17, 36, 18, 3
PLAIN_JAAS = (
    'org.apache.kafka.common.security.plain.PlainLoginModule required user_carol="carol-secret";'
)
GENERIC = (
    "Authentication failed during authentication due to invalid credentials with SASL "
    "mechanism SCRAM-SHA-512"
)


def add_user(data_dir: Path, name: str, password: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert cli(["users", "add", name, "--data-dir", str(data_dir), "--password-stdin"]) == 0


def sasl_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **extra: str) -> InProcessBroker:
    add_user(tmp_path, "alice", "alice-secret", monkeypatch)
    settings = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "connection.failed.authentication.delay.ms": "0",
        **extra,
    }
    return InProcessBroker(tmp_path, settings=settings).start()


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcessBroker]:
    running = sasl_broker(tmp_path, monkeypatch)
    yield running
    running.stop()


def scram_login(client: RawClient, user: str = "alice", password: str = "alice-secret") -> object:
    handshake = client.request(SASL_HANDSHAKE, 1, mechanism="SCRAM-SHA-512")
    assert handshake.error_code == ErrorCode.none
    scram = ScramClient("sha512", user, password)
    first = client.request(SASL_AUTHENTICATE, 2, auth_bytes=scram.first())
    assert first.error_code == ErrorCode.none, first.error_message
    final = client.request(SASL_AUTHENTICATE, 2, auth_bytes=scram.final(first.auth_bytes))
    if final.error_code == ErrorCode.none:
        assert scram.verify(final.auth_bytes)
    return final


def test_scram_login_then_requests(broker: InProcessBroker) -> None:
    with RawClient(broker.bootstrap) as client:
        versions = client.request(API_VERSIONS, 3, client_software_name="t")
        keys = {k.api_key: (k.min_version, k.max_version) for k in versions.api_keys}
        assert keys[SASL_HANDSHAKE] == (0, 1) and keys[SASL_AUTHENTICATE] == (0, 2)
        handshake = client.request(SASL_HANDSHAKE, 1, mechanism="SCRAM-SHA-512")
        assert list(handshake.mechanisms) == ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
        scram = ScramClient("sha512", "alice", "alice-secret")
        first = client.request(SASL_AUTHENTICATE, 2, auth_bytes=scram.first())
        final = client.request(SASL_AUTHENTICATE, 2, auth_bytes=scram.final(first.auth_bytes))
        assert final.error_code == ErrorCode.none and scram.verify(final.auth_bytes)
        assert final.session_lifetime.total_seconds() == 0  # no connections.max.reauth.ms
        assert client.request(METADATA, 12, topics=[]).brokers
        # Authenticated: SASL requests are ILLEGAL_SASL_STATE, as KafkaApis answers them.
        again = client.request(SASL_HANDSHAKE, 1, mechanism="SCRAM-SHA-512")
        assert again.error_code == ErrorCode.illegal_sasl_state
        late = client.request(SASL_AUTHENTICATE, 2, auth_bytes=b"x")
        assert late.error_code == ErrorCode.illegal_sasl_state
        assert client.request(METADATA, 12, topics=[]).brokers
    assert re.search(
        r'audit authentication mechanism="SCRAM-SHA-512" result=SUCCESS .* principal="User:alice"',
        broker.log_tail(200),
    )


def test_plain_login(broker: InProcessBroker) -> None:
    with RawClient(broker.bootstrap) as client:
        assert client.request(SASL_HANDSHAKE, 1, mechanism="PLAIN").error_code == 0
        done = client.request(SASL_AUTHENTICATE, 0, auth_bytes=b"\x00carol\x00carol-secret")
        assert done.error_code == ErrorCode.none
        assert client.request(METADATA, 12, topics=[]).brokers


def test_wrong_scram_password_fails_with_kafkas_message_and_closes(
    broker: InProcessBroker,
) -> None:
    with RawClient(broker.bootstrap) as client:
        final = scram_login(client, password="guess")
        assert final.error_code == ErrorCode.sasl_authentication_failed
        assert final.error_message == GENERIC
        assert client.closed_by_broker()
    assert "result=SASL_AUTHENTICATION_FAILED" in broker.log_tail(200)


def test_the_close_after_a_failed_login_does_not_arrive_with_its_answer(
    broker: InProcessBroker,
) -> None:
    """The broker closes a failed login's connection once the client has had the answer:
    a client reading the answer and the close in one batch (kafka-python 3.0) would
    otherwise report "socket disconnected" and not the login's error. Bytes sent
    meanwhile are not answered; the broker closes by itself within the linger."""
    with RawClient(broker.bootstrap) as client:
        final = scram_login(client, password="guess")
        assert final.error_code == ErrorCode.sasl_authentication_failed
        readable, _, _ = select.select([client.sock], [], [], 0.3)
        assert not readable, "the close arrived with the failed login's answer"
        client.send(API_VERSIONS, 3, client_software_name="x", client_software_version="1")
        client.sock.settimeout(5)
        assert client.sock.recv(65536) == b"", "answered after the failed login"


def test_wrong_plain_password_fails_with_kafkas_message(broker: InProcessBroker) -> None:
    with RawClient(broker.bootstrap) as client:
        client.request(SASL_HANDSHAKE, 1, mechanism="PLAIN")
        done = client.request(SASL_AUTHENTICATE, 1, auth_bytes=b"\x00carol\x00nope")
        assert done.error_code == ErrorCode.sasl_authentication_failed
        assert done.error_message == "Authentication failed: Invalid username or password"
        assert client.closed_by_broker()


def test_unsupported_mechanism_lists_the_enabled_ones_and_closes(
    broker: InProcessBroker,
) -> None:
    with RawClient(broker.bootstrap) as client:
        answer = client.request(SASL_HANDSHAKE, 1, mechanism="GSSAPI")
        assert answer.error_code == ErrorCode.unsupported_sasl_mechanism
        assert list(answer.mechanisms) == ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
        assert client.closed_by_broker()


@pytest.mark.parametrize(
    ("api_key", "version", "fields"),
    [
        (METADATA, 12, {"topics": []}),  # before authentication
        (SASL_AUTHENTICATE, 2, {"auth_bytes": b"n,,n=alice,r=x"}),  # before the handshake
    ],
)
def test_requests_out_of_order_close_the_connection(
    broker: InProcessBroker, api_key: int, version: int, fields: dict[str, object]
) -> None:
    with RawClient(broker.bootstrap) as client:
        client.send(api_key, version, **fields)
        assert client.closed_by_broker()


def test_a_request_between_handshake_and_authentication_closes(broker: InProcessBroker) -> None:
    with RawClient(broker.bootstrap) as client:
        client.request(SASL_HANDSHAKE, 1, mechanism="SCRAM-SHA-512")
        client.send(METADATA, 12, topics=[])
        assert client.closed_by_broker()


def test_a_frame_above_the_sasl_bound_closes_before_authentication(
    broker: InProcessBroker,
) -> None:
    with RawClient(broker.bootstrap) as client:
        client.send_raw(struct.pack(">i", 524_289) + b"\x00" * 1024)
        assert client.closed_by_broker()
    assert "sasl.server.max.receive.size=524288" in broker.log_tail(200)


@pytest.mark.parametrize(
    "token",
    [b"", b"\x00" * 1000, b"n,,n=alice,r=" + b"x" * 100_000, bytes(range(256)) * 4],
)
def test_garbage_scram_tokens_fail_cleanly(broker: InProcessBroker, token: bytes) -> None:
    with RawClient(broker.bootstrap) as client:
        client.request(SASL_HANDSHAKE, 1, mechanism="SCRAM-SHA-512")
        answer = client.request(SASL_AUTHENTICATE, 2, auth_bytes=token)
        if answer.error_code == ErrorCode.none:  # a long but valid first message
            answer = client.request(SASL_AUTHENTICATE, 2, auth_bytes=b"garbage")
        assert answer.error_code == ErrorCode.sasl_authentication_failed
        assert client.closed_by_broker()
    with RawClient(broker.bootstrap) as other:
        assert scram_login(other).error_code == ErrorCode.none  # type: ignore[attr-defined]


def test_reauthentication_and_session_expiry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = sasl_broker(tmp_path, monkeypatch, **{"connections.max.reauth.ms": "1500"})
    try:
        with RawClient(broker.bootstrap) as client:
            final = scram_login(client)
            assert final.session_lifetime.total_seconds() == 1.5  # type: ignore[attr-defined]
            # Re-authentication: same mechanism, same principal, a new session.
            again = scram_login(client)
            assert again.error_code == ErrorCode.none  # type: ignore[attr-defined]
            assert client.request(METADATA, 12, topics=[]).brokers
            # Another mechanism on re-authentication is refused, and closes.
            other = client.request(SASL_HANDSHAKE, 1, mechanism="PLAIN")
            assert other.error_code == ErrorCode.unsupported_sasl_mechanism
            assert client.closed_by_broker()
        with RawClient(broker.bootstrap) as client:
            scram_login(client)

            def closed_after_expiry() -> bool:
                try:
                    client.request(METADATA, 12, topics=[])
                except (ConnectionError, OSError):
                    return True
                return False

            wait_until(closed_after_expiry, 15, "the expired session closed")
        assert "expired (connections.max.reauth.ms, or its" in broker.log_tail(200)
    finally:
        broker.stop()


def test_a_failed_login_is_answered_late_while_others_are_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """connection.failed.authentication.delay.ms holds the failed connection's answer,
    not the broker: another client logs in and is served meanwhile."""
    broker = sasl_broker(
        tmp_path, monkeypatch, **{"connection.failed.authentication.delay.ms": "4000"}
    )
    try:
        with RawClient(broker.bootstrap) as failing, RawClient(broker.bootstrap) as other:
            failing.request(SASL_HANDSHAKE, 1, mechanism="PLAIN")
            failing.send(SASL_AUTHENTICATE, 2, auth_bytes=b"\x00carol\x00nope")
            assert scram_login(other).error_code == ErrorCode.none  # type: ignore[attr-defined]
            assert other.request(METADATA, 12, topics=[]).brokers
            readable, _, _ = select.select([failing.sock], [], [], 0)
            assert not readable, "the failed login was answered before the delay"
            answer = failing.receive()
            assert answer.error_code == ErrorCode.sasl_authentication_failed
            assert failing.closed_by_broker()
    finally:
        broker.stop()


def test_logins_reach_the_audit_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SASL login, successful or not, is one CloudEvents record in the audit sink (here
    its JSON-lines file): principal, listener, mechanism and the decision."""
    audit_file = tmp_path / "audit.jsonl"
    running = sasl_broker(tmp_path, monkeypatch, **{"contextplane.audit.file": str(audit_file)})
    try:
        with RawClient(running.bootstrap) as client:
            assert scram_login(client).error_code == ErrorCode.none
        with RawClient(running.bootstrap) as client:
            failed = scram_login(client, password="wrong")
            assert failed.error_code == ErrorCode.sasl_authentication_failed

        def logins() -> list[dict[str, object]]:
            if not audit_file.exists():
                return []
            events = [json.loads(line) for line in audit_file.read_text().splitlines()]
            return [e["data"] for e in events if str(e["type"]).endswith(".authentication")]

        seen = wait_until(lambda: len(logins()) >= 2 and logins(), 15, "two login records")
        decisions = {(d["principal"], d["decision"], d["mechanism"]) for d in seen}
        assert ("User:alice", "ALLOWED", "SCRAM-SHA-512") in decisions
        assert (None, "DENIED", "SCRAM-SHA-512") in decisions
        assert {d["listener"] for d in seen} == {"SASL_PLAINTEXT"}
    finally:
        running.stop()


def test_handshake_v0_is_refused_and_closed(broker: InProcessBroker) -> None:
    """SaslHandshake v0 is advertised as Kafka advertises it, but its raw-token exchange
    (clients before Kafka 1.0) is not served: UNSUPPORTED_VERSION, then the close."""
    with RawClient(broker.bootstrap) as client:
        refused = client.request(SASL_HANDSHAKE, 0, mechanism="SCRAM-SHA-512")
        assert refused.error_code == ErrorCode.unsupported_version
        assert "SCRAM-SHA-512" in refused.mechanisms
        client.sock.settimeout(5)
        assert client.sock.recv(1) == b""  # closed by the broker
    assert "SaslHandshake v0 (raw SASL tokens) is not served" in broker.log_tail(50)


def test_failed_logins_from_one_address_are_bound_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed logins need no credentials: past contextplane.audit.denial.records.per.second
    per client address they are counted, and the count is one suppressed record (so an
    anonymous client cannot rotate older records out of the audit topic). Each record
    keeps a few hundred characters of a 32 KB client id."""
    audit_file = tmp_path / "audit.jsonl"
    running = sasl_broker(
        tmp_path,
        monkeypatch,
        **{
            "contextplane.audit.file": str(audit_file),
            "contextplane.audit.denial.records.per.second": "1",
        },
    )
    attempts = 20
    try:
        for _ in range(attempts):
            with RawClient(running.bootstrap, client_id="\x01" * 32_767) as client:
                client.request(SASL_HANDSHAKE, 1, mechanism="PLAIN")
                done = client.request(SASL_AUTHENTICATE, 1, auth_bytes=b"\x00carol\x00nope")
                assert done.error_code == ErrorCode.sasl_authentication_failed

        def events() -> list[dict[str, object]]:
            if not audit_file.exists():
                return []
            return [json.loads(line) for line in audit_file.read_text().splitlines()]

        def accounted() -> int:
            seen = events()
            denied = [e for e in seen if str(e["type"]).endswith(".authentication")]
            summaries = [e["data"] for e in seen if str(e["type"]).endswith(".suppressed")]
            return len(denied) + sum(int(s["suppressed_records"]) for s in summaries)  # type: ignore[call-overload]

        wait_until(lambda: accounted() == attempts, 15, "every failed login recorded or counted")
        seen = events()
        logins = [e for e in seen if str(e["type"]).endswith(".authentication")]
        summaries = [e["data"] for e in seen if str(e["type"]).endswith(".suppressed")]
        assert summaries, "no failed login was suppressed"
        assert len(logins) < attempts
        assert {s["client_address"] for s in summaries} == {"127.0.0.1"}
        assert all(len(line) < 4_096 for line in audit_file.read_text().splitlines())
    finally:
        running.stop()
