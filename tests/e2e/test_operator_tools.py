"""Apache Kafka 4.4's operator tools (its tools jar) against contextplane and, marked
slow and long (tests/support/twins.py), against Apache Kafka 4.4: what both print is
compared where it can be.
`kafka-log-dirs.sh --describe`: one log directory per broker, each partition's size
(the same batches from the same producer: the same bytes on both).
`kafka-client-metrics.sh --list` and `kafka-configs.sh --describe --entity-type groups`
(ListConfigResources)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.twins import kafka_twin, twin_bootstrap

TIMEOUT_S = 120  # liveness bound of each command


@pytest.fixture(params=["contextplane", kafka_twin("apache-kafka")])
def bootstrap(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with twin_bootstrap(request.param, tmp_path) as address:
        yield address


def _tool(bootstrap: str, tool: str, *args: str) -> list[str]:
    """The output lines of one of Kafka's tools (org.apache.kafka.tools.<tool>); it must
    succeed."""
    from conformance.suites.librdkafka.suite import fetch_kafka_tools

    java = shutil.which("java")
    assert java is not None, "java is installed by harness/install.sh"
    command = [java, "-cp", f"{fetch_kafka_tools()}/*", f"org.apache.kafka.tools.{tool}"]
    command += ["--bootstrap-server", bootstrap, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-2000:]
    return [line.strip() for line in result.stdout.strip().splitlines()]


def _produced(bootstrap: str, topic: str, partitions: int, records: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(TIMEOUT_S)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    for i in range(records):
        producer.produce(topic, f"record-{i:04d}".encode() * 10, partition=0)
        producer.flush(TIMEOUT_S)  # one batch each: the same bytes on both brokers


def test_kafka_log_dirs_describe(bootstrap: str) -> None:
    _produced(bootstrap, "sized", 2, 10)
    printed = _tool(bootstrap, "LogDirsCommand", "--describe", "--topic-list", "sized")
    assert printed[0] == "Querying brokers for log directories information"
    assert printed[1] == "Received log directory information from brokers 1"
    (broker,) = json.loads(printed[2])["brokers"]
    assert broker["broker"] == 1
    (log_dir,) = broker["logDirs"]
    assert log_dir["error"] is None
    partitions = {p["partition"]: p for p in log_dir["partitions"]}
    assert set(partitions) == {"sized-0", "sized-1"}
    assert partitions["sized-1"]["size"] == 0
    # Ten batches of one record with a 110-byte value, as Kafka stores them.
    assert partitions["sized-0"]["size"] == 10 * 180
    assert all(p["offsetLag"] == 0 and p["isFuture"] is False for p in partitions.values())


def test_kafka_client_metrics_list(bootstrap: str) -> None:
    """ListConfigResources v1 with CLIENT_METRICS: none on either broker."""
    assert _tool(bootstrap, "ClientMetricsCommand", "--list") == []


def test_kafka_configs_describe_groups_lists_those_with_configs(bootstrap: str) -> None:
    """`--describe --entity-type groups` without a name lists the groups through
    ListConfigResources: those with config overrides."""
    group = ("--entity-type", "groups")
    _tool(bootstrap, "ConfigCommand", "--alter", *group, "--entity-name", "g1",
          "--add-config", "consumer.session.timeout.ms=50000")  # fmt: skip
    printed = _tool(bootstrap, "ConfigCommand", "--describe", *group)
    assert printed == [
        "Dynamic configs for group g1 are:",
        "consumer.session.timeout.ms=50000 sensitive=false "
        "synonyms={DYNAMIC_GROUP_CONFIG:consumer.session.timeout.ms=50000, "
        "DEFAULT_CONFIG:group.consumer.session.timeout.ms=45000}",
    ]


def test_kafka_leader_election(bootstrap: str) -> None:
    """One replica: the preferred replica leads already, on both brokers."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("elected", 2, 1)])["elected"].result(TIMEOUT_S)
    election = ("LeaderElectionCommand", "--election-type")
    named = ("--topic", "elected", "--partition", "1")
    assert _tool(bootstrap, *election, "PREFERRED", *named) == [
        "Valid replica already elected for partitions elected-1"
    ]
    assert _tool(bootstrap, *election, "UNCLEAN", *named) == [
        "Valid replica already elected for partitions elected-1"
    ]
    every = _tool(bootstrap, *election, "PREFERRED", "--all-topic-partitions")
    assert every == []


def test_kafka_metadata_quorum_status(bootstrap: str) -> None:
    """One voter, the leader (contextplane: the controller, a documented difference), no
    observers and no lag on a one-broker cluster."""
    printed = _tool(bootstrap, "MetadataQuorumCommand", "describe", "--status")
    fields = dict(line.split(":", 1) for line in printed)
    fields = {name.strip(): value.strip() for name, value in fields.items()}
    assert fields["LeaderId"] == "1"
    assert fields["MaxFollowerLag"] == "0"
    assert fields["CurrentObservers"] == "[]"
    (voter,) = json.loads(fields["CurrentVoters"])
    assert voter["id"] == 1


def _features(bootstrap: str) -> dict[str, dict[str, str]]:
    """`kafka-features.sh describe`: each feature's fields (but the epoch)."""
    described = {}
    for line in _tool(bootstrap, "FeatureCommand", "describe"):
        fields = dict(re.findall(r"(\w+): (\S+)", line))  # padded with spaces
        fields.pop("Epoch")
        described[fields.pop("Feature")] = fields
    return described


def test_kafka_features_describe(bootstrap: str) -> None:
    """The features both brokers finalize print the same; Kafka 4.4 also lists KRaft's
    (metadata.version, kraft.version), streams.version and ELR, which contextplane does
    not have, and finalizes share.version 2 where contextplane has 1."""
    features = _features(bootstrap)
    for name in ("group.version", "transaction.version"):
        level = "1" if name == "group.version" else "2"
        assert features[name] == {
            "SupportedMinVersion": "0",
            "SupportedMaxVersion": level,
            "FinalizedVersionLevel": level,
        }
    assert features["share.version"]["SupportedMinVersion"] == "0"
