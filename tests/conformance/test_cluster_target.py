"""The gate's cluster target (`python -m conformance.run --cluster`): client suites'
own tests against three brokers on PostgreSQL and SeaweedFS, started by the local
cluster's supervisor; the client is given broker 1 and finds the others through
Metadata, its partitions and coordinators spread over the three; each broker's log is
kept with the results."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cluster_target import BROKERS, cluster_broker
from conformance.suites import run_suite

pytestmark = pytest.mark.slow

SUITES = {
    # librdkafka: produce, consume and a consumer group's commits.
    "librdkafka": ["0008_reqacks", "0012_produce_consume", "0013_null_msgs", "0029_assign_offset"],
    # franz-go: produce and consume (one and two partitions, manual partitioning, a purged
    # partition's consumption), consumer groups (one member committing, and the ETL chain
    # of groups over many partitions with each balancer, rebalances and commits), and a
    # share group's offsets described by its coordinator, which need not lead the
    # partitions (their lag comes from their leaders).
    "franz_go": [
        "TestIssue325",
        "TestIssue337",
        "TestDirectPartitionPurge",
        "TestGroupSimple",
        "TestGroupETL",
        "TestShareGroupOffsetsAdmin",
    ],
}


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_client_tests_pass_against_three_brokers(suite: str, tmp_path: Path) -> None:
    tests = SUITES[suite]
    result = run_suite(
        suite,
        lambda spec: cluster_broker(spec, tmp_path / "kept"),
        full=False,
        only=tests,
        log=print,
        budget_s=600,
    )
    assert result.error is None, result.error
    assert {t: result.outcomes.get(t) for t in tests} == dict.fromkeys(tests, "passed")
    assert sorted(p.name for p in (tmp_path / "kept").glob("broker-*.log")) == [
        f"broker-{n}.log" for n in range(1, BROKERS + 1)
    ]
