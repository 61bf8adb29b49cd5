"""The gate's second run for client tests that lose a race inside the client library
(conformance/suites/client_races.py; kafka-python's and librdkafka's lists): only those
tests, only when they failed, and the second run decides."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pytest

from conformance.suites import FAILED, PASSED, SKIPPED, read_allowlist
from conformance.suites.kafka_python import client_races, suite
from conformance.suites.kafka_python.suite import HERE
from conformance.suites.librdkafka import suite as librdkafka

RACY = "test/integration/test_producer_integration.py::test_idempotent_producer_max_in_flight[1]"
OTHER_RACY = (
    "test/integration/test_producer_integration.py::test_idempotent_producer_max_in_flight[5]"
)
PLAIN = "test/integration/test_consumer_integration.py::test_kafka_consumer"


class Runner:
    """Stands in for the pytest run of the suite: answers `answers` and records what it
    was asked to run."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, tests: list[str]) -> dict[str, str]:
        self.calls.append(list(tests))
        return {t: self.answers[t] for t in tests if t in self.answers}


def test_a_racy_test_that_failed_is_run_once_more_and_the_second_run_decides() -> None:
    runner = Runner({RACY: PASSED})
    lines: list[str] = []
    first = {RACY: FAILED, OTHER_RACY: PASSED, PLAIN: PASSED}
    settled = client_races.settle(first, runner, lines.append)
    assert runner.calls == [[RACY]]
    assert settled == {RACY: PASSED, OTHER_RACY: PASSED, PLAIN: PASSED}
    assert first[RACY] == FAILED  # the first run's outcomes are not rewritten in place
    assert any(RACY in line and "once more" in line for line in lines)


def test_a_racy_test_that_fails_twice_stays_failed() -> None:
    settled = client_races.settle({RACY: FAILED}, Runner({RACY: FAILED}), lambda _: None)
    assert settled == {RACY: FAILED}
    # A second run that reports nothing for the test (it crashed) is no pass either.
    settled = client_races.settle({RACY: FAILED}, Runner({}), lambda _: None)
    assert settled == {RACY: FAILED}


def test_other_failures_get_no_second_run() -> None:
    runner = Runner({PLAIN: PASSED})
    first = {PLAIN: FAILED, RACY: SKIPPED}
    assert client_races.settle(first, runner, lambda _: None) == first
    assert runner.calls == []


def test_every_racy_test_is_allowlisted_and_explained_in_the_findings() -> None:
    allowed = set(read_allowlist("kafka_python"))
    findings = (HERE / "FINDINGS.md").read_text()
    assert client_races.RERUN_ON_FAILURE
    for test in sorted(client_races.RERUN_ON_FAILURE):
        assert test in allowed, test
        assert test.split("::", 1)[1] in findings, test


def test_every_racy_librdkafka_test_is_allowlisted_and_explained_in_the_findings() -> None:
    allowed = set(read_allowlist("librdkafka"))
    findings = (librdkafka.HERE / "FINDINGS.md").read_text()
    assert librdkafka.RERUN_ON_FAILURE
    for test in sorted(librdkafka.RERUN_ON_FAILURE):
        assert test in allowed, test
        assert test in findings, test


FLAKY_ONCE = """
import os
from pathlib import Path

import pytest


@pytest.mark.parametrize("max_in_flight", [1, 2, 5])
def test_idempotent_producer_max_in_flight(max_in_flight):
    # Fails the first time it runs in a work directory, passes after.
    seen = Path(os.environ["RACE_MARKS"]) / f"ran-{max_in_flight}"
    first = not seen.exists()
    seen.touch()
    assert not (first and max_in_flight == 1)


def test_end_to_end():
    seen = Path(os.environ["RACE_MARKS"]) / "ran-end-to-end"
    first = not seen.exists()
    seen.touch()
    assert not first
"""

# pytest-timeout's options, which the runner passes; the project's venv has no plugin.
TIMEOUT_OPTIONS = """
def pytest_addoption(parser):
    parser.addoption("--timeout")
    parser.addoption("--timeout-method")
"""


def test_the_suite_run_gives_a_racy_test_its_second_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """suite.run end to end with a real pytest: a stand-in sdist whose racy test fails once."""
    src = tmp_path / "src"
    (src / "test" / "integration").mkdir(parents=True)
    (src / "test" / "integration" / "test_producer_integration.py").write_text(FLAKY_ONCE)
    (src / "conftest.py").write_text(TIMEOUT_OPTIONS)
    cache = tmp_path / "cache"
    (cache / "venv" / "bin").mkdir(parents=True)
    python = cache / "venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    monkeypatch.setattr(suite, "_cache", lambda: cache)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the run's work directory
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("RACE_MARKS", str(marks))
    module = "test/integration/test_producer_integration.py"
    tests = [f"{module}::test_idempotent_producer_max_in_flight[{n}]" for n in (1, 2, 5)]
    tests.append(f"{module}::test_end_to_end")
    outcomes = suite.run(src, "127.0.0.1:1", "3.8.0", tests, lambda _: None, time.monotonic() + 120)
    assert outcomes == {t: PASSED for t in tests[:3]} | {tests[3]: FAILED}


def test_the_librdkafka_run_gives_its_racy_test_a_second_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []

    def run_tests(*args: object, parallel: int) -> dict[str, str]:
        selected = list(args[3])  # type: ignore[call-overload]
        assert parallel == librdkafka.LISTED_PARALLEL  # a listed run, as CI's
        calls.append(selected)
        first = len(calls) == 1
        return {t: FAILED if first and t == "0050_subscribe_adds" else PASSED for t in selected}

    monkeypatch.setattr(librdkafka, "run_tests", run_tests)
    tests = ["0001_multiobj", "0050_subscribe_adds"]
    outcomes = librdkafka.run(Path("."), "127.0.0.1:1", "4.4.0", tests, print, 0.0)
    assert outcomes == {"0001_multiobj": PASSED, "0050_subscribe_adds": PASSED}
    assert calls == [tests, ["0050_subscribe_adds"]]
