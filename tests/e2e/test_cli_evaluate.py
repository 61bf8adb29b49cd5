"""`contextplane evaluate` run as a user runs it: against a contextplane broker (its
PLAINTEXT and TLS listeners, with a schema registry, a Kafka Connect worker, a restart),
against Apache Kafka from the harness, and against a port nothing listens on; the probes'
results and the scorecard are read from its JSON, and what they made is checked gone
afterwards."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from functools import partial
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
from harness import kafka_connect, kafka_reference
from tests.support.broker import BrokerProcess, free_port
from tests.support.cli import Run, contextplane, one_error_line
from tests.support.inprocess import InProcessBroker
from tests.support.registry import RegistryProcess
from tests.support.tls import TestCa
from tests.support.wait import wait_until

# An authorizer (so that the ACL probe has one to ask) that allows what no ACL covers.
AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "true",
}
# What a run without TLS settings, a registry URL, a Connect URL or a restart command
# cannot probe.
NOT_APPLICABLE = {"tls", "schema-registry", "connectors", "restart"}
# The readiness of each category on a cluster where every probe run passes but those.
READINESS = {
    "client-compatibility": "green",
    "offset-control": "yellow",
    "connector-state": "yellow",
    "governance": "yellow",
    "rollback": "green",
}
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
    counted = {k: v for k, v in document["scorecard"].items() if k != "categories"}
    assert counted == {
        "passed": counts["pass"],
        "failed": counts["fail"],
        "not_applicable": counts["n-a"],
    }


def readiness(document: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in document["scorecard"]["categories"]}


def category(document: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in document["scorecard"]["categories"] if c["name"] == name]
    return dict(found)


def test_against_contextplane_every_probe_passes_but_those_needing_options(
    broker: InProcessBroker,
) -> None:
    run = evaluate(broker.bootstrap, "--output", "json")
    document = run.json()
    expected = {name: "n-a" if name in NOT_APPLICABLE else "pass" for name in PROBES}
    assert_scorecard(document, expected)
    assert readiness(document) == READINESS
    rollback = category(document, "rollback")
    assert [(p["name"], p["result"]) for p in rollback["probes"]] == [
        ("offsets-by-time", "pass"),
        ("group-offsets", "pass"),
        ("consumer-replay", "pass"),
    ]
    assert "OffsetCommit" in rollback["probes"][1]["evidence"]
    offsets = category(document, "offset-control")
    assert offsets["reason"] == "not shown: restart", offsets
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
    _, counts, scorecard = run.out.split("\n\n")
    assert counts == "3 passed, 0 failed, 0 n-a"
    # The scorecard's rows follow: the probes not chosen are not shown, so yellow.
    lines = scorecard.splitlines()
    assert lines[0].split() == ["CATEGORY", "READINESS", "EVIDENCE"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["client-compatibility", "yellow"],
        ["offset-control", "yellow"],
        ["connector-state", "yellow"],
        ["governance", "yellow"],
        ["rollback", "yellow"],
    ]
    assert "tls pass" in lines[4] and "acls not run" in lines[4], lines


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


def test_nothing_listening_one_line_names_it_and_exits_1() -> None:
    run = evaluate(f"127.0.0.1:{free_port()}", "--timeout", "5", "--output", "json")
    line = one_error_line(run)
    assert line.startswith("contextplane evaluate: cannot connect to 127.0.0.1:"), line
    assert "connection refused" in line and run.out == "", run.out


def test_a_restart_command_keeps_acknowledged_records_and_committed_offsets(
    tmp_path: Path,
) -> None:
    """The command kills the broker (SIGKILL) and returns once it runs again (this test
    starts it, as a service manager would)."""
    restarting = BrokerProcess(tmp_path / "broker").start()
    assert restarting.process is not None
    started = tmp_path / "started"
    script = tmp_path / "restart.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"kill -KILL {restarting.process.pid}\n"
        f"while [ ! -e {started} ]; do sleep 0.1; done\n"
        "echo broker restarted\n"
    )
    script.chmod(0o755)
    process = restarting.process

    def service_manager() -> None:
        process.wait()
        restarting.start()
        started.touch()

    thread = threading.Thread(target=service_manager, daemon=True)
    thread.start()
    try:
        run = evaluate(
            restarting.bootstrap,
            *("--restart-command", f"{script}", "--timeout", "60", "--output", "json"),
            *("--probe", "consumer-replay", "--probe", "restart"),
        )
        thread.join(60)
        assert started.exists()
        document = run.json()
        assert_scorecard(document, {"consumer-replay": "pass", "restart": "pass"})
        (_, restart) = document["probes"]
        assert re.match(
            r"restart command exited 0 after \d+\.\d s \(broker restarted\); then all 6 "
            r"acknowledged records and the group's committed offset 2 read back$",
            restart["evidence"],
        ), restart
        assert_nothing_left(restarting.bootstrap)
    finally:
        restarting.stop()


def test_a_failing_or_endless_restart_command_fails_the_probe(
    broker: InProcessBroker, tmp_path: Path
) -> None:
    failing = evaluate(
        broker.bootstrap,
        *("--restart-command", "sh -c 'echo no permission >&2; exit 3'"),
        *("--probe", "restart", "--output", "json"),
    )
    assert failing.status == 1, failing.err
    (probe,) = document_of(failing)["probes"]
    assert probe["evidence"] == "restart command exited with status 3 (no permission)"
    assert category(document_of(failing), "offset-control")["status"] == "red"
    marker = tmp_path / "survived"
    endless = evaluate(
        broker.bootstrap,
        *("--restart-command", f"sh -c 'sleep 3600; touch {marker}'", "--timeout", "3"),
        *("--probe", "restart", "--output", "json"),
    )
    assert endless.status == 1, endless.err
    (probe,) = document_of(endless)["probes"]
    assert probe["evidence"] == "restart command: still running at the probe's deadline, killed"
    assert not marker.exists()
    unquoted = evaluate(broker.bootstrap, "--restart-command", "sh -c 'exit")
    assert one_error_line(unquoted, status=2) == (
        "contextplane evaluate: --restart-command: No closing quotation"
    )
    local = evaluate(broker.bootstrap, "--connect", "file:///etc/passwd")
    assert one_error_line(local, status=2) == (
        "contextplane evaluate: --connect file:///etc/passwd: an http:// or https:// URL"
    )
    assert_nothing_left(broker.bootstrap)


def task_failed(worker: kafka_connect.ConnectWorker, name: str) -> bool:
    try:  # 404 until the worker has written the connector's first status
        return "FAILED" in str(worker.connector_status(name))
    except kafka_connect.ConnectError:
        return False


def test_connectors_of_a_connect_worker_and_their_state(
    broker: InProcessBroker, tmp_path: Path
) -> None:
    """A real Connect worker on contextplane: a running connector passes; a connector
    whose task FAILED fails the probe and makes connector state red."""
    source = tmp_path / "source.txt"
    source.write_text("one\ntwo\n")
    with kafka_connect.start(broker.bootstrap, tmp_path / "connect", timeout=240) as worker:
        worker.put_connector(
            "evaluate-source",
            {
                "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
                "file": str(source),
                "topic": "evaluate-lines",
                "tasks.max": "1",
            },
        )
        wait_until(lambda: worker.running("evaluate-source"), 120, "the source runs")
        running = evaluate(
            broker.bootstrap,
            *("--connect", worker.url, "--output", "json"),
            *("--probe", "connectors", "--probe", "connect-cluster"),
        )
        document = running.json()
        assert_scorecard(document, {"connect-cluster": "pass", "connectors": "pass"})
        assert readiness(document)["connector-state"] == "green"
        (_, connectors) = document["probes"]
        assert (
            "1 connector(s): evaluate-source RUNNING (1/1 tasks RUNNING)"
            in (connectors["evidence"])
        ), connectors
        worker.put_connector(
            "evaluate-sink",
            {
                "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
                # No such directory: the task fails when it opens the file.
                "file": str(tmp_path / "absent" / "sink.txt"),
                "topics": "evaluate-lines",
                "tasks.max": "1",
            },
        )
        wait_until(partial(task_failed, worker, "evaluate-sink"), 120, "the sink's task fails")
        failed = evaluate(broker.bootstrap, "--connect", worker.url, "--probe", "connectors")
    assert failed.status == 1, failed.err
    (row,) = [line for line in failed.out.splitlines() if line.startswith("connectors ")]
    assert "FAILED: evaluate-sink;" in row and "evaluate-sink RUNNING (0/1 tasks" in row, row
    assert "connector-state       red" in failed.out, failed.out


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[kafka_reference.KafkaHandle]:
    handle = kafka_reference.start(data_dir=tmp_path / "kafka", extra_props=AUTHORIZER, timeout=120)
    yield handle
    handle.stop()


def test_against_apache_kafka_the_same_scorecard(kafka: kafka_reference.KafkaHandle) -> None:
    """The same probes pass on Apache Kafka; read receipts are contextplane's own. Each
    probe may take 90 s: Kafka's first transaction creates `__transaction_state` (50
    partitions), which on two busy cores outlasted the default 30 s."""
    run = evaluate(kafka.bootstrap, "--output", "json", "--timeout", "90")
    assert run.status in (0, 1), (run.status, run.err)
    document = json.loads(run.out)
    expected = {
        name: "n-a" if name in NOT_APPLICABLE | {"audit-reads"} else "pass" for name in PROBES
    }
    assert_scorecard(document, expected)
    assert readiness(document) == READINESS
    assert_nothing_left(kafka.bootstrap)
