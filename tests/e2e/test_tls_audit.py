"""Mutual TLS as an authentication: a client certificate accepted or refused is an
authentication record in `__contextplane_audit` (refusals bound per client address by
contextplane.audit.denial.records.per.second, the rest counted), and a refused client
hears why: the TLS alert (`certificate required`, `unknown ca`) reaches it instead of an
unexpected end of file."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.audit_topics import AUDIT_TOPIC, read_json_topic
from tests.support.inprocess import InProcessBroker
from tests.support.tls import TestCa
from tests.support.wait import wait_until

MAPPING = "RULE:^CN=([^,]+),O=contextplane-test,C=US$/$1/L,DEFAULT"
AUTHENTICATION = "io.contextplane.audit.authentication"
SUPPRESSED = "io.contextplane.audit.suppressed"
FAILURES_PER_SECOND = 2


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("pki")
    ca = TestCa()
    other = TestCa("an untrusted CA")
    files = {
        "ca": ca.write(where / "ca.pem"),
        "keystore": ca.issue("broker", server=True).write(where / "broker.pem"),
    }
    for user, issuer, expired in (("ALICE", ca, False), ("mallory", other, False),
                                  ("trudy", ca, True)):  # fmt: skip
        issued = issuer.issue(user, expired=expired)
        (where / f"{user}.key").write_bytes(issued.key_pem)
        (where / f"{user}.crt").write_bytes(issued.cert_pem)
        files[user] = where / user
    return files


@pytest.fixture
def mtls_broker(pki: dict[str, Path], tmp_path: Path) -> Iterator[InProcessBroker]:
    settings = {
        "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
        "ssl.keystore.location": str(pki["keystore"]),
        "ssl.truststore.location": str(pki["ca"]),
        "ssl.client.auth": "required",
        "ssl.principal.mapping.rules": MAPPING,
        "contextplane.audit.denial.records.per.second": str(FAILURES_PER_SECOND),
        "contextplane.audit.flush.interval.ms": "100",
    }
    running = InProcessBroker(tmp_path / "broker", settings=settings)
    running.start()
    yield running
    running.stop()


def _handshake(
    broker: InProcessBroker, pki: dict[str, Path], user: str | None, tls12: bool = False
) -> str:
    """Connect with `user`'s certificate (or none) and read: '' when the broker kept the
    connection, else the client's error."""
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if user is not None:
        context.load_cert_chain(f"{pki[user]}.crt", f"{pki[user]}.key")
    raw = socket.create_connection(("127.0.0.1", broker.listener_port("SSL")), timeout=10)
    try:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            # TLS 1.3: the client's handshake ends before the broker has checked its
            # certificate; the refusal is what the first read gets.
            tls.settimeout(1)
            tls.recv(1)
    except TimeoutError:
        return ""  # accepted: the broker waits for a request
    except (ssl.SSLError, OSError) as exc:
        return str(exc)
    return "closed"


def test_a_refused_client_certificate_gets_the_tls_alert(
    mtls_broker: InProcessBroker, pki: dict[str, Path]
) -> None:
    assert "alert certificate required" in _handshake(mtls_broker, pki, None)
    assert "alert unknown ca" in _handshake(mtls_broker, pki, "mallory")
    assert "alert certificate expired" in _handshake(mtls_broker, pki, "trudy")
    # TLS 1.2 has no `certificate required` alert: OpenSSL sends `handshake failure`.
    assert "alert handshake failure" in _handshake(mtls_broker, pki, None, tls12=True)
    assert "alert unknown ca" in _handshake(mtls_broker, pki, "mallory", tls12=True)
    assert _handshake(mtls_broker, pki, "ALICE") == ""


def _authentications(broker: InProcessBroker) -> list[dict[str, Any]]:
    return [e["data"] for e in read_json_topic(broker.bootstrap, AUDIT_TOPIC) if e["type"] in (
        AUTHENTICATION, SUPPRESSED)]  # fmt: skip


def test_mutual_tls_authentications_are_audited_and_refusals_bound(
    mtls_broker: InProcessBroker, pki: dict[str, Path]
) -> None:
    assert _handshake(mtls_broker, pki, "ALICE") == ""

    def accepted() -> list[dict[str, Any]]:
        return [
            e for e in _authentications(mtls_broker)
            if e.get("mechanism") == "SSL" and e.get("decision") == "ALLOWED"
        ]  # fmt: skip

    alice = wait_until(accepted, 30, "alice's authentication in the audit topic")[0]
    assert alice["principal"] == "User:alice"
    assert alice["subject"] == "CN=ALICE,O=contextplane-test,C=US"
    assert alice["listener"] == "SSL"
    assert alice["client_address"].startswith("127.0.0.1:")
    assert alice["result"] == "SUCCESS"

    # Refused certificates in a loop: at most FAILURES_PER_SECOND records a second from
    # one address, the rest counted in a suppressed record.
    attempts = 10
    for user in [None, "mallory", "trudy", None, "mallory"] * (attempts // 5):
        assert _handshake(mtls_broker, pki, user) != ""

    def refusals() -> tuple[list[dict[str, Any]], int] | None:
        events = _authentications(mtls_broker)
        written = [
            e for e in events if e.get("mechanism") == "SSL" and e.get("decision") == "DENIED"
            and "suppressed_records" not in e
        ]  # fmt: skip
        suppressed = sum(
            e["suppressed_records"] for e in events if e.get("client_address") == "127.0.0.1"
        )
        return (written, suppressed) if len(written) + suppressed >= attempts else None

    written, suppressed = wait_until(refusals, 30, "every refusal written or counted")
    assert len(written) + suppressed == attempts
    assert 1 <= len(written) < attempts and suppressed > 0
    reasons = {e["reason"] for e in written}
    assert reasons <= {
        "no client certificate (ssl.client.auth=required)",
        "client certificate refused: unable to get local issuer certificate",
        "client certificate refused: certificate has expired",
    }, reasons
    assert len(reasons) > 1, reasons
    assert all(e["principal"] is None and e["listener"] == "SSL" for e in written)


def test_a_certificate_no_mapping_rule_applies_to_is_an_audited_refusal(
    pki: dict[str, Path], tmp_path: Path
) -> None:
    settings = {
        "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
        "ssl.keystore.location": str(pki["keystore"]),
        "ssl.truststore.location": str(pki["ca"]),
        "ssl.client.auth": "required",
        "ssl.principal.mapping.rules": "RULE:^CN=(admin),.*$/$1/",  # no DEFAULT
        "contextplane.audit.flush.interval.ms": "100",
    }
    running = InProcessBroker(tmp_path / "broker", settings=settings).start()
    try:
        assert _handshake(running, pki, "ALICE") == "closed"

        def refused() -> list[dict[str, Any]]:
            return [e for e in _authentications(running) if e.get("decision") == "DENIED"]

        event = wait_until(refused, 30, "the refused authentication in the audit topic")[0]
        assert event["subject"] == "CN=ALICE,O=contextplane-test,C=US"
        assert event["principal"] is None and event["mechanism"] == "SSL"
        assert "No rules apply to CN=ALICE" in event["reason"]
    finally:
        running.stop()
