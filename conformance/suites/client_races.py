"""Client tests that can lose a race inside the client library itself, against Apache Kafka
as well as against contextplane (each suite's FINDINGS.md, "Client race"). A suite's gate
run gives such a test one more run when it fails, and the second run decides; every other
test gets one run."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from conformance.suites import FAILED


def to_rerun(outcomes: dict[str, str], candidates: Iterable[str]) -> list[str]:
    """The failed tests among `candidates`, in a stable order."""
    wanted = set(candidates)
    return sorted(t for t, state in outcomes.items() if state == FAILED and t in wanted)


def settle(
    outcomes: dict[str, str],
    rerun: Callable[[list[str]], dict[str, str]],
    log: Callable[[str], object],
    candidates: Iterable[str],
    suite: str,
) -> dict[str, str]:
    """Outcomes after one more run of each failed candidate (`rerun(ids)` runs them and
    returns their outcomes); a test the rerun did not report stays failed."""
    again = to_rerun(outcomes, candidates)
    if not again:
        return outcomes
    for test in again:
        log(f"{suite}: {test} failed; running it once more (client race, FINDINGS.md)")
    second = rerun(again)
    settled = dict(outcomes)
    for test in again:
        settled[test] = second.get(test, FAILED)
        log(f"{suite}: {test} on its second run: {settled[test]}")
    return settled
