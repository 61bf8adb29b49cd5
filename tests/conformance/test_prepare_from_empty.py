"""Every fetch-or-build step of the test harness works on a fresh machine, and says clearly
why when it cannot.

`CONTEXTPLANE_CACHE` is pointed at a new, empty directory: the steps' own caches, Maven's
local repository and Go's module cache all live under it (harness/cache.py), so nothing a
previous run left behind can hide a missing step. When `scripts/test` found the run's own
cache empty (a fresh machine, as CI is), that cache is the empty directory: every step of
this run was built from nothing there, by `harness/install.sh`, the gate or this test,
whichever came first, and building it all a second time would prove nothing more. The
steps run as a fresh machine runs them: the three client suites in parallel, the Maven
steps one after another (they share one local repository).

The failure tests point each step at a registry that cannot answer and check the message
names what could not be fetched, rather than ending in a stray line of tool output.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conformance.suites import SuiteUnavailable, load
from harness import java_client, kafka_connect, kafka_reference
from harness.cache import cache_root


def _run_cache_started_empty() -> Path | None:
    started = os.environ.get("CONTEXTPLANE_CACHE_STARTED_EMPTY")
    if started and Path(started).resolve() == cache_root().resolve():
        return cache_root()
    return None


@pytest.fixture
def cache_built_from_empty(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The run's own cache when it started empty, else a new empty one (a developer's warm
    cache would hide a missing step)."""
    run_cache = _run_cache_started_empty()
    if run_cache is not None:
        yield run_cache
        return
    yield from _new_empty_cache(monkeypatch)


@pytest.fixture
def empty_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from _new_empty_cache(monkeypatch)


def _new_empty_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Not pytest's tmp_path: it keeps recent directories, and these hold ~1 GB of builds.
    root = Path(tempfile.mkdtemp(prefix="contextplane-empty-cache-"))
    monkeypatch.setenv("CONTEXTPLANE_CACHE", str(root))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _maven_steps() -> dict[str, Path]:
    return {
        "kafka-reference": kafka_reference.fetch(),
        "java-client": java_client.build(),
        "kafka-tools": load("librdkafka").fetch_kafka_tools(),
        "kafka-connect": kafka_connect.fetch(),
    }


@pytest.mark.slow
def test_every_suite_and_tool_prepares_from_an_empty_cache(cache_built_from_empty: Path) -> None:
    empty_cache = cache_built_from_empty
    steps: dict[str, Callable[[], Any]] = {
        "librdkafka": lambda: load("librdkafka").prepare(print),
        "kafka_python": lambda: load("kafka_python").prepare(print),
        "franz_go": lambda: load("franz_go").prepare(print),
        "maven": _maven_steps,
    }
    with ThreadPoolExecutor(len(steps)) as pool:
        futures = {name: pool.submit(step) for name, step in steps.items()}
        results = {name: future.result() for name, future in futures.items()}

    librdkafka_src = results["librdkafka"]
    assert librdkafka_src.parent == empty_cache / "librdkafka-src"
    assert os.access(librdkafka_src / "tests" / "test-runner", os.X_OK)

    assert (results["kafka_python"] / "test" / "integration").is_dir()
    assert (results["kafka_python"] / "test" / "service.py").is_file()

    kgo = results["franz_go"].parent / "kgo.test"
    listed = subprocess.run(
        [str(kgo), "-test.list", "TestGroupETL"], capture_output=True, text=True, check=True
    )
    assert "TestGroupETL" in listed.stdout

    for name, path in results["maven"].items():
        assert path.is_relative_to(empty_cache), name
        assert any(path.glob("*.jar")) or any(path.rglob("*.class")), name
    assert any((empty_cache / "m2").rglob("kafka-clients-*.jar")), "Maven used ~/.m2"
    assert (empty_cache / "go" / "mod").is_dir(), "Go used the home module cache"


# --- each step fails with a message that names what it could not fetch -----------------

_UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing answers there


def test_pip_suite_says_pypi_could_not_be_reached(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", f"{_UNREACHABLE}/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(SuiteUnavailable, match="could not download the kafka-python .* PyPI"):
        load("kafka_python").prepare(print)


def test_go_suite_says_the_module_proxy_could_not_be_reached(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("go") is None:
        pytest.fail("no Go toolchain: the franz-go suite needs one")
    monkeypatch.setenv("GOPROXY", _UNREACHABLE)
    with pytest.raises(SuiteUnavailable, match="could not download .* Go module proxy"):
        load("franz_go").prepare(print)


def test_maven_step_says_maven_central_could_not_be_reached(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Maven offline with an empty local repository: exactly a registry that cannot answer.
    offline = empty_cache / "mvn-offline"
    offline.write_text(f'#!/bin/sh\nexec "{shutil.which("mvn")}" -o "$@"\n')
    offline.chmod(offline.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("MVN", str(offline))
    with pytest.raises(RuntimeError, match="could not fetch org.apache.kafka:kafka_2.13"):
        kafka_reference.fetch()


def test_debian_source_step_names_the_failing_apt_step(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An apt configuration with no package sources at all: `apt-get source` cannot succeed.
    lists = empty_cache / "apt-lists"
    (lists / "partial").mkdir(parents=True)
    config = empty_cache / "apt.conf"
    config.write_text(
        f'Dir::Etc::sourcelist "/dev/null";\nDir::Etc::sourceparts "{empty_cache}/none";\n'
        f'Dir::State::lists "{lists}";\n'
    )
    monkeypatch.setenv("APT_CONFIG", str(config))
    with pytest.raises(SuiteUnavailable) as failure:
        load("librdkafka").prepare(print)
    # The first line names the apt step (on a machine without the build dependencies it is
    # their install that fails first), then comes the tail of that step's log.
    first_line = str(failure.value).splitlines()[0]
    assert first_line.startswith("librdkafka: apt-get "), first_line
    assert "failed (full log: " in first_line, first_line
