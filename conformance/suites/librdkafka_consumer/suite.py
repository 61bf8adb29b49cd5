"""librdkafka's consumer-group tests under the consumer group protocol (KIP-848): the
runner's TEST_CONSUMER_GROUP_PROTOCOL=consumer gives every consumer it creates
`group.protocol=consumer` and drops the classic-only settings (session.timeout.ms,
heartbeat.interval.ms, partition.assignment.strategy, group.protocol.type).

The same runner as the librdkafka suite, from a newer Debian source package: bookworm's
2.0.2 predates KIP-848, which librdkafka made generally available in 2.10. The group
tests are those whose source subscribes a consumer to topics (35 in 2.14.2).
"""

from __future__ import annotations

import re
from pathlib import Path

from conformance.suites.librdkafka import suite as librdkafka

RELEASE, VERSION = "sid", "2.14.2-1"
NAME = f"librdkafka {VERSION.split('-')[0]} (Debian {RELEASE} src), group.protocol=consumer"
BROKER_SETTINGS = dict(librdkafka.BROKER_SETTINGS)
ENV = {"TEST_CONSUMER_GROUP_PROTOCOL": "consumer"}
_SUBSCRIBES = re.compile(r"\b(rd_kafka_subscribe|test_consumer_subscribe\w*|->subscribe)\(")


def prepare(log) -> Path:  # noqa: ANN001
    return librdkafka.prepare(log, release=RELEASE, version=VERSION)


def group_tests(src: Path) -> list[str]:
    """The runner's eligible tests whose source file subscribes a consumer to topics, less
    those that run against librdkafka's mock cluster (`…_mock`), which no broker answers."""
    out = []
    for name in librdkafka.eligible_tests(src):
        if name.endswith("_mock"):
            continue
        number, _, _ = name.partition("_")
        files = (src / "tests").glob(f"{number}-*.c*")
        if any(_SUBSCRIBES.search(path.read_text(errors="replace")) for path in files):
            out.append(name)
    return out


def run(
    src: Path,
    bootstrap: str,
    kafka_version: str,
    tests: list[str] | None,
    log,  # noqa: ANN001
    deadline: float,
) -> dict[str, str]:
    listed = tests is not None
    return librdkafka.run_tests(
        src,
        bootstrap,
        kafka_version,
        list(tests) if tests is not None else group_tests(src),
        log,
        deadline,
        env_more=ENV,
        # Not -Q: 2.14's runner then skips every sub-test not marked quick, and most
        # group tests would pass without consuming anything.
        quick=False,
        parallel=librdkafka.LISTED_PARALLEL if listed else librdkafka.PARALLEL,
    )
