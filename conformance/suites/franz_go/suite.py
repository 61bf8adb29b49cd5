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
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from conformance.suites import FAILED, PASSED, SKIPPED, SuiteUnavailable

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
    root = Path(os.environ.get("CONTEXTPLANE_CACHE", Path.home() / ".cache" / "contextplane"))
    return root / f"franz-go-{VERSION}"


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-mod=mod")
    return env


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
        capture_output=True, text=True, check=False, env=_go_env(), cwd=tempfile.gettempdir(),
    )  # fmt: skip
    if proc.returncode != 0:
        raise SuiteUnavailable(f"go mod download failed: {(proc.stderr or proc.stdout)[-600:]}")
    module_dir = Path(json.loads(proc.stdout)["Dir"])
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(module_dir, src)
    for path in src.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    proc = subprocess.run(
        ["go", "test", "-c", "-o", str(binary), "./pkg/kgo"],
        capture_output=True, text=True, check=False, env=_go_env(), cwd=src,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SuiteUnavailable(f"go test -c failed: {(proc.stderr or proc.stdout)[-800:]}")
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
    budget = max(60, int(deadline - time.monotonic()))
    work = Path(tempfile.mkdtemp(prefix="conformance-kgo-"))
    env = dict(
        _go_env(),
        KGO_SEEDS=bootstrap,
        KGO_LOG_LEVEL="none",
        KGO_TEST_RF=str(TEST_RF),
        KGO_TEST_RECORDS=str(TEST_RECORDS),
    )
    pattern = "^(" + "|".join(re.escape(t) for t in selected) + ")$"
    log(f"franz-go: {len(selected)} integration tests against {bootstrap}")
    cmd = [
        "go", "tool", "test2json", "-t", str(binary),
        "-test.v=test2json", f"-test.run={pattern}", f"-test.timeout={budget}s",
        "-test.parallel=2",
    ]  # fmt: skip
    outcomes: dict[str, str] = {}
    with (work / "go-test.jsonl").open("w") as out:
        try:
            proc = subprocess.run(
                cmd, cwd=src / "pkg" / "kgo", env=env, capture_output=True, text=True,
                timeout=budget + 60, check=False,
            )  # fmt: skip
            stdout = proc.stdout
        except subprocess.TimeoutExpired as exc:
            stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        out.write(stdout)
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        test = event.get("Test")
        if not test or "/" in test:
            continue  # subtests roll up into their parent
        action = event.get("Action")
        if action == "pass":
            outcomes[test] = PASSED
        elif action == "fail":
            outcomes[test] = FAILED
        elif action == "skip":
            outcomes[test] = SKIPPED
        elif action == "run":
            outcomes.setdefault(test, FAILED)  # still running at a timeout = failed
    for test in selected:
        outcomes.setdefault(test, FAILED)
    for test, state in sorted(outcomes.items()):
        log(f"  franz-go {test:<50} {state}")
    log(f"franz-go: go test output in {work / 'go-test.jsonl'}")
    return {t: s for t, s in outcomes.items() if t in set(selected)}
