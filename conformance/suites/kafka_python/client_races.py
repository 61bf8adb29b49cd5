"""kafka-python tests that can lose a race inside the client itself, against Apache Kafka as
often as against contextplane (FINDINGS.md, "Client race"). The gate runs such a test once
more when it fails, and the second run decides; every other test gets one run.

The race: a consumer with group_id=None that calls subscribe() while its first Metadata
request (sent with no topics) is in flight. The response clears kafka-python's
"update needed" flag that subscribe() just set (kafka/cluster.py update_metadata), the
consumer assigns itself no partitions and waits metadata_max_age_ms (5 min) for the next
refresh, so it receives nothing before the test's 30-s consumer timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from conformance.suites import client_races as races

# Only tests that build the consumer right before subscribe(): test_end_to_end builds it
# before producing 100 records, by when its first Metadata answer is long back.
RERUN_ON_FAILURE = frozenset(
    f"test/integration/test_producer_integration.py::test_idempotent_producer_max_in_flight[{n}]"
    for n in (1, 2, 5)
)


def to_rerun(outcomes: dict[str, str], candidates: Iterable[str] = RERUN_ON_FAILURE) -> list[str]:
    """The failed tests among `candidates`, in a stable order."""
    return races.to_rerun(outcomes, candidates)


def settle(
    outcomes: dict[str, str],
    rerun: Callable[[list[str]], dict[str, str]],
    log: Callable[[str], object],
    candidates: Iterable[str] = RERUN_ON_FAILURE,
) -> dict[str, str]:
    """Outcomes after one more run of each failed candidate (conformance/suites/client_races.py)."""
    return races.settle(outcomes, rerun, log, candidates, "kafka-python")
