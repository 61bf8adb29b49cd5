"""Apache Kafka's own command-line tools (the 4.4 tools jar from the harness's cache), run
as `kafka-*.sh` runs them: the java command line for one tool's main class."""

from __future__ import annotations

import shutil
import subprocess


def kafka_tool_command(main_class: str, bootstrap: str, *args: str) -> list[str]:
    """`java -cp <tools jars> org.apache.kafka.tools.<main_class> --bootstrap-server ...`."""
    from conformance.suites.librdkafka.suite import fetch_kafka_tools

    java = shutil.which("java")
    assert java is not None, "java is installed by harness/install.sh"
    classpath = f"{fetch_kafka_tools()}/*"
    tool = f"org.apache.kafka.tools.{main_class}"
    return [java, "-cp", classpath, tool, "--bootstrap-server", bootstrap, *args]


def reassign_partitions(bootstrap: str, *args: str, timeout_s: float = 120) -> str:
    """What `kafka-reassign-partitions.sh --bootstrap-server bootstrap *args` prints; it
    must succeed."""
    command = kafka_tool_command("reassign.ReassignPartitionsCommand", bootstrap, *args)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout
