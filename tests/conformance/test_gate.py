"""The conformance gate's CI subset (`python -m conformance.run --quick`), one test per suite.

Each test fails when something on its allowlist regresses: an allowlisted librdkafka /
kafka-python / franz-go test that no longer passes against contextplane, or a scenario
listed in conformance/differential.allow that now differs from Apache Kafka in a way
conformance/differences.md does not explain. The full run (every test, every scenario)
is documented in the README and not part of CI: `python -m conformance.run --full`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance import differential, run
from conformance.suites import SUITES, quick_tests, read_allowlist, run_suite

# Minutes each (Apache Kafka and the client suites against the broker): CI runs them; the
# quick subset (-m "not slow") leaves them to `python -m conformance.run`.
pytestmark = pytest.mark.slow


def _report(lines: list[str]) -> str:
    return "\n".join(lines)


def test_differential_scenarios_still_match_kafka(tmp_path: Path) -> None:
    report = run.run_differential(full=False, patterns=None, out=tmp_path)
    print(run.table([], report, "quick"))
    broken = [r.name for r in report.results if r.broken]
    assert not broken, f"scenarios that fail against Apache Kafka itself: {broken}"
    regressions = report.regressions
    details = [d.line() for d in report.unexplained if d.scenario in set(regressions)]
    assert not regressions, "scenarios no longer matching Kafka:\n" + _report(details)
    # Deliberate rows must stay anchored to real differences (no stale, silent rows).
    assert differential.load_deliberate(), "conformance/differences.md lost its table"


# A suite whose allowlisted tests are all full-only runs in the full run alone
# (`python -m conformance.run --full`): franz_go_consumer's subtests run inside franz_go's
# CI tests; librdkafka_consumer waits for its first clean CI run (its tests.full-only).
CI_SUITES = [suite for suite in SUITES if quick_tests(suite)]


@pytest.mark.parametrize("suite", CI_SUITES)
def test_allowlisted_client_tests_still_pass(tmp_path: Path, suite: str) -> None:
    assert read_allowlist(suite), f"conformance/suites/{suite}/tests.allow is empty"
    result = run_suite(
        suite,
        lambda spec: run.contextplane_broker(spec, tmp_path / suite),
        full=False,
        only=None,
        log=print,
        budget_s=run.BUDGET["quick"][suite],
    )
    print(run.table([result], None, "quick"))
    assert result.error is None, f"{suite} could not run: {result.error}"
    assert not result.regressions, f"allowlisted {suite} tests that did not pass: " + ", ".join(
        f"{t} ({result.outcomes.get(t, 'not run')})" for t in result.regressions
    )
