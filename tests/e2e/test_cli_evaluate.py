"""`contextplane evaluate` run as a user runs it: against a contextplane broker (its
PLAINTEXT and TLS listeners, with a schema registry), against Apache Kafka from the
harness, and against a port nothing listens on; the probes' results are read from its
JSON, and what they made is checked gone afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from confluent_kafka.schema_registry import SchemaRegistryClient

from contextplane.cli.probes import PROBES
from contextplane.cli.probes.base import CLEANUP_S
from harness import kafka_reference
from tests.support.broker import free_port
from tests.support.cli import Run, contextplane, one_error_line
from tests.support.inprocess import InProcessBroker
from tests.support.registry import RegistryProcess
from tests.support.tls import TestCa

# An authorizer (so that the ACL probe has one to ask) that allows what no ACL covers.
AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "true",
}
# What a run without TLS settings or a registry URL cannot probe.
NOT_APPLICABLE = {"tls", "schema-registry"}
EVERY_ACL = AclBindingFilter(
    ResourceType.ANY,
    None,  # type: ignore[arg-type]  # any name
    ResourcePatternType.ANY,
    None,  # type: ignore[arg-type]  # any principal
    None,  # type: ignore[arg-type]  # any host
    AclOperation.ANY,
    AclPermissionType.ANY,
)


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The CA's certificate and the broker's key store (PEM)."""
    where = tmp_path_factory.mktemp("pki")
    ca = TestCa()
    return ca.write(where / "ca.pem"), ca.issue("broker", server=True).write(where / "broker.pem")


@pytest.fixture(scope="module")
def broker(
    ca_file: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessBroker]:
    ca, keystore = ca_file
    settings = AUTHORIZER | {
        "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.location": str(ca),
        "group.initial.rebalance.delay.ms": "0",
        "http.port": "-1",
    }
    running = InProcessBroker(tmp_path_factory.mktemp("evaluate") / "broker", settings).start()
    yield running
    running.stop()


def evaluate(bootstrap: str, *args: str) -> Run:
    return contextplane("evaluate", "--bootstrap-server", bootstrap, *args, timeout_s=600)


def document_of(run: Run) -> dict[str, Any]:
    """The JSON a run printed, whatever its exit status."""
    return dict(json.loads(run.out))


def assert_nothing_left(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = admin.list_topics(timeout=30).topics
    assert not [name for name in topics if name.startswith("__evaluate-")]
    groups = admin.list_consumer_groups().result(30).valid
    assert not [g.group_id for g in groups if g.group_id.startswith("__evaluate-")]
    assert admin.describe_acls(EVERY_ACL).result(30) == []


def assert_scorecard(document: dict[str, Any], expected: dict[str, str]) -> None:
    by_name = {probe["name"]: probe for probe in document["probes"]}
    assert {name: probe["result"] for name, probe in by_name.items()} == expected, by_name
    assert all(probe["evidence"] for probe in document["probes"])
    counts = {result: list(expected.values()).count(result) for result in ("pass", "fail", "n-a")}
    assert document["scorecard"] == {
        "passed": counts["pass"],
        "failed": counts["fail"],
        "not_applicable": counts["n-a"],
    }


def test_against_contextplane_every_probe_passes_but_tls_and_schemas(
    broker: InProcessBroker,
) -> None:
    run = evaluate(broker.bootstrap, "--output", "json")
    expected = {name: "n-a" if name in NOT_APPLICABLE else "pass" for name in PROBES}
    assert_scorecard(run.json(), expected)
    assert_nothing_left(broker.bootstrap)


def test_tls_and_a_schema_registry_pass_when_given(
    broker: InProcessBroker, ca_file: tuple[Path, Path], tmp_path: Path
) -> None:
    ca, _ = ca_file
    properties = tmp_path / "client.properties"
    properties.write_text(
        f"security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca}\n"
    )
    registry = RegistryProcess(broker.bootstrap, tmp_path / "registry.log").start()
    try:
        run = evaluate(
            f"127.0.0.1:{broker.listener_port('SSL')}",
            "--command-config",
            str(properties),
            "--schema-registry",
            registry.url,
            *("--probe", "produce-fetch", "--probe", "tls", "--probe", "schema-registry"),
        )
        subjects = SchemaRegistryClient({"url": registry.url}).get_subjects()
        assert not [name for name in subjects if name.startswith("__evaluate-")]
    finally:
        registry.stop()
    rows = run.rows()
    assert [row[:2] for row in rows] == [
        ["PROBE", "RESULT"],
        ["produce-fetch", "pass"],
        ["tls", "pass"],
        ["schema-registry", "pass"],
    ]
    assert "connected over SSL to 1 broker(s), host name verified" in run.out
    assert run.out.rstrip().endswith("\n\n3 passed, 0 failed, 0 n-a")


def test_one_failing_probe_leaves_the_others_and_exits_1(broker: InProcessBroker) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    run = evaluate(
        broker.bootstrap,
        "--schema-registry",
        closed,
        *("--probe", "schema-registry", "--probe", "offsets-by-time", "--output", "json"),
    )
    assert run.status == 1, run.err
    assert_scorecard(document_of(run), {"offsets-by-time": "pass", "schema-registry": "fail"})
    unbounded = evaluate(broker.bootstrap, "--timeout", "0")
    assert one_error_line(unbounded, status=2) == (
        "contextplane evaluate: --timeout 0: from 1 to 3600 seconds"
    )


def test_without_an_authorizer_the_acl_probe_is_not_applicable(tmp_path: Path) -> None:
    """The default broker has no authorizer: the ACL probe says so rather than failing."""
    settings = {"http.port": "-1"}
    plain = InProcessBroker(tmp_path / "broker", settings).start()
    try:
        run = evaluate(plain.bootstrap, "--probe", "acls", "--output", "json")
    finally:
        plain.stop()
    assert run.status == 0, run.out
    (probe,) = run.json()["probes"]
    assert probe["result"] == "n-a" and "SECURITY_DISABLED" in probe["evidence"], probe


def test_nothing_listening_every_probe_fails_with_the_reason_within_its_bound() -> None:
    timeout_s = 5.0
    run = evaluate(f"127.0.0.1:{free_port()}", "--timeout", f"{timeout_s:g}", "--output", "json")
    assert run.status == 1, run.err
    document = document_of(run)
    expected = {name: "n-a" if name in NOT_APPLICABLE else "fail" for name in PROBES}
    assert_scorecard(document, expected)
    for probe in document["probes"]:
        if probe["result"] == "fail":
            assert "connection refused" in probe["evidence"].lower(), probe
        assert probe["seconds"] <= timeout_s + CLEANUP_S + 1, probe


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[kafka_reference.KafkaHandle]:
    handle = kafka_reference.start(data_dir=tmp_path / "kafka", extra_props=AUTHORIZER, timeout=120)
    yield handle
    handle.stop()


def test_against_apache_kafka_the_same_scorecard(kafka: kafka_reference.KafkaHandle) -> None:
    """The same probes pass on Apache Kafka; read receipts are contextplane's own."""
    run = evaluate(kafka.bootstrap, "--output", "json")
    expected = {
        name: "n-a" if name in NOT_APPLICABLE | {"audit-reads"} else "pass" for name in PROBES
    }
    assert_scorecard(run.json(), expected)
    assert_nothing_left(kafka.bootstrap)
