"""Apache Kafka's own `kafka-configs.sh` (ConfigCommand, Kafka 4.4's tools jar) with
`--entity-type brokers`: per-broker (`--entity-name 1`) and cluster-default
(`--entity-default`) dynamic configs added, refused, described and deleted, and a broker
restart keeping them. The same run against contextplane and against Apache Kafka 4.4
prints the same (both started with `log.retention.hours=100`, a static broker config
that the synonyms name). A per-broker alteration names broker 1: the admin client sends
it to that node, so another id cannot be tried with the tool (tests/e2e/
test_dynamic_broker_configs.py sends one)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import kafka_reference
from tests.support.inprocess import InProcessBroker
from tests.support.twins import kafka_twin

TIMEOUT_S = 120  # liveness bound of each command
BROKER = ("--entity-type", "brokers", "--entity-name", "1")
DEFAULT = ("--entity-type", "brokers", "--entity-default")
STATIC = {"log.retention.hours": "100"}

# (address of the running broker, restart it)
Cluster = tuple[Callable[[], str], Callable[[], None]]


# Apache Kafka's run takes minutes (two starts, a JVM per command).
@pytest.fixture(params=["contextplane", kafka_twin("apache-kafka")])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    if request.param == "contextplane":
        broker = InProcessBroker(tmp_path / "broker", settings=dict(STATIC)).start()
        try:
            yield (lambda: broker.bootstrap), lambda: broker.restart()
        finally:
            broker.stop()
    else:
        kafka = [kafka_reference.start(data_dir=tmp_path / "kafka", extra_props=STATIC)]

        def restart() -> None:
            kafka[0].stop(remove_data=False)
            kafka[0] = kafka_reference.start(
                data_dir=tmp_path / "kafka", extra_props=STATIC, timeout=120
            )

        try:
            yield (lambda: kafka[0].bootstrap), restart
        finally:
            kafka[0].stop()


def _configs(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    from conformance.suites.librdkafka.suite import fetch_kafka_tools

    java = shutil.which("java")
    assert java is not None, "java is installed by harness/install.sh"
    command = [java, "-cp", f"{fetch_kafka_tools()}/*", "org.apache.kafka.tools.ConfigCommand"]
    command += ["--bootstrap-server", bootstrap, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)


def _printed(bootstrap: str, *args: str) -> list[str]:
    """The tool's output lines; it must succeed."""
    result = _configs(bootstrap, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    return [line.strip() for line in result.stdout.strip().splitlines()]


def _refused(bootstrap: str, *args: str) -> str:
    """The exception the tool fails with (its `Caused by:` line)."""
    result = _configs(bootstrap, *args)
    assert result.returncode == 1, result.stdout
    causes = [line for line in result.stderr.splitlines() if line.startswith("Caused by: ")]
    assert causes, result.stderr[-2000:]
    return causes[-1].removeprefix("Caused by: ")


RETENTION = (
    "log.retention.ms={value} sensitive=false synonyms={{{synonyms}"
    "STATIC_BROKER_CONFIG:log.retention.hours=100, DEFAULT_CONFIG:log.retention.hours=168}}"
)
BROKER_SAYS = "Dynamic configs for broker 1 are:"
DEFAULT_SAYS = "Default configs for brokers in the cluster are:"
MIN_ISR = (
    "min.insync.replicas=1 sensitive=false synonyms="
    "{DYNAMIC_DEFAULT_BROKER_CONFIG:min.insync.replicas=1}"
)
INVALID = "org.apache.kafka.common.errors.InvalidRequestException: "


def test_kafka_configs_alters_describes_and_deletes_broker_configs(cluster: Cluster) -> None:
    bootstrap, restart = cluster
    # Kafka's storage format writes min.insync.replicas=1 as a cluster default (and
    # refuses to delete it while ELR is on); contextplane is given the same.
    _printed(bootstrap(), "--alter", *DEFAULT, "--add-config", "min.insync.replicas=1")
    assert _printed(bootstrap(), "--describe", *BROKER) == [BROKER_SAYS]
    assert _printed(bootstrap(), "--describe", *DEFAULT) == [DEFAULT_SAYS, MIN_ISR]

    added = "log.retention.ms=1000,message.max.bytes=2000000,custom.setting=1"
    assert _printed(bootstrap(), "--alter", *BROKER, "--add-config", added) == [
        "Completed updating config for broker 1."
    ]
    added = "log.retention.ms=5000,log.cleaner.threads=2"
    assert _printed(bootstrap(), "--alter", *DEFAULT, "--add-config", added) == [
        "Completed updating default config for brokers in the cluster."
    ]
    for level, config, refusal in [
        (BROKER, "num.partitions=3", "Cannot update these configs dynamically: [num.partitions]"),
        (DEFAULT, "num.partitions=3", "Cannot update these configs dynamically: [num.partitions]"),
        (
            DEFAULT,
            "log.retention.ms=abc",
            "Invalid value abc for configuration log.retention.ms: Not a number of type LONG",
        ),
        (
            BROKER,
            "message.max.bytes=-5",
            "Invalid value -5 for configuration message.max.bytes: Value must be at least 0",
        ),
        (
            DEFAULT,
            "log.cleaner.min.cleanable.ratio=1e10",
            # The number as Java's Double.toString prints it.
            "Invalid value 1.0E10 for configuration log.cleaner.min.cleanable.ratio: "
            "Value must be no more than 1",
        ),
        (
            BROKER,
            "log.cleanup.policy=[compact,purge]",
            "Invalid value purge for configuration log.cleanup.policy: String must be one of: "
            "compact, delete",
        ),
        (
            BROKER,
            "ssl.keystore.type=PKCS12",
            "These security configs can be dynamically updated only per-listener using the "
            "listener prefix: [ssl.keystore.type]",
        ),
        (
            DEFAULT,
            "listener.name.plaintext.ssl.keystore.location=/x",
            "Cannot update these configs at default cluster level, broker id must be "
            "specified: [listener.name.plaintext.ssl.keystore.location]",
        ),
    ]:
        alter = ("--alter", *level, "--add-config", config)
        assert _refused(bootstrap(), *alter) == INVALID + refusal, config

    both = "DYNAMIC_BROKER_CONFIG:log.retention.ms=1000, DYNAMIC_DEFAULT_BROKER_CONFIG:"
    described = [
        BROKER_SAYS,
        # A name Kafka does not know: stored, described as possibly sensitive.
        "custom.setting=null sensitive=true synonyms={DYNAMIC_BROKER_CONFIG:custom.setting=null}",
        RETENTION.format(value=1000, synonyms=f"{both}log.retention.ms=5000, "),
        "message.max.bytes=2000000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:"
        "message.max.bytes=2000000, DEFAULT_CONFIG:message.max.bytes=1048588}",
    ]
    defaults = [
        DEFAULT_SAYS,
        "log.cleaner.threads=2 sensitive=false synonyms="
        "{DYNAMIC_DEFAULT_BROKER_CONFIG:log.cleaner.threads=2}",
        "log.retention.ms=5000 sensitive=false synonyms="
        "{DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=5000}",
        MIN_ISR,
    ]
    assert _printed(bootstrap(), "--describe", *BROKER) == described
    assert _printed(bootstrap(), "--describe", *DEFAULT) == defaults

    restart()  # stored, not only applied
    assert _printed(bootstrap(), "--describe", *BROKER) == described
    assert _printed(bootstrap(), "--describe", *DEFAULT) == defaults

    names = "log.retention.ms,message.max.bytes,custom.setting"
    deleted = ("--alter", *BROKER, "--delete-config", names)
    assert _printed(bootstrap(), *deleted) == ["Completed updating config for broker 1."]
    # The cluster default is what the broker has now; the per-broker view lists no
    # dynamic config of its own.
    assert _printed(bootstrap(), "--describe", *BROKER) == [BROKER_SAYS]
    deleted = ("--alter", *DEFAULT, "--delete-config", "log.retention.ms,log.cleaner.threads")
    assert _printed(bootstrap(), *deleted) == [
        "Completed updating default config for brokers in the cluster."
    ]
    assert _printed(bootstrap(), "--describe", *DEFAULT) == [DEFAULT_SAYS, MIN_ISR]
