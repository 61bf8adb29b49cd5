"""The test command: a selection that collects nothing fails instead of passing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "pytest"), "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_no_tests_collected_is_a_failure() -> None:
    # pytest itself exits 5 here; the command turns that into a failure.
    result = run_pytest("-m", "slow and not slow", "tests/test_test_command.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pytest collected no tests: failing" in result.stderr


def test_the_quick_subset_leaves_out_the_slow_tests() -> None:
    # test_crash.py's kill -9 scenarios are all marked slow.
    crash, here = "tests/e2e/test_crash.py", "tests/test_test_command.py"
    result = run_pytest("-m", "not slow", "--collect-only", crash, here)
    assert result.returncode == 0, result.stdout + result.stderr
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected and all(line.startswith(here) for line in collected), collected
    assert "deselected" in result.stdout.splitlines()[-1]


def test_ci_leaves_out_the_long_soaks_and_keeps_their_shorter_variants() -> None:
    # scripts/test selects `not long`; the soaks' shorter variants stay in that selection.
    kill9, sim = "tests/e2e/test_exactly_once_kill9.py", "tests/sim/test_storage_simulation.py"
    result = run_pytest("-m", "not long", "--collect-only", kill9, sim)
    assert result.returncode == 0, result.stdout + result.stderr
    names = {line.split("::")[-1].split("[")[0] for line in result.stdout.splitlines()}
    assert {"test_exactly_once_across_kill9", "test_a_thousand_seeds_keep_every_guarantee"} <= names
    assert not names & {
        "test_exactly_once_across_many_kill9",
        "test_thousands_of_seeds_keep_every_guarantee",
    }


def test_the_conformance_files_share_one_worker() -> None:
    # Two files, two workers: xdist's loadfile gives each worker one of them, unless the
    # two are one unit of work (tests/support/xdist_scope.py).
    files = ["tests/conformance/test_work_dirs.py", "tests/conformance/test_client_races.py"]
    result = run_pytest("-n", "2", "--dist", "loadfile", "-vv", *files)  # -vv: past -q
    assert result.returncode == 0, result.stdout + result.stderr
    ran = re.findall(r"^\[(gw\d+)\] \[[ \d%]+\] PASSED ([^:\s]+)::", result.stdout, re.M)
    assert {path for _, path in ran} == set(files), result.stdout
    assert len({worker for worker, _ in ran}) == 1, ran
