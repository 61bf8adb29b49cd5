"""librdkafka's own integration tests (tests/test-runner), built from Debian's source
package (`apt-get source librdkafka`, see prepare.sh), run against contextplane.

Test ids are the runner's names, e.g. `0001_multiobj`. Tests that need no broker
(`-L`: local-only) and socket-emulation tests (`-E`: sockem) are excluded; `-Q` selects
librdkafka's quick mode. TEST_KAFKA_VERSION is the version the broker's ApiVersions imply.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from conformance.suites import FAILED, PASSED, SKIPPED, SuiteUnavailable, client_races, work_dir
from harness.cache import tail

NAME = "librdkafka (Debian src)"
HERE = Path(__file__).resolve().parent
BROKER_SETTINGS = {
    # Kafka's default (3 s), as in librdkafka's trivup test cluster: with 0 the first
    # consumer of a group gets a generation of its own before the second joins, and
    # timing-sensitive tests (0089_max_poll_interval) see an extra rebalance.
    "group.initial.rebalance.delay.ms": "3000",
    "auto.create.topics.enable": "true",
    # librdkafka's own test cluster (tests/scenarios/default.json): auto-create, 4 partitions
    "num.partitions": "4",
    # The ACL APIs answer (0081_admin creates, describes and deletes ACLs; 0109, 0115, 0119
    # deny or allow topics with kafka-acls.sh) and every request passes the authorizer,
    # which allows what no ACL covers.
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "true",
}
PARALLEL = 2
# The allowlisted tests (the quick run, CI) three at a time, as the runner's own CI mode
# runs them: most of their time is spent waiting on client timers (measured on 2 cores:
# 120 s at -p2, 81 s at -p3). The full run, which decides what joins the allowlist, keeps 2.
LISTED_PARALLEL = 3
# Tests that can lose a race inside librdkafka itself (FINDINGS.md, "Client race"): one
# more run when they fail, and the second run decides.
RERUN_ON_FAILURE = frozenset({"0050_subscribe_adds"})
_LINE = re.compile(r"=+ Test (\S+) (PASSED|FAILED|SKIPPED)")
_DECL = re.compile(r"_TEST\(\s*(\d{4}_\w+),\s*([^,)]*)")  # name, flags (may span lines)


def prepare(log, release: str = "", version: str = "") -> Path:  # noqa: ANN001
    """Fetch and build (cached); returns the source directory. `release` and `version`
    (e.g. "sid", "2.14.2-1") take that source package from another Debian release."""
    log("librdkafka: apt-get source + build (cached after the first time, ~4 min)")
    env = dict(os.environ, LIBRDKAFKA_RELEASE=release, LIBRDKAFKA_VERSION=version)
    proc = subprocess.run(
        ["bash", str(HERE / "prepare.sh")], capture_output=True, text=True, check=False, env=env
    )
    if proc.returncode != 0:
        raise SuiteUnavailable(tail(proc.stderr or proc.stdout or "prepare.sh failed silently"))
    src = Path(proc.stdout.strip().splitlines()[-1])
    if not (src / "tests" / "test-runner").exists():
        raise SuiteUnavailable(f"no test-runner in {src}")
    return src


def fetch_kafka_tools() -> Path:
    """Apache Kafka's tools jars (TopicCommand) from Maven Central, cached; the libs dir."""
    from harness._maven import cache_root, copy_dependencies
    from harness.kafka_reference import KAFKA_VERSION

    return copy_dependencies(
        cache_root() / f"kafka-tools-{KAFKA_VERSION}",
        [f"org.apache.kafka:kafka-tools:{KAFKA_VERSION}"],
    )


def kafka_cli(work: Path) -> Path | None:
    """A KAFKA_PATH whose bin/ holds Apache Kafka's own TopicCommand (kafka-topics.sh, tests
    0052/0077) and AclCommand (kafka-acls.sh, tests 0109/0115/0119), from Maven Central,
    cached, as a trivup cluster provides them."""
    from harness._maven import java_tool

    try:
        libs = fetch_kafka_tools()
    except Exception:  # noqa: BLE001 - the tests that need them then fail, visibly
        return None
    bin_dir = work / "kafka" / "bin"
    bin_dir.mkdir(parents=True)
    for script, tool in (("kafka-topics.sh", "TopicCommand"), ("kafka-acls.sh", "AclCommand")):
        path = bin_dir / script
        path.write_text(
            "#!/bin/sh\n"
            f'exec "{java_tool("java")}" -Xmx256m -cp "{libs}/*" '
            f'org.apache.kafka.tools.{tool} "$@"\n'
        )
        path.chmod(0o755)
    return work / "kafka"


def eligible_tests(src: Path) -> list[str]:
    """Every test the runner declares, less local-only, sockem, manual, known-issue ones
    and those written for another cluster scenario (e.g. `noautocreate`: librdkafka runs
    them against a second cluster with auto-creation off)."""
    text = (src / "tests" / "test.c").read_text()
    table = text[text.index("struct test tests[] = {") :]
    out = []
    for chunk in table.split("_TEST(")[1:]:
        match = _DECL.match("_TEST(" + chunk)
        if not match:
            continue
        name, flags = match[1], match[2]
        # -L and -E filter local and sockem tests; manual and librdkafka's own
        # known-issue tests are not run by default either.
        excluded = ("TEST_F_LOCAL", "TEST_F_SOCKEM", "TEST_F_MANUAL", "TEST_F_KNOWN_ISSUE")
        if any(re.search(rf"\b{f}\b", flags) for f in excluded):
            continue
        scenario = re.search(r'\.scenario\s*=\s*"([^"]*)"', chunk)
        if scenario and "default" not in scenario[1].split(","):
            continue
        out.append(name)
    return out


def report_states(path: Path) -> dict[str, str]:
    """Final per-test states from the runner's JSON report (TEST_REPORT)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    states = {"PASSED": PASSED, "FAILED": FAILED, "SKIPPED": SKIPPED}
    return {
        m[1]: states[m[2]]
        for m in re.finditer(r'"name": "([^"]+)", "state": "([A-Z]+)"', text)
        if m[2] in states
    }


def run(
    src: Path,
    bootstrap: str,
    kafka_version: str,
    tests: list[str] | None,
    log,  # noqa: ANN001
    deadline: float,
) -> dict[str, str]:
    selected = eligible_tests(src) if tests is None else list(tests)
    parallel = PARALLEL if tests is None else LISTED_PARALLEL
    outcomes = run_tests(src, bootstrap, kafka_version, selected, log, deadline, parallel=parallel)
    return client_races.settle(
        outcomes,
        lambda again: run_tests(
            src, bootstrap, kafka_version, again, log, deadline, parallel=parallel
        ),
        log,
        RERUN_ON_FAILURE,
        "librdkafka",
    )


def run_tests(
    src: Path,
    bootstrap: str,
    kafka_version: str,
    selected: list[str],
    log,  # noqa: ANN001
    deadline: float,
    client_conf: dict[str, str] | None = None,
    env_more: dict[str, str] | None = None,
    parallel: int = PARALLEL,
    quick: bool = True,
) -> dict[str, str]:
    """Run `selected` with test.conf holding `client_conf` too (e.g. the client's security
    settings) and `env_more` in the runner's environment; `quick` is the runner's -Q
    (newer runners skip every sub-test not marked quick under it)."""
    tests_dir = src / "tests"
    numbers = sorted({t.split("_", 1)[0] for t in selected})
    work = work_dir("rdk-")
    conf = work / "test.conf"
    lines = {
        "bootstrap.servers": bootstrap,
        "test.timeout.multiplier": "2",
        "test.topic.random": "true",
        **(client_conf or {}),
    }
    conf.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
    env = dict(
        os.environ,
        TESTS=",".join(numbers),
        TEST_KAFKA_VERSION=kafka_version,
        RDKAFKA_TEST_CONF=str(conf),
        TEST_REPORT=str(work / "report.json"),
        LD_LIBRARY_PATH=f"{src / 'src'}:{src / 'src-cpp'}",
        **(env_more or {}),
    )
    kafka_path = kafka_cli(work) if not client_conf else None
    if kafka_path is not None:
        env.update(KAFKA_PATH=str(kafka_path), BROKERS=bootstrap)
    env.pop("CI", None)  # the runner's CI mode sets parallelism to 3; we pass ours
    log(f"librdkafka: {len(numbers)} tests, TEST_KAFKA_VERSION={kafka_version}, -p{parallel}")
    outcomes: dict[str, str] = {}
    started: set[str] = set()
    out_path = work / "runner.log"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            ["./test-runner", "-L", "-E", *(["-Q"] if quick else []), f"-p{parallel}"],
            cwd=tests_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        assert proc.stdout is not None
        timed_out = False
        for line in proc.stdout:
            out.write(line)
            match = _LINE.search(line)
            if match:
                name, state = match[1], match[2]
                outcomes[name] = {"PASSED": PASSED, "FAILED": FAILED, "SKIPPED": SKIPPED}[state]
                log(f"  librdkafka {name:<40} {outcomes[name]}")
            elif "================= Running test " in line:
                started.add(line.split("Running test ", 1)[1].split()[0])
            if time.monotonic() > deadline:
                timed_out = True
                break
        if timed_out:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if not timed_out:
        # The report has every final state, including tests skipped before they started
        # (TEST_SKIP prints no "Test ... SKIPPED" line).
        outcomes.update(report_states(work / "report.json"))
    for name in started - set(outcomes):
        outcomes[name] = FAILED  # still running when the budget ran out (or crashed)
    # Selected tests the runner never reported (a crash of the whole runner) count as failed.
    for name in selected:
        outcomes.setdefault(name, FAILED)
    log(f"librdkafka: runner output in {out_path}")
    wanted = set(selected)
    return {k: v for k, v in outcomes.items() if k in wanted}
