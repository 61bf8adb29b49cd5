"""The quick (CI) run's subset of each client suite's allowlist: the allowlist less the
tests in `tests.full-only`, every allowlisted test with CONTEXTPLANE_FULL_CONFORMANCE=1.
A full-only line names tests that keep its area covered in CI: they must be run there."""

from __future__ import annotations

import re

import pytest

from conformance.suites import (
    FULL_CONFORMANCE_ENV,
    SUITES,
    answered_tests,
    cluster_allow_path,
    cluster_fails_path,
    full_only_path,
    quick_tests,
    read_allowlist,
    read_cluster_allow,
    read_cluster_fails,
    read_full_only,
)

WITH_FULL_ONLY = [name for name in SUITES if full_only_path(name).exists()]


def test_the_suites_leave_their_slowest_tests_to_the_full_run() -> None:
    slowest = {
        "librdkafka",
        "librdkafka_sasl",
        "franz_go",
        "librdkafka_consumer",
        "franz_go_consumer",
    }
    assert slowest <= set(WITH_FULL_ONLY)


@pytest.mark.parametrize("suite", WITH_FULL_ONLY)
def test_full_only_tests_are_allowlisted_and_left_out_of_the_quick_run(
    suite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FULL_CONFORMANCE_ENV, raising=False)
    allow, full_only = read_allowlist(suite), read_full_only(suite)
    assert full_only, f"{full_only_path(suite)} names no test"
    stale = [t for t in full_only if t not in allow]
    assert not stale, f"full-only tests not on the allowlist: {stale}"
    assert quick_tests(suite) == [t for t in allow if t not in set(full_only)]


@pytest.mark.parametrize("suite", WITH_FULL_ONLY)
def test_the_tests_a_full_only_line_names_as_cover_run_in_ci(
    suite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FULL_CONFORMANCE_ENV, raising=False)
    # A variant's line (librdkafka_sasl, franz_go_consumer) may name a test its plain suite
    # runs in CI.
    base = suite.rsplit("_", 1)[0] if suite.endswith(("_sasl", "_consumer")) else suite
    quick = set(quick_tests(suite)) | set(quick_tests(base))
    for line in full_only_path(suite).read_text().splitlines():
        test, _, comment = line.partition("#")
        if not test.strip():
            continue
        named = re.findall(r"\b(?:\d{4}_\w+|Test[\w/]+)", comment)  # librdkafka's, franz-go's
        missing = [t for t in named if t not in quick]
        assert not missing, f"{test.strip()}: its cover is not run in CI: {missing}"


@pytest.mark.parametrize("suite", WITH_FULL_ONLY)
def test_full_conformance_runs_every_allowlisted_test(
    suite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FULL_CONFORMANCE_ENV, "1")
    assert quick_tests(suite) == read_allowlist(suite)


@pytest.mark.parametrize("full", [False, True])
def test_a_run_of_selected_tests_answers_for_those_alone(full: bool) -> None:
    """`--only` runs the tests it names: the rest of the allowlist, never started, is no
    regression; a named test's allowlisted subtests are answered for with it."""
    allow = read_allowlist("franz_go_consumer")
    parent = next(t.split("/", 1)[0] for t in allow if "/" in t)
    plain = next(t for t in allow if not t.startswith(parent))
    answered = answered_tests(
        "franz_go_consumer", full=full, only=[plain, parent, "TestNotInTheList"]
    )
    assert answered == [t for t in allow if t == plain or t.startswith(f"{parent}/")]
    assert len(answered) >= 2 and len(answered) < len(allow)
    assert answered_tests("franz_go_consumer", full=True, only=None) == allow


@pytest.mark.parametrize(
    "suite", [name for name in SUITES if cluster_fails_path(name).exists()] or ["none"]
)
def test_the_cluster_target_answers_for_the_allowlist_less_its_known_failures(
    suite: str,
) -> None:
    """A test `tests.cluster-fails` names is allowlisted (it passes on one broker) and is
    no regression on three brokers; every other allowlisted test still is."""
    assert suite != "none", "no suite names tests that cannot pass on three brokers"
    allow, fails = read_allowlist(suite), read_cluster_fails(suite)
    assert fails and set(fails) <= set(allow), f"not allowlisted: {set(fails) - set(allow)}"
    on_cluster = answered_tests(suite, full=True, only=None, cluster=True)
    assert on_cluster == [t for t in allow if t not in set(fails)]
    assert answered_tests(suite, full=True, only=None) == allow


def test_the_full_run_adds_the_cluster_target_for_its_plaintext_suites() -> None:
    from conformance.run import ALL, suite_targets

    plain = [name for name in SUITES if not name.endswith("_sasl")]
    assert suite_targets(ALL, True, False, False, "contextplane") == [
        (False, SUITES),
        (True, plain),
    ]
    assert suite_targets(ALL, True, False, True, "contextplane") == [(False, SUITES)]
    assert suite_targets(ALL, False, False, False, "contextplane") == [(False, SUITES)]
    assert suite_targets(ALL, True, False, False, "kafka") == [(False, SUITES)]
    assert suite_targets(SUITES, False, True, False, "contextplane") == [(True, plain)]
    assert suite_targets(["librdkafka_sasl"], True, False, False, "contextplane") == [
        (False, ["librdkafka_sasl"])
    ]


@pytest.mark.parametrize(
    "suite", [name for name in SUITES if cluster_allow_path(name).exists()] or ["none"]
)
def test_the_cluster_target_answers_for_its_own_allowlist_in_full_runs(suite: str) -> None:
    """A test `tests.cluster-allow` names (it cannot pass on one broker) is answered for
    by the cluster's full run and a run selecting it, never on one broker nor in the
    quick run."""
    assert suite != "none", "no suite names tests that pass on three brokers only"
    only_there = read_cluster_allow(suite)
    assert only_there and not set(only_there) & set(read_allowlist(suite))
    on_cluster = answered_tests(suite, full=True, only=None, cluster=True)
    assert set(only_there) <= set(on_cluster)
    assert not set(only_there) & set(answered_tests(suite, full=True, only=None))
    assert not set(only_there) & set(answered_tests(suite, full=False, only=None, cluster=True))
    selected = answered_tests(suite, full=False, only=only_there[:1], cluster=True)
    assert selected == only_there[:1]
