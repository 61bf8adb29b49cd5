"""Dynamic broker configs over the wire (RFC 0008, "Dynamic broker configs as built"):
IncrementalAlterConfigs and AlterConfigs on BROKER resources, applied without restart
(a real producer's batch limit follows `message.max.bytes` at once, per broker over the
cluster default), kept by a restart, refused and validated as Kafka 4.4's
ConfigAdminManager refuses (code and message), and a cluster default set on one broker
of a PostgreSQL cluster reaching the other. kafka-configs.sh's run against contextplane
and Apache Kafka is tests/e2e/test_kafka_configs_brokers_tool.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane import limits
from tests.support.broker import BrokerProcess
from tests.support.inprocess import InProcessBroker
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

BROKER = 4  # ConfigResource.Type.BROKER
SET, DELETE, APPEND = 0, 1, 2
DYNAMIC_BROKER, DYNAMIC_DEFAULT, STATIC, DEFAULT = 2, 3, 4, 5
INVALID_REQUEST, INVALID_CONFIG, MESSAGE_TOO_LARGE, POLICY_VIOLATION = 42, 40, 10, 44
TIMEOUT_S = 60  # liveness bound of each wait
WANTED = {"log.retention.bytes": "8192", "log.cleaner.backoff.ms": "500"}


def _alter(bootstrap: str, name: str, *changes: tuple[str, int, str | None], **kw: Any) -> Any:
    """IncrementalAlterConfigs of one BROKER resource: its (error code, message)."""
    configs = [{"name": n, "config_operation": op, "value": v} for n, op, v in changes]
    with RawClient(bootstrap) as client:
        answer = client.request(
            44,
            1,
            resources=[{"resource_type": BROKER, "resource_name": name, "configs": configs}],
            validate_only=kw.get("validate_only", False),
        )
    result = answer.responses[0]
    return result.error_code, result.error_message


def _replace(bootstrap: str, name: str, configs: dict[str, str]) -> int:
    """AlterConfigs (the whole set) of one BROKER resource: its error code."""
    with RawClient(bootstrap) as client:
        answer = client.request(
            33,
            2,
            resources=[
                {
                    "resource_type": BROKER,
                    "resource_name": name,
                    "configs": [{"name": n, "value": v} for n, v in configs.items()],
                }
            ],
            validate_only=False,
        )
    return int(answer.responses[0].error_code)


def _describe(bootstrap: str, name: str, *keys: str, resource_type: int = BROKER) -> Any:
    """DescribeConfigs v4 with synonyms: (error code, message, name -> entry)."""
    with RawClient(bootstrap) as client:
        answer = client.request(
            32,
            4,
            resources=[
                {
                    "resource_type": resource_type,
                    "resource_name": name,
                    "configuration_keys": list(keys) or None,
                }
            ],
            include_synonyms=True,
            include_documentation=False,
        )
    result = answer.results[0]
    return result.error_code, result.error_message, {c.name: c for c in result.configs}


def _synonyms(entry: Any) -> list[tuple[str, str | None, int]]:
    return [(s.name, s.value, s.source) for s in entry.synonyms]


def _produced(bootstrap: str, topic: str, size: int) -> int:
    """The error code of producing one `size`-byte record (0: stored)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0})
    outcome: list[KafkaError | None] = []
    producer.produce(topic, b"x" * size, on_delivery=lambda err, _msg: outcome.append(err))
    assert producer.flush(30) == 0
    error = outcome[0]
    return 0 if error is None else error.code()


def test_message_max_bytes_applies_at_once_per_broker_over_default_and_after_restart(
    tmp_path: Path,
) -> None:
    broker = InProcessBroker(tmp_path / "broker").start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("calls", 1, 1)])["calls"].result(30)
        assert _produced(broker.bootstrap, "calls", 5000) == 0

        assert _alter(broker.bootstrap, "", ("message.max.bytes", SET, "1000")) == (0, None)
        assert _produced(broker.bootstrap, "calls", 5000) == MESSAGE_TOO_LARGE
        assert _alter(broker.bootstrap, "1", ("message.max.bytes", SET, "10000")) == (0, None)
        assert _produced(broker.bootstrap, "calls", 5000) == 0
        # The topic's max.message.bytes falls back to them, named in Kafka's order.
        _, _, topic = _describe(broker.bootstrap, "calls", "max.message.bytes", resource_type=2)
        entry = topic["max.message.bytes"]
        assert (entry.value, entry.config_source) == ("10000", DYNAMIC_BROKER)
        assert _synonyms(entry) == [
            ("message.max.bytes", "10000", DYNAMIC_BROKER),
            ("message.max.bytes", "1000", DYNAMIC_DEFAULT),
            ("message.max.bytes", "1048588", DEFAULT),
        ]

        broker.restart()
        assert _produced(broker.bootstrap, "calls", 5000) == 0
        _, _, described = _describe(broker.bootstrap, "1", "message.max.bytes")
        assert _synonyms(described["message.max.bytes"]) == _synonyms(entry)
        assert _alter(broker.bootstrap, "1", ("message.max.bytes", DELETE, None)) == (0, None)
        assert _produced(broker.bootstrap, "calls", 5000) == MESSAGE_TOO_LARGE
        assert _alter(broker.bootstrap, "", ("message.max.bytes", DELETE, None)) == (0, None)
        assert _produced(broker.bootstrap, "calls", 5000) == 0
        _, _, described = _describe(broker.bootstrap, "1", "message.max.bytes")
        entry = described["message.max.bytes"]
        assert (entry.value, entry.config_source, entry.read_only) == ("1048588", DEFAULT, False)
    finally:
        broker.stop()


def test_refusals_and_validation_as_kafka_answers_them(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "broker").start()
    bootstrap = broker.bootstrap
    try:
        retention = ("log.retention.ms", SET, "1000")
        assert _alter(bootstrap, "7", retention) == (
            INVALID_REQUEST,
            "Unexpected broker id, expected 1, but received 7",
        )
        assert _alter(bootstrap, "one", retention) == (
            INVALID_REQUEST,
            "Node id must be an integer, but it is: one",
        )
        assert _describe(bootstrap, "7")[:2] == (
            INVALID_REQUEST,
            "Unexpected broker id, expected 1 or empty string, but received 7",
        )
        assert _alter(bootstrap, "1", ("log.retention.ms", SET, None)) == (
            INVALID_REQUEST,
            "Null value not supported for : log.retention.ms",
        )
        assert _alter(bootstrap, "1", retention, retention) == (
            INVALID_REQUEST,
            "Error due to duplicate config keys",
        )
        # contextplane's own settings that Kafka does not have are static here.
        assert _alter(bootstrap, "1", ("upload.interval.ms", SET, "100")) == (
            INVALID_REQUEST,
            "Cannot update these configs dynamically: [upload.interval.ms]",
        )
        assert _alter(bootstrap, "1", ("message.max.bytes", APPEND, "1")) == (
            INVALID_CONFIG,
            "Config value append is not allowed for config key: message.max.bytes",
        )
        # APPEND to a LIST starts from its default, as ConfigAdminManager does.
        assert _alter(bootstrap, "1", ("log.cleanup.policy", APPEND, "compact")) == (0, None)
        _, _, described = _describe(bootstrap, "1", "log.cleanup.policy", "num.partitions")
        assert described["log.cleanup.policy"].value == "delete,compact"
        assert described["num.partitions"].read_only
        assert not described["log.cleanup.policy"].read_only
        # validate_only checks and stores nothing.
        assert _alter(bootstrap, "", retention, validate_only=True) == (0, None)
        assert _describe(bootstrap, "")[2] == {}
        # AlterConfigs replaces the resource's whole set.
        assert _replace(bootstrap, "1", {"log.retention.bytes": "4096"}) == 0
        _, _, described = _describe(bootstrap, "1")
        dynamic = {n: e.value for n, e in described.items() if e.config_source == DYNAMIC_BROKER}
        assert dynamic == {"log.retention.bytes": "4096"}
        assert broker.broker is not None and broker.broker.settings.retention_bytes == 4096
        assert broker.broker.settings.log_cleanup_policy == "delete"
    finally:
        broker.stop()


def test_a_cluster_default_reaches_the_other_broker(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    brokers = [
        BrokerProcess(
            tmp_path / f"broker{node}",
            metadata_url=url,
            object_store=objects,
            settings={"node.id": str(node), "broker.heartbeat.interval.ms": "300"},
        ).start()
        for node in (1, 2)
    ]
    try:
        first, second = (b.bootstrap for b in brokers)
        assert _alter(first, "", ("log.retention.bytes", SET, "8192")) == (0, None)
        # At once, before broker 2 has loaded it: its change adds to the stored set.
        assert _alter(second, "", ("log.cleaner.backoff.ms", SET, "500")) == (0, None)

        def known_on_both() -> bool:
            for bootstrap, node in ((first, "1"), (second, "2")):
                _, _, described = _describe(bootstrap, node, *WANTED)
                found = {n: (e.value, e.config_source) for n, e in described.items()}
                if found != {n: (v, DYNAMIC_DEFAULT) for n, v in WANTED.items()}:
                    return False
            return True

        wait_until(known_on_both, TIMEOUT_S, "both defaults applied on both brokers")
        # A per-broker config is altered on its own broker only.
        assert _alter(first, "2", ("log.retention.bytes", SET, "1")) == (
            INVALID_REQUEST,
            "Unexpected broker id, expected 1, but received 2",
        )
        assert _alter(second, "2", ("log.retention.bytes", SET, "16384")) == (0, None)
        _, _, described = _describe(first, "1", "log.retention.bytes")
        assert described["log.retention.bytes"].value == "8192"
    finally:
        for broker in brokers:
            broker.stop()


def test_custom_configs_are_bounded_per_resource_and_an_over_bound_change_changes_nothing(
    tmp_path: Path,
) -> None:
    broker = InProcessBroker(tmp_path / "broker").start()
    bootstrap = broker.bootstrap
    most = limits.BROKER_CUSTOM_CONFIGS_MAX
    custom = [(f"plugin.setting.{i}", SET, "v") for i in range(most + 1)]
    try:
        assert broker.broker is not None
        static_bytes = broker.broker.settings.retention_bytes
        # One name over, with a config this broker applies: nothing is stored or applied.
        assert _alter(bootstrap, "1", ("log.retention.bytes", SET, "4096"), *custom) == (
            POLICY_VIOLATION,
            f"Cannot keep {most + 1} custom configs (names Kafka does not know) for broker 1: "
            f"at most {most} per broker resource",
        )
        described = _describe(bootstrap, "1", "log.retention.bytes")[2]
        assert described["log.retention.bytes"].config_source == DEFAULT
        assert broker.broker.settings.retention_bytes == static_bytes
        # Up to the bound is kept; one more is refused; a swap within it is taken.
        assert _alter(bootstrap, "", *custom[:most]) == (0, None)
        assert len(_describe(bootstrap, "")[2]) == most
        assert _alter(bootstrap, "", custom[most]) == (
            POLICY_VIOLATION,
            f"Cannot keep {most + 1} custom configs (names Kafka does not know) for the "
            f"cluster default: at most {most} per broker resource",
        )
        swap = (("plugin.setting.0", DELETE, None), ("plugin.setting.new", SET, "w"))
        assert _alter(bootstrap, "", *swap) == (0, None)
        assert len(_describe(bootstrap, "")[2]) == most
        # AlterConfigs, which replaces the whole set, is held to the same bound.
        replaced = {n: v for n, _op, v in custom if v is not None}
        assert _replace(bootstrap, "1", replaced) == POLICY_VIOLATION
        # The bytes: few names whose values (each within Kafka's 32,767-byte string bound)
        # together pass the bound.
        value = "x" * 32_000
        count = limits.BROKER_CUSTOM_CONFIG_BYTES_MAX // len(value) + 1
        big = [(f"plugin.blob.{i}", SET, value) for i in range(count)]
        code, message = _alter(bootstrap, "1", *big)
        assert code == POLICY_VIOLATION
        assert message.startswith(f"Cannot keep {count * 32_000 + sum(len(n) for n, _, _ in big)}")
        assert _alter(bootstrap, "1", *big[:-1]) == (0, None)
    finally:
        broker.stop()
