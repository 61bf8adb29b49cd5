"""The README's secured broker, end to end, as a reader runs it: users made with
`contextplane users add` (password on standard input) before a broker process starts
with the README's broker.properties (SASL_SSL, SCRAM-SHA-512, StandardAuthorizer,
super.users, read receipts); admin creates `orders` and grants alice READ on it and on
her group with the README's confluent-kafka code; alice's consumer reads every record;
bob's consumer gets TOPIC_AUTHORIZATION_FAILED and the denial is a CloudEvents record in
`__contextplane_audit`; the README's `contextplane audit reads --topic orders --offset 5
--command-config admin.properties` names User:alice, alice-group and the time of the
read. A second test runs the README's openssl, kafka-topics.sh and kafka-acls.sh
commands (Kafka's own TopicCommand and AclCommand from the harness jars)."""

from __future__ import annotations

import datetime
import os
import shutil
import string
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    Producer,
)
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from tests.support.audit_topics import AUDIT_TOPIC, read_json_topic
from tests.support.broker import BrokerProcess
from tests.support.readme import Walkthrough, walkthrough
from tests.support.tls import TestCa
from tests.support.wait import wait_until

HEADING = "### A secured broker in a few commands"
README_BOOTSTRAP = "localhost:9094"
PASSWORDS = {
    "ADMIN_PASSWORD": "admin-Secret-1",
    "ALICE_PASSWORD": "alice-Secret-2",
    "BOB_PASSWORD": "bob-Secret-3",
}
RECORDS = 12


@dataclass
class Secured:
    """A broker started as the README says, in `where` (the reader's directory)."""

    where: Path
    readme: Walkthrough
    broker: BrokerProcess

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def shell(self, command: str, **env: str) -> subprocess.CompletedProcess[str]:
        """One README command, run by the shell in the reader's directory with the
        README's bootstrap address replaced by this broker's."""
        command = command.replace(README_BOOTSTRAP, self.bootstrap)
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.where,
            env={**os.environ, **PASSWORDS, **env},
            capture_output=True,
            text=True,
            timeout=180,
        )

    def client(self, user: str) -> dict[str, Any]:
        """confluent-kafka settings for a user: those of the README's admin client."""
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(self.where / "ca.pem"),
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": PASSWORDS[f"{user.upper()}_PASSWORD"],
        }


def readme_test_ca(where: Path) -> None:
    """ca.pem and broker-keystore.pem, the files the README's openssl commands write."""
    ca = TestCa()
    ca.write(where / "ca.pem")
    ca.issue("broker", server=True).write(where / "broker-keystore.pem")


def start_as_the_readme_says(where: Path, make_certificates: Any) -> Secured:
    readme = walkthrough(HEADING)
    make_certificates(where)
    # `.venv/bin/contextplane` in the reader's directory is this environment's.
    (where / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    users = readme.commands("echo ")
    assert [c.split()[6] for c in users] == ["admin", "alice", "bob"]
    for command in users:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=where,
            env={**os.environ, **PASSWORDS},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    # The README's broker.properties as written, on any free port (0) instead of 9094.
    properties = readme.files["broker.properties"]
    assert not properties.expands
    text = properties.text.replace("127.0.0.1:9094", "127.0.0.1:0")
    assert text != properties.text, "the README's listener moved: update this test"
    (where / "broker.properties").write_text(text)
    assert (
        readme.command("scripts/up ") == "scripts/up --data-dir ./data --config broker.properties"
    )
    broker = BrokerProcess(where / "data", config=where / "broker.properties", cwd=where).start()
    admin = readme.files["admin.properties"]
    assert admin.expands
    (where / "admin.properties").write_text(string.Template(admin.text).substitute(PASSWORDS))
    return Secured(where, readme, broker)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    started = start_as_the_readme_says(tmp_path, readme_test_ca)
    yield started
    started.broker.stop()


def grant_as_the_readme_says(secured: Secured, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's confluent-kafka code: admin creates `orders` and grants alice READ on
    it and on alice-group (AdminClient.create_acls)."""
    (code,) = secured.readme.python
    code = code.replace(f'"{README_BOOTSTRAP}"', repr(secured.bootstrap))
    code = code.replace('"ca.pem"', repr(str(secured.where / "ca.pem")))
    monkeypatch.setenv("ADMIN_PASSWORD", PASSWORDS["ADMIN_PASSWORD"])
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the README's own code


def produce_orders(secured: Secured) -> None:
    producer = Producer({**secured.client("admin"), "acks": "all", "linger.ms": 5})
    for i in range(RECORDS):
        producer.produce("orders", key=f"k{i}".encode(), value=f"order {i}".encode(), partition=0)
    assert producer.flush(30) == 0


def alice_reads_everything(secured: Secured) -> list[bytes]:
    consumer = Consumer(
        {
            **secured.client("alice"),
            "group.id": "alice-group",
            "client.id": "alice-app",
            "auto.offset.reset": "earliest",
        }
    )
    values: list[bytes] = []
    try:
        consumer.subscribe(["orders"])

        def all_read() -> bool:
            message = consumer.poll(0.5)
            if message is not None:
                error = message.error()
                assert error is None, error
                values.append(message.value() or b"")
            return len(values) >= RECORDS

        wait_until(all_read, 60, "alice reads every record of orders", poll_s=0)
    finally:
        consumer.close()
    return values


def bobs_errors(secured: Secured, expected: int) -> list[int]:
    """The error codes bob's consumer, subscribed to orders in bob-group, reports until
    `expected` comes."""
    consumer = Consumer(
        {
            **secured.client("bob"),
            "group.id": "bob-group",
            "client.id": "bob-app",
            "auto.offset.reset": "earliest",
        }
    )
    codes: list[int] = []
    try:
        consumer.subscribe(["orders"])

        def refused() -> bool:
            message = consumer.poll(0.5)
            if message is not None:
                error = message.error()
                assert error is not None, "bob received a record of orders"
                codes.append(error.code())
            return expected in codes

        wait_until(refused, 60, f"bob's consumer gets error {expected}", poll_s=0)
    finally:
        consumer.close()
    return codes


def grant_bob_his_group(secured: Secured) -> None:
    admin = AdminClient(secured.client("admin"))
    grant = AclBinding(ResourceType.GROUP, "bob-group", ResourcePatternType.LITERAL,
                       "User:bob", "*", AclOperation.READ, AclPermissionType.ALLOW)  # fmt: skip
    admin.create_acls([grant])[grant].result(15)


def audit_records(secured: Secured) -> list[dict[str, Any]]:
    """Every record of `__contextplane_audit`, read by admin with a consumer."""
    return read_json_topic(secured.client("admin"), AUDIT_TOPIC)


def bobs_denial(secured: Secured) -> list[dict[str, Any]]:
    return [
        event
        for event in audit_records(secured)
        if event.get("type") == "io.contextplane.audit.authorization"
        and event["data"]["principal"] == "User:bob"
        and event["data"]["resource_type"] == "TOPIC"
        and event["data"]["resource_name"] == "orders"
        and event["data"]["decision"] == "DENIED"
    ]


def test_alice_reads_bob_is_refused_and_audited_and_audit_reads_names_alice(
    secured: Secured, monkeypatch: pytest.MonkeyPatch
) -> None:
    grant_as_the_readme_says(secured, monkeypatch)
    produce_orders(secured)
    started = datetime.datetime.now(datetime.UTC)

    assert alice_reads_everything(secured) == [f"order {i}".encode() for i in range(RECORDS)]
    # Without any ACL bob is refused his group first (FindCoordinator), as by Kafka, and
    # librdkafka asks nothing of the topic until it has a coordinator. Allowed his group
    # but not orders, his consumer gets the topic's error.
    bobs_errors(secured, expected=KafkaError.GROUP_AUTHORIZATION_FAILED)
    grant_bob_his_group(secured)
    bobs_errors(secured, expected=KafkaError.TOPIC_AUTHORIZATION_FAILED)

    denial = wait_until(lambda: bobs_denial(secured), 30, "bob's denial in the audit topic")[0]
    assert denial["specversion"] == "1.0"
    assert denial["subject"] == "topic:orders"
    assert denial["data"]["listener"] == "SASL_SSL"
    assert denial["data"]["result"] == "TOPIC_AUTHORIZATION_FAILED"
    assert denial["data"]["client_id"] == "bob-app"

    command = secured.readme.command(".venv/bin/contextplane audit reads ")
    assert "--topic orders --offset 5" in command and "--command-config admin.properties" in command

    def alices_receipt() -> list[str]:
        done = secured.shell(command)
        assert done.returncode == 0, done.stderr
        return [line for line in done.stdout.splitlines()[1:] if "User:alice" in line]

    (row,) = wait_until(alices_receipt, 30, "a read receipt of offset 5")
    fetched, principal, client_id, group, address, partition, offsets = row.split()
    assert (principal, client_id, group, partition) == (
        "User:alice",
        "alice-app",
        "alice-group",
        "0",
    )
    assert address.startswith("127.0.0.1:")
    first, last = (int(o) for o in offsets.split("-"))
    assert first <= 5 <= last
    when = datetime.datetime.fromisoformat(fetched.replace("Z", "+00:00"))
    assert started - datetime.timedelta(seconds=1) <= when <= datetime.datetime.now(datetime.UTC)

    # The README's `audit events` lists bob's denial of orders.
    events = secured.readme.command(".venv/bin/contextplane audit events ")
    assert "--decision denied --principal User:bob" in events
    done = secured.shell(events)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split()[:3] == ["TIME", "TYPE", "PRINCIPAL"]
    denied = [r.split() for r in rows if "topic:orders" in r.split()]
    assert denied and all(r[1:3] == ["authorization", "User:bob"] for r in denied), rows
    assert any("TOPIC_AUTHORIZATION_FAILED" in r for r in denied), rows

    # A wrong password is named as such, not left as a transport failure after a timeout.
    admin = (secured.where / "admin.properties").read_text()
    (secured.where / "wrong.properties").write_text(
        admin.replace(PASSWORDS["ADMIN_PASSWORD"], "not-the-password")
    )
    done = secured.shell(command.replace("admin.properties", "wrong.properties"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "authentication failed" in done.stderr, done.stderr

    # Without --command-config against the SASL_SSL listener: one line that names the
    # likely cause, soon, and none of librdkafka's own log lines.
    unsecured = command.replace("--command-config admin.properties", "")
    assert unsecured != command
    done = secured.shell(unsecured)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "--command-config" in lines[0], done.stderr
    assert "closed the connection during the handshake" in lines[0], done.stderr


def openssl_as_the_readme_says(where: Path) -> None:
    """The README's certificate commands, run by the shell in the reader's directory."""
    assert shutil.which("openssl") is not None, "openssl makes the README's certificates"
    readme = walkthrough(HEADING)
    commands = readme.commands("openssl ") + readme.commands("cat broker.key ")
    assert len(commands) == 4
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command], cwd=where, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr


def test_the_readme_certificates_and_kafka_tools_grant_alice(tmp_path: Path) -> None:
    """The README's openssl commands make the certificates, and its kafka-topics.sh and
    kafka-acls.sh commands (Kafka's TopicCommand and AclCommand) create `orders` and
    grant alice, logged in as admin with the README's admin.properties."""
    from conformance.suites.librdkafka.suite import fetch_kafka_tools
    from harness._maven import java_tool

    secured = start_as_the_readme_says(tmp_path, openssl_as_the_readme_says)
    try:
        libs = fetch_kafka_tools()
        tools = tmp_path / "kafka-bin"
        tools.mkdir()
        for script, main in (("kafka-topics.sh", "TopicCommand"), ("kafka-acls.sh", "AclCommand")):
            (tools / script).write_text(
                "#!/bin/sh\n"
                f'exec "{java_tool("java")}" -Xmx256m -cp "{libs}/*" '
                f'org.apache.kafka.tools.{main} "$@"\n'
            )
            (tools / script).chmod(0o755)
        path = f"{tools}:{os.environ['PATH']}"
        for command in (secured.readme.command("kafka-topics.sh "),
                        secured.readme.command("kafka-acls.sh ")):  # fmt: skip
            done = secured.shell(command, PATH=path)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        admin = AdminClient(secured.client("admin"))
        assert admin.list_topics(timeout=15).topics["orders"].partitions.keys() == {0}
        every = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                 AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
        found = admin.describe_acls(every).result(15)
        assert {(str(b.restype), b.name, b.principal, str(b.operation)) for b in found} == {
            ("ResourceType.TOPIC", "orders", "User:alice", "AclOperation.READ"),
            ("ResourceType.GROUP", "alice-group", "User:alice", "AclOperation.READ"),
        }
    finally:
        secured.broker.stop()
