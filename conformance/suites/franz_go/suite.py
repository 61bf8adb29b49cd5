"""franz-go's kgo integration tests against contextplane.

The module source comes from the Go module proxy (`go mod download`) and is copied out of
the read-only module cache into the conformance cache, where `go test` builds it. Only
the kgo tests that talk to a broker count: a test function is an integration test when
it (or a test-file helper it calls, transitively) uses the seed brokers (KGO_SEEDS via
newTestClient, testClientOpts, getSeedBrokers, tmpTopic...). Unit tests of the package
are left out of the totals. Test ids are Go test names, e.g. `TestGroupETL`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conformance.suites import FAILED, PASSED, SKIPPED, SuiteUnavailable, work_dir
from harness.cache import cache_root, go_env, tail

MODULE = "github.com/twmb/franz-go"
VERSION = "v1.22.3"  # newest the package lists show accepted by go 1.26
NAME = f"franz-go kgo {VERSION}"
BROKER_SETTINGS = {
    "group.initial.rebalance.delay.ms": "0",
}
# One broker: replication factor 1 (the tests default to 3, for franz-go's 3-broker CI).
TEST_RF = 1
# The ETL tests push 500,000 records by default; 20,000 keeps a run within minutes on
# 2 cores while still exercising batching, rebalances and commits.
TEST_RECORDS = 20000
_MARKERS = ("newTestClient", "testClientOpts", "getSeedBrokers", "tmpTopic", "KGO_SEEDS")
_FUNC = re.compile(r"^func (?:\([^)]*\) )?(\w+)\(", re.M)


def _cache() -> Path:
    return cache_root() / f"franz-go-{VERSION}"


def prepare(log) -> Path:  # noqa: ANN001
    """Download the module, copy it somewhere writable, build the kgo test binary."""
    if shutil.which("go") is None:
        raise SuiteUnavailable("no Go toolchain on PATH")
    work = _cache()
    src = work / "src"
    binary = work / "kgo.test"
    if binary.exists() and (src / "go.mod").exists():
        return src
    log(f"franz-go: go mod download {MODULE}@{VERSION} and build the kgo tests (~2 min)")
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{MODULE}@{VERSION}"],
        capture_output=True, text=True, check=False, env=go_env(), cwd=tempfile.gettempdir(),
    )  # fmt: skip
    if proc.returncode != 0:
        try:  # -json reports the cause in the module's "Error" field
            cause = json.loads(proc.stdout)["Error"]
        except (ValueError, KeyError, TypeError):
            cause = tail(proc.stderr or proc.stdout)
        raise SuiteUnavailable(
            f"could not download {MODULE}@{VERSION} from the Go module proxy:\n{cause}"
        )
    module_dir = Path(json.loads(proc.stdout)["Dir"])
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(module_dir, src)
    for path in src.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    proc = subprocess.run(
        ["go", "test", "-c", "-o", str(binary), "./pkg/kgo"],
        capture_output=True, text=True, check=False, env=go_env(), cwd=src,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SuiteUnavailable(
            f"could not build the kgo tests (go test -c):\n{tail(proc.stderr or proc.stdout)}"
        )
    return src


def integration_tests(src: Path) -> list[str]:
    """Test functions of pkg/kgo that reach a broker (directly or through helpers)."""
    bodies: dict[str, str] = {}
    for path in sorted((src / "pkg" / "kgo").glob("*_test.go")):
        text = path.read_text()
        starts = [(m.start(), m[1]) for m in _FUNC.finditer(text)]
        for i, (start, name) in enumerate(starts):
            end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
            bodies[name] = bodies.get(name, "") + text[start:end]
    reaching = {n for n, body in bodies.items() if any(m in body for m in _MARKERS)}
    changed = True
    while changed:
        changed = False
        for name, body in bodies.items():
            if name in reaching:
                continue
            if any(re.search(rf"\b{re.escape(h)}\(", body) for h in reaching):
                reaching.add(name)
                changed = True
    return sorted(n for n in reaching if n.startswith("Test") and re.match(r"Test[A-Z0-9_]", n))


PER_TEST_TIMEOUT = 150  # seconds; a hung test (e.g. waiting on transactions) is failed
PARALLEL = 2
_RESULT = re.compile(r"^\s*--- (PASS|FAIL|SKIP): (\S+)", re.M)  # subtests are indented


def _run_one(
    binary: Path, cwd: Path, env: dict[str, str], top: str, ids: list[str], logs: Path
) -> dict[str, str]:
    """One top-level test in its own process, so a hang costs one timeout, not the whole
    run; `ids` are it or its subtests (`TestGroupETL/range/848`), each judged by its own
    result line. The whole test runs: its subtests share state (a semaphore a subtest
    left out by -test.run never releases), and a subtest's line is its verdict."""
    cmd = [str(binary), "-test.v", f"-test.run=^{re.escape(top)}$", "-test.parallel=4"]
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True,
            timeout=PER_TEST_TIMEOUT, check=False, errors="replace",
        )  # fmt: skip
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        raw = exc.stdout or b""
        output = (raw.decode(errors="replace") if isinstance(raw, bytes) else raw) + (
            f"\n--- conformance: killed after {PER_TEST_TIMEOUT}s\n"
        )
        code = -1
    (logs / f"{top}.log").write_text(output)
    states = {m[2]: m[1] for m in _RESULT.finditer(output)}
    outcomes = {}
    for test in ids:
        state = states.get(test)
        # A subtest's sibling failing fails the process, not the subtest.
        ok = code == 0 or (code != -1 and "/" in test)
        verdict = {"PASS": PASSED, "SKIP": SKIPPED}.get(state or "", FAILED)
        outcomes[test] = verdict if ok else FAILED
    return outcomes


def run(
    src: Path,
    bootstrap: str,
    kafka_version: str,
    tests: list[str] | None,
    log,  # noqa: ANN001
    deadline: float,
) -> dict[str, str]:
    selected = integration_tests(src) if tests is None else list(tests)
    binary = _cache() / "kgo.test"
    logs = work_dir("kgo-")
    env = dict(
        go_env(),
        KGO_SEEDS=bootstrap,
        KGO_LOG_LEVEL="none",
        KGO_TEST_RF=str(TEST_RF),
        KGO_TEST_RECORDS=str(TEST_RECORDS),
    )
    log(f"franz-go: {len(selected)} integration tests against {bootstrap}, {PARALLEL} at a time")
    by_top: dict[str, list[str]] = {}
    for test in selected:
        by_top.setdefault(test.split("/", 1)[0], []).append(test)
    outcomes: dict[str, str] = {}
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {
            top: pool.submit(
                lambda top, ids: (
                    dict.fromkeys(ids, FAILED)
                    if time.monotonic() > deadline
                    else _run_one(binary, src / "pkg" / "kgo", env, top, ids, logs)
                ),
                top,
                ids,
            )
            for top, ids in by_top.items()
        }
        for top, ids in by_top.items():
            outcomes.update(futures[top].result())
            for test in ids:
                log(f"  franz-go {test:<55} {outcomes[test]}")
    log(f"franz-go: per-test output in {logs}")
    return outcomes
