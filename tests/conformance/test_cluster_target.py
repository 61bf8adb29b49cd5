"""The gate's cluster target (`python -m conformance.run --cluster`): librdkafka's own
produce and consume tests against three brokers on PostgreSQL and SeaweedFS, started by
the local cluster's supervisor; each broker's log is kept with the results."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cluster_target import BROKERS, cluster_broker
from conformance.suites import run_suite

pytestmark = pytest.mark.slow

# Produce, consume and a consumer group's commits: partitions spread over the brokers.
TESTS = ["0008_reqacks", "0012_produce_consume", "0013_null_msgs", "0029_assign_offset"]


def test_librdkafka_tests_pass_against_three_brokers(tmp_path: Path) -> None:
    result = run_suite(
        "librdkafka",
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
