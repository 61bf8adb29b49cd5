"""The reference Kafka's server.properties: PLAINTEXT by default; with a SASL client
listener, that listener also carries inter-broker traffic and the PLAINTEXT controller
listener's principal joins the super users (the broker registers through it)."""

from __future__ import annotations

from pathlib import Path

from harness.kafka_reference import _server_properties

SASL = {
    "sasl.enabled.mechanisms": "PLAIN",
    "super.users": "User:admin",
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
}


def test_plaintext_by_default_and_super_users_untouched(tmp_path: Path) -> None:
    props = _server_properties(tmp_path, 9092, 9093, {"super.users": "User:admin"})
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["super.users"] == "User:admin"


def test_sasl_client_listener(tmp_path: Path) -> None:
    props = _server_properties(tmp_path, 9092, 9093, SASL, "SASL_PLAINTEXT")
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:9092"
    assert props["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert props["sasl.mechanism.inter.broker.protocol"] == "PLAIN"
    assert props["listener.security.protocol.map"] == (
        "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
    )
    assert props["super.users"] == "User:admin;User:ANONYMOUS"
    assert props["authorizer.class.name"] == SASL["authorizer.class.name"]
