"""franz-go's group tests under the consumer group protocol (KIP-848), against contextplane.

The same kgo test binary as the franz_go suite. franz-go's tests pick the protocol per
subtest rather than from the environment: the cases named `…/848` (a balancer with KIP-848
enabled, or `ServerSideBalancer()`) join through ConsumerGroupHeartbeat, and skip when the
broker's ApiVersions lack ConsumerGroupHeartbeat v1. This variant runs exactly those
subtests and Test848RegexBrokerResolves (a regex subscription the broker resolves); a
skip counts as not passed.
"""

from __future__ import annotations

from pathlib import Path

from conformance.suites.franz_go import suite as franz_go

NAME = f"franz-go kgo {franz_go.VERSION}, KIP-848 subtests"
BROKER_SETTINGS = dict(franz_go.BROKER_SETTINGS)
# The KIP-848 cases of v1.22.3's kgo tests (group_test.go, consumer_test.go, txn_test.go).
TESTS = [
    "Test848RegexBrokerResolves",
    "TestGroupSimple/848",
    "TestGroupETL/range/848",
    "TestGroupETL/sticky/848",
    "TestGroupETL/sticky/848/static",
    "TestTxnEtl/range/848",
    "TestTxnEtl/sticky/848",
    "TestTxnEtl/sticky/848/static",
]


def prepare(log) -> Path:  # noqa: ANN001
    return franz_go.prepare(log)


def run(
    src: Path,
    bootstrap: str,
    kafka_version: str,
    tests: list[str] | None,
    log,  # noqa: ANN001
    deadline: float,
) -> dict[str, str]:
    return franz_go.run(
        src, bootstrap, kafka_version, TESTS if tests is None else tests, log, deadline
    )
