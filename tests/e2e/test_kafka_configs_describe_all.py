"""Apache Kafka's own `kafka-configs.sh --describe --all` (ConfigCommand, Kafka 4.4's tools
jar) of a topic with an override, under a dynamic cluster-default broker config and a
static one, against contextplane and against Apache Kafka 4.4: the same config names, the
same synonyms (names, sources, order) and the same values where contextplane does not
deliberately differ. Kafka's side is started by the fixture of
tests/e2e/test_kafka_configs_brokers_tool.py (`log.retention.hours=100`)."""

from __future__ import annotations

import re
import shutil
import subprocess

from contextplane.broker.kafka_broker_configs import mode_of
from contextplane.settings_table import SETTINGS
from tests.e2e.test_kafka_configs_brokers_tool import TIMEOUT_S, Cluster, _printed, cluster

__all__ = ["cluster"]  # the fixture, imported to be shared

# contextplane's own topic configs, which Kafka does not have.
OWN = {
    "confluent.key.schema.validation",
    "confluent.key.subject.name.strategy",
    "confluent.value.schema.validation",
    "confluent.value.subject.name.strategy",
    "contextplane.schema.validation.dlq.topic",
}
# contextplane's own broker settings, which Kafka does not have.
OWN_BROKER = {row.name for row in SETTINGS if mode_of(row.name) is None}
# Values contextplane describes differently on purpose: every acknowledged write is
# durable, so it flushes after each message (Kafka's defaults: Long.MAX_VALUE).
OWN_VALUES = {"flush.messages": "1", "flush.ms": "0"}
_LINE = re.compile(
    r"(?P<name>[^=]+)=(?P<value>.*) sensitive=(?P<sensitive>\w+) synonyms=\{(?P<syn>.*)\}"
)


def _create_topic(bootstrap: str, topic: str, *configs: str) -> None:
    from conformance.suites.librdkafka.suite import fetch_kafka_tools

    java = shutil.which("java")
    assert java is not None, "java is installed by harness/install.sh"
    command = [java, "-cp", f"{fetch_kafka_tools()}/*", "org.apache.kafka.tools.TopicCommand"]
    command += ["--bootstrap-server", bootstrap, "--create", "--topic", topic, "--partitions", "1"]
    for config in configs:
        command += ["--config", config]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-2000:]


def _described(lines: list[str]) -> dict[str, tuple[str, str, str]]:
    """name -> (value, sensitive, synonyms) of each line of a `--describe --all`."""
    rows = {}
    for line in lines[1:]:
        match = _LINE.fullmatch(line)
        assert match is not None, line
        rows[match["name"]] = (match["value"], match["sensitive"], match["syn"])
    return rows


# What Apache Kafka 4.4 prints for topic `described` (the flush intervals aside): the
# override, the dynamic default, no synonym for retention.ms' or segment.ms' hours forms
# (Kafka lists none before log.retention.ms or log.roll.ms), the configs contextplane
# does not act on with Kafka's defaults.
KAFKA_DESCRIBED = {
    "cleanup.policy": ("delete", "false", "DEFAULT_CONFIG:log.cleanup.policy=delete"),
    "compression.gzip.level": ("-1", "false", "DEFAULT_CONFIG:compression.gzip.level=-1"),
    "compression.lz4.level": ("9", "false", "DEFAULT_CONFIG:compression.lz4.level=9"),
    "compression.type": ("producer", "false", "DEFAULT_CONFIG:compression.type=producer"),
    "compression.zstd.level": ("3", "false", "DEFAULT_CONFIG:compression.zstd.level=3"),
    "delete.retention.ms": (
        "86400000",
        "false",
        "DEFAULT_CONFIG:log.cleaner.delete.retention.ms=86400000",
    ),
    "errors.deadletterqueue.group.enable": ("false", "false", ""),
    "file.delete.delay.ms": ("60000", "false", "DEFAULT_CONFIG:log.segment.delete.delay.ms=60000"),
    "follower.replication.throttled.replicas": ("", "false", ""),
    "index.interval.bytes": ("4096", "false", "DEFAULT_CONFIG:log.index.interval.bytes=4096"),
    "leader.replication.throttled.replicas": ("", "false", ""),
    "local.retention.bytes": ("-2", "false", "DEFAULT_CONFIG:log.local.retention.bytes=-2"),
    "local.retention.ms": ("-2", "false", "DEFAULT_CONFIG:log.local.retention.ms=-2"),
    "max.compaction.lag.ms": (
        "9223372036854775807",
        "false",
        "DEFAULT_CONFIG:log.cleaner.max.compaction.lag.ms=9223372036854775807",
    ),
    "max.decompressed.message.bytes": (
        "2147483639",
        "false",
        "DEFAULT_CONFIG:max.decompressed.message.bytes=2147483639",
    ),
    "max.message.bytes": ("1048588", "false", "DEFAULT_CONFIG:message.max.bytes=1048588"),
    "message.timestamp.after.max.ms": (
        "3600000",
        "false",
        "DEFAULT_CONFIG:log.message.timestamp.after.max.ms=3600000",
    ),
    "message.timestamp.before.max.ms": (
        "9223372036854775807",
        "false",
        "DEFAULT_CONFIG:log.message.timestamp.before.max.ms=9223372036854775807",
    ),
    "message.timestamp.type": (
        "CreateTime",
        "false",
        "DEFAULT_CONFIG:log.message.timestamp.type=CreateTime",
    ),
    "min.cleanable.dirty.ratio": (
        "0.5",
        "false",
        "DEFAULT_CONFIG:log.cleaner.min.cleanable.ratio=0.5",
    ),
    "min.compaction.lag.ms": ("0", "false", "DEFAULT_CONFIG:log.cleaner.min.compaction.lag.ms=0"),
    "min.insync.replicas": (
        "1",
        "false",
        (
            "DYNAMIC_DEFAULT_BROKER_CONFIG:min.insync.replicas=1, "
            "DEFAULT_CONFIG:min.insync.replicas=1"
        ),
    ),
    "preallocate": ("false", "false", "DEFAULT_CONFIG:log.preallocate=false"),
    "remote.copy.lag.bytes": ("-1", "false", "DEFAULT_CONFIG:log.remote.copy.lag.bytes=-1"),
    "remote.copy.lag.ms": ("0", "false", "DEFAULT_CONFIG:log.remote.copy.lag.ms=0"),
    "remote.log.copy.disable": ("false", "false", ""),
    "remote.log.delete.on.disable": ("false", "false", ""),
    "remote.storage.enable": ("false", "false", ""),
    "retention.bytes": ("-1", "false", "DEFAULT_CONFIG:log.retention.bytes=-1"),
    "retention.ms": ("5000", "false", "DYNAMIC_TOPIC_CONFIG:retention.ms=5000"),
    "segment.bytes": (
        "2000000",
        "false",
        (
            "DYNAMIC_DEFAULT_BROKER_CONFIG:log.segment.bytes=2000000, "
            "DEFAULT_CONFIG:log.segment.bytes=1073741824"
        ),
    ),
    "segment.index.bytes": (
        "10485760",
        "false",
        "DEFAULT_CONFIG:log.index.size.max.bytes=10485760",
    ),
    "segment.jitter.ms": ("0", "false", ""),
    "segment.ms": ("604800000", "false", ""),
    "unclean.leader.election.enable": (
        "false",
        "false",
        "DEFAULT_CONFIG:unclean.leader.election.enable=false",
    ),
}


def test_describe_all_of_a_topic_reads_like_kafkas(cluster: Cluster) -> None:
    bootstrap, _ = cluster
    _create_topic(bootstrap(), "described", "retention.ms=5000")
    _create_topic(bootstrap(), "plain")
    added = "log.segment.bytes=2000000,min.insync.replicas=1"
    _printed(
        bootstrap(),
        "--alter",
        "--entity-type",
        "brokers",
        "--entity-default",
        "--add-config",
        added,
    )

    lines = _printed(
        bootstrap(), "--describe", "--all", "--entity-type", "topics", "--entity-name", "described"
    )
    assert lines[0] == "All configs for topic described are:"
    rows = _described(lines)
    kafka_names = set(rows) - OWN
    assert len(kafka_names) == 37, sorted(kafka_names)
    for name, value in OWN_VALUES.items():
        assert rows[name][0] in (value, "9223372036854775807"), name
    # Every config the same way on both brokers apart from the deliberate values.
    shown = {name: row for name, row in rows.items() if name not in OWN and name not in OWN_VALUES}
    assert shown == KAFKA_DESCRIBED
    # No override, only log.retention.hours given: retention.ms lists no synonym.
    plain = _described(
        _printed(
            bootstrap(), "--describe", "--all", "--entity-type", "topics", "--entity-name", "plain"
        )
    )
    assert plain["retention.ms"] == (str(100 * 3600 * 1000), "false", "")


# Broker configs both must describe alike: set dynamically and statically by the test,
# and configs this broker has no equivalent of, with Kafka's defaults. (The rest differ
# where the harness gives Kafka host settings, or where contextplane's defaults are its
# own: docs/rfcs/0008-kafka4-parity.md, "DescribeConfigs complete as built".)
BROKER_LINES = {
    "log.retention.ms": (
        "5000",
        "false",
        "DYNAMIC_BROKER_CONFIG:log.retention.ms=5000, "
        "STATIC_BROKER_CONFIG:log.retention.hours=100, "
        "DEFAULT_CONFIG:log.retention.hours=168",
    ),
    "log.retention.minutes": ("null", "false", ""),
    "log.segment.bytes": (
        "2000000",
        "false",
        "DYNAMIC_DEFAULT_BROKER_CONFIG:log.segment.bytes=2000000, "
        "DEFAULT_CONFIG:log.segment.bytes=1073741824",
    ),
    "background.threads": ("10", "false", "DEFAULT_CONFIG:background.threads=10"),
    "compression.gzip.level": ("-1", "false", "DEFAULT_CONFIG:compression.gzip.level=-1"),
    "log.local.retention.ms": ("-2", "false", "DEFAULT_CONFIG:log.local.retention.ms=-2"),
    "remote.log.storage.system.enable": (
        "false",
        "false",
        "DEFAULT_CONFIG:remote.log.storage.system.enable=false",
    ),
    # A DOUBLE as Java prints it (Double.MAX_VALUE, not Python's 1.7976931348623157e+308).
    "log.cleaner.io.max.bytes.per.second": (
        "1.7976931348623157E308",
        "false",
        "DEFAULT_CONFIG:log.cleaner.io.max.bytes.per.second=1.7976931348623157E308",
    ),
    "ssl.key.password": ("null", "true", ""),
    "alter.config.policy.class.name": ("null", "false", ""),
}


def test_describe_all_of_a_broker_reads_like_kafkas(cluster: Cluster) -> None:
    bootstrap, _ = cluster
    default = ("--entity-type", "brokers", "--entity-default")
    _printed(bootstrap(), "--alter", *default, "--add-config", "log.segment.bytes=2000000")
    broker = ("--entity-type", "brokers", "--entity-name", "1")
    _printed(bootstrap(), "--alter", *broker, "--add-config", "log.retention.ms=5000")
    lines = _printed(bootstrap(), "--describe", "--all", *broker)
    assert lines[0] == "All configs for broker 1 are:"
    rows = _described(lines)
    # Kafka 4.4's CONFIG_DEF less its internal configs; on contextplane its own too.
    own = set(rows) & OWN_BROKER
    assert len(set(rows) - own) == 350
    if own:
        assert own == OWN_BROKER
        assert rows["zone.produce.proxy.enable"] == (
            "false",
            "false",
            "DEFAULT_CONFIG:zone.produce.proxy.enable=false",
        )
    assert {name: rows[name] for name in BROKER_LINES} == BROKER_LINES
    # Kafka 4.4 prints log.retention.hours as 168 once log.retention.ms is set dynamically
    # (its value trails); contextplane prints the given 100. The synonyms agree.
    assert rows["log.retention.hours"][1:] == (
        "false",
        "STATIC_BROKER_CONFIG:log.retention.hours=100, DEFAULT_CONFIG:log.retention.hours=168",
    )
