"""`contextplane config describe|alter` run as a user runs them: against a contextplane
broker process and against Apache Kafka (the harness's reference broker), since the
command is a client of any Kafka cluster; what they print is checked against what
confluent-kafka's AdminClient reads back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from harness import kafka_reference
from tests.support.broker import BrokerProcess
from tests.support.cli import contextplane, one_error_line


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    data = tmp_path_factory.mktemp("cli-config") / "data"
    settings = {"log.retention.hours": "72", "upload.interval.ms": "2500"}
    process = BrokerProcess(data, settings=settings).start()
    yield process
    process.stop()


def config(bootstrap: str, *args: str) -> tuple[str, ...]:
    return ("config", *args, "--bootstrap-server", bootstrap)


def described(admin: AdminClient, kind: ResourceType, name: str) -> dict[str, tuple[str, int]]:
    resource = ConfigResource(kind, name)
    entries = admin.describe_configs([resource])[resource].result(30)
    return {config: (entry.value, entry.source) for config, entry in entries.items()}


def create_topic(admin: AdminClient, name: str) -> None:
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)


def test_topic_configs_are_described_set_and_deleted(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    create_topic(admin, "orders")
    empty = contextplane(
        *config(broker.bootstrap, "describe", "topic", "orders", "--output", "json")
    )
    assert empty.json() == {"entity": "topic", "name": "orders", "configs": []}

    altered = contextplane(
        *config(
            broker.bootstrap,
            "alter",
            "topic",
            "orders",
            "--set",
            "retention.ms=3600000",
            "--set",
            "cleanup.policy=compact",
        )
    )
    assert altered.rows() == [
        ["CONFIG", "ACTION", "VALUE"],
        ["retention.ms", "set", "3600000"],
        ["cleanup.policy", "set", "compact"],
    ]
    shown = contextplane(*config(broker.bootstrap, "describe", "topic", "orders"))
    assert shown.rows() == [
        ["CONFIG", "VALUE", "SOURCE", "READ-ONLY"],
        ["cleanup.policy", "compact", "DYNAMIC_TOPIC_CONFIG", "false"],
        ["retention.ms", "3600000", "DYNAMIC_TOPIC_CONFIG", "false"],
    ]
    assert described(admin, ResourceType.TOPIC, "orders")["retention.ms"][0] == "3600000"

    contextplane(*config(broker.bootstrap, "alter", "topic", "orders", "--delete", "retention.ms"))
    every = contextplane(
        *config(broker.bootstrap, "describe", "topic", "orders", "--all", "--output", "json")
    ).json()["configs"]
    by_name = {row["name"]: row for row in every}
    assert set(by_name) == set(described(admin, ResourceType.TOPIC, "orders"))
    # Back to the broker's own setting (log.retention.hours=72), as Kafka resolves it;
    # Kafka names it DEFAULT_CONFIG, having no log.retention.ms synonym to list.
    assert by_name["retention.ms"]["value"] == str(72 * 3600 * 1000)
    assert by_name["retention.ms"]["source"] == "DEFAULT_CONFIG"
    assert by_name["cleanup.policy"]["source"] == "DYNAMIC_TOPIC_CONFIG"


def test_broker_configs_and_the_failures_are_named(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    node = next(iter(admin.list_topics(timeout=30).brokers))
    every = contextplane(
        *config(broker.bootstrap, "describe", "broker", str(node), "--all", "--output", "json")
    ).json()["configs"]
    expected = described(admin, ResourceType.BROKER, str(node))
    assert {row["name"]: row["value"] for row in every} == {
        name: value for name, (value, _) in expected.items()
    }
    read_only = {row["name"]: row["read_only"] for row in every}
    assert read_only["num.partitions"] and not read_only["log.retention.ms"]

    altered = contextplane(
        *config(broker.bootstrap, "alter", "broker", str(node), "--set", "log.retention.ms=1")
    )
    assert altered.status == 0, altered.err
    shown = contextplane(
        *config(broker.bootstrap, "describe", "broker", str(node), "--output", "json")
    ).json()["configs"]
    assert {
        "name": "log.retention.ms",
        "value": "1",
        "source": "DYNAMIC_BROKER_CONFIG",
        "read_only": False,
        "sensitive": False,
    } in shown
    refused = contextplane(
        *config(broker.bootstrap, "alter", "broker", str(node), "--set", "num.partitions=3")
    )
    assert one_error_line(refused) == (
        f"contextplane config alter: broker '{node}': INVALID_REQUEST (Cannot update these"
        " configs dynamically: [num.partitions])"
    )
    unknown = contextplane(*config(broker.bootstrap, "describe", "topic", "absent"))
    assert one_error_line(unknown).startswith(
        "contextplane config describe: topic 'absent': UNKNOWN_TOPIC_OR_PART"
    )
    for args, message in [
        (("describe", "broker", "one"), "a broker is named by its node id, got 'one'"),
        (("alter", "topic", "x"), "give at least one --set NAME=VALUE or --delete NAME"),
        (("alter", "topic", "x", "--set", "a=1", "--delete", "a"), "a: both --set and --delete"),
        (("alter", "topic", "x", "--set", "novalue"), "--set expects NAME=VALUE"),
    ]:
        line = one_error_line(contextplane(*config(broker.bootstrap, *args)), status=2)
        assert message in line, (args, line)


def test_broker_describe_all_lists_contextplane_own_settings(broker: BrokerProcess) -> None:
    """As kafka-configs.sh --all lists every broker setting: contextplane's own too, given
    (STATIC_BROKER_CONFIG) or not (DEFAULT_CONFIG), and not only when asked by name."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    node = str(next(iter(admin.list_topics(timeout=30).brokers)))
    every = contextplane(
        *config(broker.bootstrap, "describe", "broker", node, "--all", "--output", "json")
    )
    assert every.status == 0, every.err
    rows = {row["name"]: row for row in every.json()["configs"]}
    assert rows["upload.interval.ms"] == {
        "name": "upload.interval.ms",
        "value": "2500",
        "source": "STATIC_BROKER_CONFIG",
        "read_only": True,
        "sensitive": False,
    }
    for name, value in [("zone.produce.proxy.enable", "false"), ("wal.url", "")]:
        assert rows[name]["source"] == "DEFAULT_CONFIG", rows[name]
        assert rows[name]["value"] == value, rows[name]
    table = contextplane(*config(broker.bootstrap, "describe", "broker", node, "--all")).rows()
    assert ["upload.interval.ms", "2500", "STATIC_BROKER_CONFIG", "true"] in table
    # Without --all, as kafka-configs.sh: the dynamic configs only.
    dynamic = contextplane(
        *config(broker.bootstrap, "describe", "broker", node, "--output", "json")
    )
    assert "upload.interval.ms" not in {row["name"] for row in dynamic.json()["configs"]}


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[kafka_reference.KafkaHandle]:
    handle = kafka_reference.start(data_dir=tmp_path / "kafka", timeout=120)
    yield handle
    handle.stop()


def test_against_apache_kafka_dynamic_broker_and_group_configs(
    kafka: kafka_reference.KafkaHandle,
) -> None:
    """Dynamic broker configs and group configs, managed on Apache Kafka as on
    contextplane."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    node = str(next(iter(admin.list_topics(timeout=30).brokers)))
    set_broker = contextplane(
        *config(kafka.bootstrap, "alter", "broker", node, "--set", "log.cleaner.threads=2")
    )
    assert set_broker.status == 0, set_broker.err
    shown = contextplane(
        *config(kafka.bootstrap, "describe", "broker", node, "--output", "json")
    ).json()
    assert (
        shown["name"] == node
        and {
            "name": "log.cleaner.threads",
            "value": "2",
            "source": "DYNAMIC_BROKER_CONFIG",
            "read_only": False,
            "sensitive": False,
        }
        in shown["configs"]
    )
    assert described(admin, ResourceType.BROKER, node)["log.cleaner.threads"][0] == "2"

    group = contextplane(
        *config(
            kafka.bootstrap,
            "alter",
            "group",
            "copilots",
            "--set",
            "consumer.session.timeout.ms=50000",
        )
    )
    assert group.status == 0, group.err
    rows = contextplane(*config(kafka.bootstrap, "describe", "group", "copilots")).rows()
    assert ["consumer.session.timeout.ms", "50000", "GROUP_CONFIG", "false"] in rows
    assert described(admin, ResourceType.GROUP, "copilots")["consumer.session.timeout.ms"] == (
        "50000",
        8,  # ConfigSource GROUP_CONFIG
    )
