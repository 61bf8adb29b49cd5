"""Real client test suites run against contextplane, each with an allowlist that only grows.

A suite module (conformance/suites/<name>/suite.py) provides:

    NAME: str                      # table label
    BROKER_SETTINGS: dict          # contextplane settings the suite's fixtures expect
    prepare(log) -> object         # fetch/build the suite (cached); raises SuiteUnavailable
    run(prepared, bootstrap, kafka_version, tests, log, deadline) -> dict[test, Outcome]

A suite whose broker needs more than settings (SCRAM users, a TLS certificate made for the
run) provides `broker_spec(prepared) -> BrokerSpec` instead of BROKER_SETTINGS.

`tests` is the list to run (None: every test the suite has). The allowlist
(`tests.allow` beside suite.py, one test id per line, '#' comments) names tests that pass
against contextplane: one of them failing (or not reported at all) is a regression and
fails the gate; a passing test not listed is reported as newly passing so the list can
grow. The quick (CI) run executes only the allowlisted tests, less those named in
`tests.full-only` beside it (slow ones whose area other listed tests also cover), unless
CONTEXTPLANE_FULL_CONFORMANCE=1; the full run executes all. Against three brokers (the
cluster target) a run answers for the allowlist less the tests `tests.cluster-fails`
names, each with why it cannot pass there, plus those `tests.cluster-allow` names: tests
that pass on three brokers only (each with why not on one), answered for by the cluster's
full run and a run that selects them.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUITES = [
    "librdkafka",
    "librdkafka_sasl",
    "librdkafka_consumer",
    "kafka_python",
    "kafka_python_sasl",
    "franz_go",
    "franz_go_consumer",
]

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


class SuiteUnavailable(RuntimeError):
    """The suite could not be fetched or built here (the message says why)."""


@dataclass(frozen=True)
class BrokerSpec:
    """The broker a suite runs against: its settings, the SCRAM users put in its data
    directory before it starts (as `contextplane users add` does), and, when its one
    listener speaks TLS, the CA file that verifies it (for the harness's own probe)."""

    settings: dict[str, str]
    scram_users: dict[str, str] = field(default_factory=dict)
    tls_cafile: Path | None = None


# Work directories (runner logs, reports, certificates) are kept for diagnosis after a run,
# but only the newest few of each kind: every CI run makes several and nothing else
# removes them.
WORK_ROOT_NAME = "contextplane-conformance"
WORK_DIRS_KEPT = 8


def work_dir(prefix: str, keep: int = WORK_DIRS_KEPT) -> Path:
    """A new directory `<tmp>/contextplane-conformance/<prefix>…`; older ones with the same
    prefix beyond the newest `keep` are removed."""
    root = Path(tempfile.gettempdir()) / WORK_ROOT_NAME
    root.mkdir(exist_ok=True)
    older = sorted(root.glob(f"{prefix}*"), key=lambda p: p.stat().st_mtime)
    for stale in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def broker_spec(module: Any, prepared: Any) -> BrokerSpec:
    if hasattr(module, "broker_spec"):
        spec: BrokerSpec = module.broker_spec(prepared)
        return spec
    return BrokerSpec(dict(module.BROKER_SETTINGS))


def load(name: str) -> Any:
    return importlib.import_module(f"conformance.suites.{name}.suite")


def allowlist_path(name: str) -> Path:
    return HERE / name / "tests.allow"


def full_only_path(name: str) -> Path:
    return HERE / name / "tests.full-only"


# Set to 1, the quick run executes every allowlisted test, the full-only ones too.
FULL_CONFORMANCE_ENV = "CONTEXTPLANE_FULL_CONFORMANCE"


def _read_ids(path: Path) -> list[str]:
    """Test ids, one a line, '#' comments."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        item = line.split("#", 1)[0].strip()
        if item:
            out.append(item)
    return out


def cluster_fails_path(name: str) -> Path:
    return HERE / name / "tests.cluster-fails"


def cluster_allow_path(name: str) -> Path:
    return HERE / name / "tests.cluster-allow"


def read_cluster_allow(name: str) -> list[str]:
    return _read_ids(cluster_allow_path(name))


def read_allowlist(name: str) -> list[str]:
    return _read_ids(allowlist_path(name))


def read_cluster_fails(name: str) -> list[str]:
    return _read_ids(cluster_fails_path(name))


def read_full_only(name: str) -> list[str]:
    return _read_ids(full_only_path(name))


def quick_tests(name: str) -> list[str]:
    """The allowlisted tests the quick (CI) run executes: all of them with
    CONTEXTPLANE_FULL_CONFORMANCE=1, otherwise those not listed as full-only."""
    allow = read_allowlist(name)
    if os.environ.get(FULL_CONFORMANCE_ENV) == "1":
        return allow
    full_only = set(read_full_only(name))
    return [t for t in allow if t not in full_only]


def answered_tests(
    name: str, *, full: bool, only: list[str] | None, cluster: bool = False
) -> list[str]:
    """The allowlisted tests a run answers for (one of them not passing is a regression):
    every one in the full run; those the quick run executes (a full-only one it does not
    run is no regression); with `only`, those selected (and a selected test's subtests,
    `Test/sub`), not the rest of the allowlist, which that run never starts. On the
    cluster target, none that `tests.cluster-fails` names, and those `tests.cluster-allow`
    names in a full or selecting run."""
    allow = read_allowlist(name)
    if cluster:
        fails = set(read_cluster_fails(name))
        allow = [t for t in allow if t not in fails]
        if full or only:
            allow += [t for t in read_cluster_allow(name) if t not in allow]
    if only:
        prefixes = tuple(f"{t}/" for t in only)
        return [t for t in allow if t in only or t.startswith(prefixes)]
    if full:
        return allow
    quick = set(quick_tests(name))
    return [t for t in allow if t in quick]


@dataclass
class SuiteResult:
    name: str
    label: str
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> passed/failed/skipped
    allowlist: list[str] = field(default_factory=list)
    ran_all: bool = False  # full run (every test) rather than the allowlisted subset
    # "all", "allowlisted", "CI subset" (less full-only tests) or "selected" (--only)
    scope: str = "allowlisted"
    cluster: bool = False  # run against the three-broker target
    error: str | None = None  # the suite could not run at all
    seconds: float = 0.0
    kafka_version: str = ""

    def count(self, state: str) -> int:
        return sum(1 for s in self.outcomes.values() if s == state)

    @property
    def passed(self) -> int:
        return self.count(PASSED)

    @property
    def failed(self) -> int:
        return self.count(FAILED)

    @property
    def skipped(self) -> int:
        return self.count(SKIPPED)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def regressions(self) -> list[str]:
        """Allowlisted tests that did not pass (failed, skipped or missing)."""
        return [t for t in self.allowlist if self.outcomes.get(t) != PASSED]

    @property
    def newly_passing(self) -> list[str]:
        allowed = set(self.allowlist)
        return sorted(t for t, s in self.outcomes.items() if s == PASSED and t not in allowed)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "total": self.total,
            "ran_all": self.ran_all,
            "cluster": self.cluster,
            "error": self.error,
            "seconds": round(self.seconds, 1),
            "kafka_version": self.kafka_version,
            "regressions": self.regressions,
            "newly_passing": self.newly_passing,
            "outcomes": dict(sorted(self.outcomes.items())),
        }


def run_suite(
    name: str,
    bootstrap_for: Any,
    *,
    full: bool,
    only: list[str] | None,
    log: Any,
    budget_s: float,
    cluster: bool = False,
) -> SuiteResult:
    """Prepare the suite, start a broker as it needs (`bootstrap_for(spec)`, spec a
    BrokerSpec, is a context manager yielding (bootstrap, kafka_version)), run the selected
    tests. `cluster`: the broker is the three-broker target (its known failures apart)."""
    module = load(name)
    allow = answered_tests(name, full=full, only=only, cluster=cluster)
    result = SuiteResult(
        name, module.NAME, allowlist=allow, ran_all=full and not only, cluster=cluster
    )
    result.scope = "selected" if only else ("all" if full else "allowlisted")
    if result.scope == "allowlisted" and len(allow) < len(read_allowlist(name)):
        result.scope = "CI subset"
    started = time.monotonic()
    try:
        prepared = module.prepare(log)
    except SuiteUnavailable as exc:
        result.error = f"unavailable: {exc}"
        result.seconds = time.monotonic() - started
        return result
    if only:
        tests: list[str] | None = only
    elif full:
        tests = None
    else:
        tests = allow
    if tests is not None and not tests:
        result.seconds = time.monotonic() - started
        return result
    try:
        with bootstrap_for(broker_spec(module, prepared)) as (bootstrap, kafka_version):
            result.kafka_version = kafka_version
            result.outcomes = module.run(
                prepared,
                bootstrap,
                kafka_version,
                tests,
                log,
                time.monotonic() + budget_s,
            )
    except SuiteUnavailable as exc:
        result.error = f"unavailable: {exc}"
    result.seconds = time.monotonic() - started
    return result
