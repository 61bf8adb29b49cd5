"""`contextplane quota describe|alter` run as a user runs them, against a contextplane
broker process and against Apache Kafka (the harness's reference broker) with the same
expected output: the command speaks DescribeClientQuotas/AlterClientQuotas as Kafka's
tool does, and the two brokers answer them the same. Then the failures' lines (the
broker's refusals, the tool's own checks), and a login through `--command-config`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import kafka_reference
from tests.support.broker import BrokerProcess
from tests.support.cli import Run, contextplane, one_error_line
from tests.support.tls import TestCa


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("cli-quota") / "data").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka_reference.KafkaHandle]:
    handle = kafka_reference.start(data_dir=tmp_path_factory.mktemp("kafka"), timeout=120)
    yield handle
    handle.stop()


def quota(bootstrap: str, *args: str, config: Path | None = None) -> Run:
    login = ("--command-config", str(config)) if config else ()
    return contextplane("quota", *args, "--bootstrap-server", bootstrap, *login)


def alter_then_describe(bootstrap: str) -> None:
    """The same commands and the same expected output on any Kafka cluster."""
    added = quota(
        bootstrap,
        "alter",
        "--user",
        "alice",
        "--add",
        "producer_byte_rate=1024, consumer_byte_rate = 2048",
    )
    assert added.rows() == [
        ["QUOTA", "ACTION", "VALUE"],
        ["producer_byte_rate", "set", "1024"],
        ["consumer_byte_rate", "set", "2048"],
    ]
    alice_clients = quota(
        bootstrap,
        "alter",
        "--user",
        "alice",
        "--client-default",
        "--add",
        "request_percentage=12.5",
    )
    assert alice_clients.status == 0, alice_clients.err
    defaults = quota(bootstrap, "alter", "--user-default", "--add", "producer_byte_rate=4096")
    assert defaults.status == 0, defaults.err
    checked = quota(
        bootstrap, "alter", "--client", "c1", "--add", "consumer_byte_rate=1", "--validate-only"
    )
    assert checked.rows() == [["QUOTA", "ACTION", "VALUE"], ["consumer_byte_rate", "set", "1"]]
    assert "Nothing changed" in checked.out

    # Every quota; the validated-only alteration set nothing.
    assert quota(bootstrap, "describe").rows() == [
        ["USER", "CLIENT-ID", "IP", "QUOTA", "VALUE"],
        ["<default>", "-", "-", "producer_byte_rate", "4096"],
        ["alice", "-", "-", "consumer_byte_rate", "2048"],
        ["alice", "-", "-", "producer_byte_rate", "1024"],
        ["alice", "<default>", "-", "request_percentage", "12.5"],
    ]
    # An entity's options match exactly those types (Kafka's strict filter).
    assert quota(bootstrap, "describe", "--user", "alice", "--output", "json").json() == {
        "quotas": [
            {
                "entity": {"user": "alice"},
                "values": {"consumer_byte_rate": 2048, "producer_byte_rate": 1024},
            }
        ]
    }
    assert quota(
        bootstrap, "describe", "--user", "alice", "--client-default", "--output", "json"
    ).json() == {
        "quotas": [
            {"entity": {"user": "alice", "client-id": None}, "values": {"request_percentage": 12.5}}
        ]
    }
    assert quota(bootstrap, "describe", "--user-default").rows() == [
        ["USER", "CLIENT-ID", "IP", "QUOTA", "VALUE"],
        ["<default>", "-", "-", "producer_byte_rate", "4096"],
    ]
    assert quota(bootstrap, "describe", "--client", "c1", "--output", "json").json() == {
        "quotas": []
    }

    deleted = quota(
        bootstrap, "alter", "--user", "alice", "--delete", "consumer_byte_rate", "--output", "json"
    )
    assert deleted.json() == {
        "entity": {"user": "alice"},
        "set": {},
        "deleted": ["consumer_byte_rate"],
        "validate_only": False,
    }
    assert quota(bootstrap, "describe", "--user", "alice").rows() == [
        ["USER", "CLIENT-ID", "IP", "QUOTA", "VALUE"],
        ["alice", "-", "-", "producer_byte_rate", "1024"],
    ]
    # Deleting what is not set is refused before anything is sent, as Kafka's tool does.
    again = quota(bootstrap, "alter", "--user", "alice", "--delete", "consumer_byte_rate")
    assert one_error_line(again) == (
        "contextplane quota alter: user=alice: Invalid config(s): consumer_byte_rate"
    )
    # The broker's refusals, named with Kafka's error.
    unknown = quota(bootstrap, "alter", "--user", "alice", "--add", "bogus_rate=1")
    assert one_error_line(unknown) == (
        "contextplane quota alter: user=alice: INVALID_REQUEST (Invalid configuration key"
        " bogus_rate)"
    )
    fractional = quota(bootstrap, "alter", "--user", "bob", "--add", "producer_byte_rate=1.5")
    assert one_error_line(fractional) == (
        "contextplane quota alter: user=bob: INVALID_REQUEST (producer_byte_rate cannot be a"
        " fractional value.)"
    )


def test_alter_then_describe_on_contextplane(broker: BrokerProcess) -> None:
    alter_then_describe(broker.bootstrap)


def test_alter_then_describe_on_apache_kafka(kafka: kafka_reference.KafkaHandle) -> None:
    alter_then_describe(kafka.bootstrap)
    # IP quotas (connection creation rate), which contextplane does not implement.
    set_ip = quota(
        kafka.bootstrap, "alter", "--ip", "10.0.0.7", "--add", "connection_creation_rate=5"
    )
    assert set_ip.status == 0, set_ip.err
    assert quota(kafka.bootstrap, "describe", "--ip", "10.0.0.7").rows() == [
        ["USER", "CLIENT-ID", "IP", "QUOTA", "VALUE"],
        ["-", "-", "10.0.0.7", "connection_creation_rate", "5"],
    ]


def test_ip_quotas_are_refused_by_contextplane_with_its_error(broker: BrokerProcess) -> None:
    refused = quota(
        broker.bootstrap, "alter", "--ip", "10.0.0.7", "--add", "connection_creation_rate=5"
    )
    assert one_error_line(refused) == (
        "contextplane quota alter: ip=10.0.0.7: INVALID_REQUEST (Unhandled client quota entity"
        " type: ip)"
    )


def test_arguments_the_command_refuses_before_connecting(broker: BrokerProcess) -> None:
    for args, message in [
        (("alter", "--user", "a", "--add", "producer_byte_rate"), "--add expects KEY=VALUE"),
        (("alter", "--user", "a", "--add", "a=1,,b=2"), "--add expects KEY=VALUE"),
        (
            ("alter", "--user", "a", "--add", "producer_byte_rate=fast"),
            "Cannot parse quota configuration value for producer_byte_rate: fast",
        ),
        (("alter", "--user", "a", "--add", "bad key=1"), "Invalid character found for config key"),
        (("alter", "--user", "a"), "give at least one --add KEY=VALUE or --delete KEY"),
        (("alter", "--add", "producer_byte_rate=1"), "name an entity"),
        (
            (
                "alter",
                "--user",
                "a",
                "--add",
                "request_percentage=1",
                "--delete",
                "request_percentage",
            ),
            "request_percentage: both --add and --delete",
        ),
        (("describe", "--ip", "10.0.0.7", "--user", "a"), "--ip cannot be combined"),
        (("describe", "--user", ""), "--user needs a name"),
    ]:
        line = one_error_line(quota(broker.bootstrap, *args), status=2)
        assert line.startswith(f"contextplane quota {args[0]}: ") and message in line, (args, line)
    both = quota(broker.bootstrap, "describe", "--user", "a", "--user-default")
    assert both.status == 2 and "not allowed with argument" in both.err


SASL_SETTINGS = {
    "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
    "sasl.enabled.mechanisms": "SCRAM-SHA-512",
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:admin",
}
SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"


def test_a_scram_login_through_command_config(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = contextplane(
        "users", "add", "admin", "--data-dir", str(data), "--password-stdin", stdin="admin-secret\n"
    )
    assert added.status == 0, added.err
    login, wrong = tmp_path / "admin.properties", tmp_path / "wrong.properties"
    for path, password in ((login, "admin-secret"), (wrong, "not-the-password")):
        path.write_text(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
            f'sasl.jaas.config={SCRAM} required username="admin" password="{password}";\n'
        )
    process = BrokerProcess(data, settings=SASL_SETTINGS).start()
    try:
        done = quota(
            process.bootstrap,
            "alter",
            "--client",
            "etl",
            "--add",
            "producer_byte_rate=2048",
            config=login,
        )
        assert done.status == 0, done.err
        assert quota(process.bootstrap, "describe", config=login).rows() == [
            ["USER", "CLIENT-ID", "IP", "QUOTA", "VALUE"],
            ["-", "etl", "-", "producer_byte_rate", "2048"],
        ]
        refused = one_error_line(quota(process.bootstrap, "describe", config=wrong))
        assert refused.startswith(
            "contextplane quota describe: authentication failed: SASL_AUTHENTICATION_FAILED ("
        ), refused
    finally:
        process.stop()


def test_tls_through_command_config(tmp_path: Path) -> None:
    ca = TestCa()
    ca_pem = ca.write(tmp_path / "ca.pem")
    keystore = ca.issue("broker", server=True).write(tmp_path / "broker.pem")
    settings = {
        "listeners": "SSL://127.0.0.1:0",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.location": str(ca_pem),
    }
    login = tmp_path / "tls.properties"
    login.write_text(
        f"security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca_pem}\n"
    )
    process = BrokerProcess(tmp_path / "data", settings=settings).start()
    try:
        done = quota(
            process.bootstrap,
            "alter",
            "--user-default",
            "--add",
            "request_percentage=25",
            config=login,
        )
        assert done.status == 0, done.err
        assert quota(process.bootstrap, "describe", "--output", "json", config=login).json() == {
            "quotas": [{"entity": {"user": None}, "values": {"request_percentage": 25}}]
        }
    finally:
        process.stop()
