"""kafka-python's integration tests (test/integration in its PyPI sdist) against
contextplane as an external broker (KAFKA_URI).

The sdist is fetched with `pip download --no-binary :all:` into the cache and run in a
suite venv (kafka-python from PyPI at the same version, pytest, pytest-timeout,
pytest-mock). The sdist lacks test/__init__.py and test/service.py: small stand-ins from
stubs/ are copied in. KAFKA_VERSION is the version contextplane's ApiVersions imply;
KAFKA_ROOT points at an existing empty directory (the fixtures only check it exists).
Test ids are pytest node ids relative to the sdist root, e.g.
`test/integration/test_producer_integration.py::test_end_to_end[gzip]`. Tests that can lose
a race inside kafka-python itself get a second run when they fail (client_races.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.suites import FAILED, PASSED, SKIPPED, SuiteUnavailable, work_dir
from conformance.suites.kafka_python import client_races
from harness.cache import cache_root, tail

VERSION = "3.0.12"  # the kafka-python the project's tests use (pyproject.toml [test])
NAME = f"kafka-python {VERSION} (PyPI sdist)"
HERE = Path(__file__).resolve().parent
BROKER_SETTINGS = {
    "group.initial.rebalance.delay.ms": "0",
    "num.partitions": "4",  # the fixtures' topics have 4 partitions; auto-created ones too
    # As the fixture's own broker (KafkaFixture._acl_config): the ACL APIs answer and every
    # request passes the authorizer, which allows what no ACL covers.
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "true",
}
# With the codec extras, so the lz4/snappy/zstd parametrisations run instead of skipping.
SUITE_PACKAGES = [
    f"kafka-python[crc32c,lz4,snappy,zstd]=={VERSION}",
    "pytest",
    "pytest-timeout",
    "pytest-mock",
]
PER_TEST_TIMEOUT = 120


def _cache() -> Path:
    return cache_root() / f"kafka-python-{VERSION}-suite"


def prepare(log) -> Path:  # noqa: ANN001
    """Download the sdist and set up the suite venv (cached); returns the sdist root."""
    cache = _cache()
    src = cache / f"kafka_python-{VERSION}"
    venv = cache / "venv"
    marker = cache / ".ready"
    wanted = "\n".join(SUITE_PACKAGES)
    if marker.exists() and marker.read_text() == wanted and (src / "test" / "integration").is_dir():
        return src
    log(f"kafka-python: pip download sdist {VERSION} and create the suite venv")
    cache.mkdir(parents=True, exist_ok=True)
    download = cache / "download"
    download.mkdir(exist_ok=True)
    proc = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", f"kafka-python=={VERSION}", "-d", str(download),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    archives = sorted(download.glob("kafka*python-*.tar.gz"))
    if proc.returncode != 0 or not archives:
        raise SuiteUnavailable(
            f"could not download the kafka-python {VERSION} sdist from PyPI:\n"
            + tail(proc.stderr or proc.stdout or "pip download produced no archive")
        )
    # Unpack into an empty staging directory: its one top-level entry is the source,
    # whatever the sdist calls it (never a sibling left by an earlier run).
    staging = cache / "unpack"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    with tarfile.open(archives[-1]) as tar:
        tar.extractall(staging, filter="data")
    top = [p for p in staging.iterdir() if p.is_dir()]
    if len(top) != 1 or not (top[0] / "test" / "integration").is_dir():
        raise SuiteUnavailable(f"{archives[-1].name} does not hold one source tree with tests")
    shutil.rmtree(src, ignore_errors=True)
    top[0].rename(src)
    staging.rmdir()
    for stub in ("__init__.py", "service.py"):
        target = src / "test" / stub
        if not target.exists():
            shutil.copy(HERE / "stubs" / stub, target)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *SUITE_PACKAGES],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SuiteUnavailable(
            f"could not install the suite's packages from PyPI:\n{tail(proc.stderr)}"
        )
    marker.write_text(wanted)
    return src


def _node_id(case: ET.Element) -> str:
    classname = case.get("classname", "")
    name = case.get("name", "")
    module = classname.replace(".", "/") + ".py"
    return f"{module}::{name}"


def run(
    src: Path,
    bootstrap: str,
    kafka_version: str,
    tests: list[str] | None,
    log,  # noqa: ANN001
    deadline: float,
) -> dict[str, str]:
    work = work_dir("kpy-")
    (work / "kafka-root").mkdir()
    major_minor = ".".join(kafka_version.split(".")[:2])
    env = {
        "KAFKA_VERSION": major_minor,
        "KAFKA_URI": f"PLAINTEXT://{bootstrap}",
        "KAFKA_ROOT": str(work / "kafka-root"),
        "PYTHONPATH": str(src),
    }
    selection = ["test/integration"] if tests is None else list(tests)
    log(
        f"kafka-python: {'all' if tests is None else len(selection)} tests, "
        f"KAFKA_VERSION={major_minor}"
    )
    ignore = [
        "--ignore=test/integration/test_sasl_integration.py",
        "--ignore=test/integration/test_ssl_integration.py",
    ]
    outcomes = run_pytest(src, work, env, [*ignore, *selection], tests, log, deadline)

    def rerun(again: list[str]) -> dict[str, str]:
        retry = work / "rerun"
        retry.mkdir(exist_ok=True)
        return run_pytest(src, retry, env, [*ignore, *again], again, log, deadline)

    return client_races.settle(outcomes, rerun, log)


def run_pytest(
    src: Path,
    work: Path,
    env_more: dict[str, str],
    args: list[str],
    tests: list[str] | None,
    log,  # noqa: ANN001
    deadline: float,
) -> dict[str, str]:
    """pytest in the suite venv from the sdist root, with `env_more` in its environment;
    per-test outcomes from its JUnit report."""
    python = _cache() / "venv" / "bin" / "python"
    junit = work / "junit.xml"
    env = dict(os.environ, **env_more)
    budget = max(60, int(deadline - time.monotonic()))
    cmd = [
        str(python), "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=",
        "-o", "log_level=WARNING", f"--timeout={PER_TEST_TIMEOUT}",
        "--timeout-method=thread", "-q", "-rN", f"--junitxml={junit}",
        *args,
    ]  # fmt: skip
    with (work / "pytest.log").open("w") as out:
        try:
            subprocess.run(
                cmd, cwd=src, env=env, stdout=out, stderr=subprocess.STDOUT,
                timeout=budget, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            log(f"kafka-python: stopped after {budget}s budget")
    log(f"kafka-python: pytest output in {work / 'pytest.log'}")
    outcomes: dict[str, str] = {}
    if not junit.exists():
        return {t: FAILED for t in (tests or [])}
    for case in ET.parse(junit).getroot().iter("testcase"):
        node = _node_id(case)
        if case.find("skipped") is not None:
            state = SKIPPED
        elif case.find("failure") is not None or case.find("error") is not None:
            state = FAILED
        else:
            state = PASSED
        # A teardown error after a pass shows as a second entry: failure wins.
        if outcomes.get(node) != FAILED:
            outcomes[node] = state
    for node, state in sorted(outcomes.items()):
        log(f"  kafka-python {node:<90} {state}")
    return outcomes
