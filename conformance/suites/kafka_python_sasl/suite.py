"""kafka-python's SASL integration tests (test/integration/test_sasl_integration.py:
PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) against contextplane with a SASL_PLAINTEXT listener.

The same sdist and suite venv as the kafka_python suite. The tests skip themselves with
KAFKA_URI and otherwise ask the fixtures to start a SASL broker: the plugin in stubs/
answers those requests with the broker the harness started (see its docstring), which
has the fixture's user for all three mechanisms (PLAIN through the listener's JAAS
setting, SCRAM put in the data directory before the start). `test_admin` lists topics
with kafka-topics.sh: KAFKA_ROOT/bin/kafka-topics.sh runs Apache Kafka's own
TopicCommand, as in the librdkafka suite, and the fixture's sasl_command.conf template
(not in the sdist) is written under PROJECT_ROOT/servers/resources/default.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from conformance.suites import BrokerSpec, SuiteUnavailable, work_dir
from conformance.suites.kafka_python import suite as kafka_python
from conformance.suites.librdkafka import suite as librdkafka

NAME = f"kafka-python {kafka_python.VERSION} SASL (PyPI sdist)"
HERE = Path(__file__).resolve().parent
TEST_FILE = "test/integration/test_sasl_integration.py"
# The user test/integration/fixtures.py's KafkaFixture logs in as.
USER, PASSWORD = "alice", "alice-secret"
PLAIN_JAAS = (
    f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";'
)
# The fixture renders this with its own attributes for kafka-topics.sh --command-config.
SASL_COMMAND_CONF = (
    "security.protocol={transport}\nsasl.mechanism={sasl_mechanism}\n"
    "sasl.jaas.config={jaas_config}\n"
)


def prepare(log) -> Path:  # noqa: ANN001
    return kafka_python.prepare(log)


def broker_spec(prepared: Path) -> BrokerSpec:
    return BrokerSpec(
        {
            **kafka_python.BROKER_SETTINGS,
            "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        },
        scram_users={USER: PASSWORD},
    )


def _kafka_root(work: Path) -> Path:
    """A KAFKA_ROOT whose bin/kafka-topics.sh is Apache Kafka's TopicCommand."""
    try:
        root = librdkafka.kafka_cli(work)
    except OSError as exc:
        raise SuiteUnavailable(f"no kafka-topics.sh for test_admin: {exc}") from exc
    if root is None:
        raise SuiteUnavailable("Apache Kafka's tools (kafka-topics.sh) could not be fetched")
    return root


def run(
    src: Path,
    bootstrap: str,
    kafka_version: str,
    tests: list[str] | None,
    log,  # noqa: ANN001
    deadline: float,
) -> dict[str, str]:
    work = work_dir("kpy_sasl-")
    plugins = work / "plugins"
    plugins.mkdir()
    shutil.copy(HERE / "stubs" / "contextplane_sasl_broker.py", plugins)
    resources = work / "project" / "servers" / "resources" / "default"
    resources.mkdir(parents=True)
    (resources / "sasl_command.conf").write_text(SASL_COMMAND_CONF)
    major_minor = ".".join(kafka_version.split(".")[:2])
    env = {
        "KAFKA_VERSION": major_minor,
        "KAFKA_ROOT": str(_kafka_root(work)),
        "PROJECT_ROOT": str(work / "project"),
        "CONFORMANCE_SASL_BOOTSTRAP": bootstrap,
        "PYTHONPATH": f"{src}:{plugins}",
    }
    selection = [TEST_FILE] if tests is None else list(tests)
    log(
        f"kafka-python SASL: {'all' if tests is None else len(selection)} tests, "
        f"KAFKA_VERSION={major_minor}"
    )
    args = ["-p", "contextplane_sasl_broker", *selection]
    return kafka_python.run_pytest(src, work, env, args, tests, log, deadline)
