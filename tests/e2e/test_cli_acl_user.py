"""`contextplane acl ...` and `contextplane user ...` run as a user runs them, logged in
with SCRAM through `--command-config`, against a broker process with a SASL listener and
Kafka's StandardAuthorizer: what they print is checked against what confluent-kafka reads
back, and what they change against what a client may then do."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from tests.support.broker import BrokerProcess
from tests.support.cli import contextplane, one_error_line

SETTINGS = {
    "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
    "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:admin",
    "auto.create.topics.enable": "false",
}
SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"


def add_user_offline(data_dir: Path, name: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "contextplane.cli.launch", "users", "add", name]
        + ["--data-dir", str(data_dir), "--password-stdin"],
        input=f"{name}-secret\n",
        text=True,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    data = tmp_path_factory.mktemp("cli-acl-user") / "data"
    for name in ("admin", "alice"):
        add_user_offline(data, name)
    process = BrokerProcess(data, settings=SETTINGS).start()
    yield process
    process.stop()


def librdkafka(
    broker: BrokerProcess, user: str, mechanism: str = "SCRAM-SHA-512"
) -> dict[str, str]:
    return {
        "bootstrap.servers": broker.bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": f"{user}-secret",
    }


@pytest.fixture(scope="module")
def login(broker: BrokerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A `--command-config` properties file per user, in Kafka's names."""
    folder = tmp_path_factory.mktemp("command-configs")
    files = {}
    for user in ("admin", "alice"):
        path = folder / f"{user}.properties"
        path.write_text(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
            f'sasl.jaas.config={SCRAM} required username="{user}" password="{user}-secret";\n'
        )
        files[user] = path
    return files


def as_user(
    broker: BrokerProcess, login: dict[str, Path], user: str, *args: str
) -> tuple[str, ...]:
    return (*args, "--bootstrap-server", broker.bootstrap, "--command-config", str(login[user]))


def produce_error(config: dict[str, str], topic: str) -> int | None:
    errors: list[KafkaError] = []
    producer = Producer(config | {"acks": "all", "message.timeout.ms": 10_000})
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: err and errors.append(err))
    producer.flush(30)
    return errors[0].code() if errors else None


def test_acl_create_list_and_delete_change_what_a_principal_may_do(
    broker: BrokerProcess, login: dict[str, Path]
) -> None:
    admin = AdminClient(librdkafka(broker, "admin"))
    admin.create_topics([NewTopic("orders", 1, 1)])["orders"].result(30)
    alice = librdkafka(broker, "alice")
    assert produce_error(alice, "orders") == KafkaError.TOPIC_AUTHORIZATION_FAILED

    created = contextplane(
        *as_user(
            broker,
            login,
            "admin",
            "acl",
            "create",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Write",
            "--operation",
            "describe",
            "--topic",
            "orders",
        )
    )
    assert created.rows() == [
        [
            "PRINCIPAL",
            "HOST",
            "OPERATION",
            "PERMISSION",
            "RESOURCE-TYPE",
            "RESOURCE-NAME",
            "PATTERN-TYPE",
        ],
        ["User:alice", "*", "DESCRIBE", "ALLOW", "TOPIC", "orders", "LITERAL"],
        ["User:alice", "*", "WRITE", "ALLOW", "TOPIC", "orders", "LITERAL"],
    ]
    assert produce_error(alice, "orders") is None

    contextplane(
        *as_user(
            broker,
            login,
            "admin",
            "acl",
            "create",
            "--deny-principal",
            "User:bob",
            "--operation",
            "WRITE",
            "--topic",
            "logs-",
            "--pattern-type",
            "prefixed",
        )
    )
    contextplane(
        *as_user(
            broker,
            login,
            "admin",
            "acl",
            "create",
            "--cluster",
            "--allow-principal",
            "User:ops",
            "--operation",
            "alter-configs",
        )
    )
    listed = contextplane(*as_user(broker, login, "admin", "acl", "list", "--output", "json"))
    everything = admin.describe_acls(
        AclBindingFilter(
            ResourceType.ANY,
            None,
            ResourcePatternType.ANY,
            None,
            None,
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
    ).result(30)
    assert len(listed.json()["acls"]) == len(everything) == 4
    assert {
        "principal": "User:ops",
        "host": "*",
        "operation": "ALTER_CONFIGS",
        "permission": "ALLOW",
        "resource_type": "CLUSTER",
        "resource_name": "kafka-cluster",
        "pattern_type": "LITERAL",
    } in listed.json()["acls"]
    bob = contextplane(
        *as_user(
            broker, login, "admin", "acl", "list", "--principal", "User:bob", "--output", "json"
        )
    ).json()["acls"]
    assert [(a["resource_name"], a["pattern_type"], a["permission"]) for a in bob] == [
        ("logs-", "PREFIXED", "DENY")
    ]

    # delete: a dry run unless --execute.
    shown = contextplane(*as_user(broker, login, "admin", "acl", "delete", "--topic", "orders"))
    assert shown.status == 0 and "Nothing deleted" in shown.out
    assert produce_error(alice, "orders") is None
    deleted = contextplane(
        *as_user(
            broker,
            login,
            "admin",
            "acl",
            "delete",
            "--topic",
            "orders",
            "--execute",
            "--output",
            "json",
        )
    ).json()
    assert deleted["deleted"] is True and len(deleted["acls"]) == 2
    assert produce_error(alice, "orders") == KafkaError.TOPIC_AUTHORIZATION_FAILED

    refused = contextplane(
        *as_user(
            broker,
            login,
            "alice",
            "acl",
            "create",
            "--allow-principal",
            "User:alice",
            "--operation",
            "All",
            "--topic",
            "orders",
        )
    )
    assert "CLUSTER_AUTHORIZATION_FAILED" in one_error_line(refused)
    for args, message in [
        (
            ("--allow-principal", "alice", "--operation", "Read", "--topic", "t"),
            "a principal is TYPE:NAME",
        ),
        (
            ("--allow-principal", "User:a", "--operation", "Fly", "--topic", "t"),
            "unknown operation 'Fly': one of All, Read, Write",
        ),
        (("--operation", "Read", "--topic", "t"), "give at least one --allow-principal"),
        (("--allow-principal", "User:a", "--operation", "Any", "--topic", "t"), "Any is a filter"),
    ]:
        line = one_error_line(
            contextplane(*as_user(broker, login, "admin", "acl", "create", *args)), status=2
        )
        assert message in line, (args, line)


def test_user_set_list_and_delete_scram_credentials(
    broker: BrokerProcess, login: dict[str, Path]
) -> None:
    made = contextplane(
        *as_user(broker, login, "admin", "user", "set", "dave", "--password-stdin"),
        stdin="dave-secret\n",
    )
    assert made.rows() == [
        ["USER", "MECHANISM", "ACTION"],
        ["dave", "SCRAM-SHA-256", "set"],
        ["dave", "SCRAM-SHA-512", "set"],
    ]
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        assert AdminClient(librdkafka(broker, "dave", mechanism)).list_topics(timeout=15).brokers
    listed = contextplane(
        *as_user(broker, login, "admin", "user", "list", "dave", "--output", "json")
    ).json()
    assert listed == {
        "users": [
            {
                "user": "dave",
                "credentials": [
                    {"mechanism": "SCRAM-SHA-256", "iterations": 8192},
                    {"mechanism": "SCRAM-SHA-512", "iterations": 8192},
                ],
            }
        ]
    }
    everyone = contextplane(*as_user(broker, login, "admin", "user", "list")).rows()
    assert {row[0] for row in everyone[1:]} == {"admin", "alice", "dave"}

    deleted = contextplane(*as_user(broker, login, "admin", "user", "delete", "dave"))
    assert deleted.status == 0, deleted.err
    gone = contextplane(*as_user(broker, login, "admin", "user", "list", "dave"))
    assert "RESOURCE_NOT_FOUND" in one_error_line(gone)

    refused = contextplane(
        *as_user(broker, login, "alice", "user", "set", "eve", "--password-stdin"),
        stdin="eve-secret\n",
    )
    assert "CLUSTER_AUTHORIZATION_FAILED" in one_error_line(refused)
    for args, stdin, message in [
        (
            ("set", "eve", "--password-stdin", "--iterations", "100"),
            "x\n",
            "--iterations must be 4096 to 16384",
        ),
        (("set", "eve", "--password-stdin"), "", "no password given"),
        (("set", "eve", "--password-stdin"), "\n", "the password must not be empty"),
    ]:
        line = one_error_line(
            contextplane(*as_user(broker, login, "admin", "user", *args), stdin=stdin), status=2
        )
        assert message in line, (args, line)


def test_acl_list_says_when_the_cluster_has_no_authorizer(
    broker: BrokerProcess, login: dict[str, Path], tmp_path: Path
) -> None:
    """Kafka refuses DescribeAcls with SECURITY_DISABLED when no authorizer is configured
    (confluent-kafka hands that back as an empty list): named, exit 1. With an authorizer
    and nothing matching, an empty table, exit 0."""
    plain = BrokerProcess(tmp_path / "no-authorizer").start()
    try:
        for args in (("acl", "list"), ("acl", "delete", "--topic", "orders")):
            run = contextplane(*args, "--bootstrap-server", plain.bootstrap)
            line = one_error_line(run)
            assert "SECURITY_DISABLED (No Authorizer is configured.)" in line, line
    finally:
        plain.stop()
    empty = contextplane(*as_user(broker, login, "admin", "acl", "list", "--topic", "nowhere"))
    assert empty.status == 0, empty.err
    assert empty.rows()[1:] == []
