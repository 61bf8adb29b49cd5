"""franz-go's kgo integration tests against three brokers on PostgreSQL and SeaweedFS,
started by the local cluster's supervisor (the gate's cluster target, issue #13): the
client is given broker 1 and finds the others through Metadata; its topics' partitions
and its groups' coordinators are spread over the three."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cluster_target import BROKERS, cluster_broker
from conformance.suites import run_suite

pytestmark = pytest.mark.slow

# Produce and consume (one and two partitions, manual partitioning, a purged partition's
# consumption), consumer groups (one member committing, and the ETL chain of groups over
# many partitions with each balancer, rebalances and commits), and a share group's
# offsets described by its coordinator, which need not lead the partitions (their lag
# comes from their leaders).
TESTS = [
    "TestIssue325",
    "TestIssue337",
    "TestDirectPartitionPurge",
    "TestGroupSimple",
    "TestGroupETL",
    "TestShareGroupOffsetsAdmin",
]


def test_franz_go_tests_pass_against_three_brokers(tmp_path: Path) -> None:
    result = run_suite(
        "franz_go",
        lambda spec: cluster_broker(spec, tmp_path / "kept"),
        full=False,
        only=TESTS,
        log=print,
        budget_s=600,
    )
    assert result.error is None, result.error
    assert {t: result.outcomes.get(t) for t in TESTS} == dict.fromkeys(TESTS, "passed")
    assert sorted(p.name for p in (tmp_path / "kept").glob("broker-*.log")) == [
        f"broker-{n}.log" for n in range(1, BROKERS + 1)
    ]
