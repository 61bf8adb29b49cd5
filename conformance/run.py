"""The conformance gate: one command, one table.

    python -m conformance.run            # quick: the CI subset
    python -m conformance.run --full     # everything, on one broker and on three
    python -m conformance.run --full --single   # everything, on one broker only
    python -m conformance.run --suite differential --suite librdkafka
    python -m conformance.run --suite librdkafka --only 0001_multiobj
    python -m conformance.run --cluster  # the client suites against three brokers

Suites:
  differential  the scenario corpus (conformance/scenarios) against Apache Kafka 4.x and
                contextplane; differences not in conformance/differences.md are counted.
                quick: scenarios marked quick; full: all.
  librdkafka    librdkafka's integration tests (Debian source package)
  librdkafka_sasl
                its SASL and SSL tests and a few produce/consume tests over SASL_SSL
  kafka_python  kafka-python's integration tests (PyPI sdist)
  kafka_python_sasl
                its SASL tests (PLAIN, SCRAM-SHA-256/512) over SASL_PLAINTEXT
  librdkafka_consumer
                its consumer-group tests with group.protocol=consumer (KIP-848), from a
                newer Debian source package
  franz_go      franz-go's kgo integration tests (Go module proxy)
                quick: the allowlisted tests only (enough to catch regressions);
                full: every test, to find newly passing ones for the allowlist.
  franz_go_consumer
                its KIP-848 group subtests

With --cluster the client suites run against a local three-broker cluster (PostgreSQL,
SeaweedFS, conformance/cluster_target.py) instead of one broker, the differential
corpus only when --suite names it (it compares one broker with one Kafka broker). --full
runs the client suites on one broker and then on the cluster (not its SASL/SSL suites;
`tests.cluster-fails` names the allowlisted tests that cannot pass there), unless
--single.

Exit status 1 when an allowlisted test or conforming scenario regressed, or a suite with
an allowlist could not run; 0 otherwise. Results go to --out (default
$CONTEXTPLANE_CACHE/conformance/last): summary.json, differential.txt/json, per suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from conformance import differential
from conformance.cluster_target import CLUSTER_SUITES, cluster_broker
from conformance.suites import (
    SUITES,
    BrokerSpec,
    SuiteResult,
    SuiteUnavailable,
    read_cluster_fails,
    run_suite,
)
from harness import kafka_reference
from harness.cache import cache_root
from tests.support.broker import BrokerProcess

ALL = ["differential", *SUITES]
# Wall-clock budget per suite (seconds): a hung suite must not eat CI's 90 minutes.
BUDGET = {
    "quick": {
        "librdkafka": 420,
        "librdkafka_sasl": 180,
        "librdkafka_consumer": 420,
        "kafka_python": 300,
        "kafka_python_sasl": 180,
        "franz_go": 420,
        "franz_go_consumer": 180,
    },
    "full": {
        "librdkafka": 2400,
        "librdkafka_sasl": 600,
        "librdkafka_consumer": 1500,
        "kafka_python": 1500,
        "kafka_python_sasl": 300,
        "franz_go": 1800,
        "franz_go_consumer": 900,
    },
}


# Three brokers on PostgreSQL and the object WAL run a suite slower than one broker.
CLUSTER_BUDGET = 1.5


def log(message: str) -> None:
    print(message, flush=True)


def implied_kafka_version(bootstrap: str, tls_cafile: Path | None = None) -> str:
    """The Apache Kafka release a client infers from the broker's ApiVersions (kafka-python's
    table), as 'X.Y.0'. ApiVersions needs no authentication; over TLS when `tls_cafile`."""
    host, port = bootstrap.rsplit(":", 1)
    tls = ssl.create_default_context(cafile=str(tls_cafile)) if tls_cafile else None
    versions = kafka_reference.api_versions(host, int(port), tls=tls)
    try:
        from kafka.protocol.broker_version_data import infer_broker_version_from_api_versions

        inferred = infer_broker_version_from_api_versions(versions)
    except Exception:  # noqa: BLE001 - fall back to the Produce ceiling alone
        produce_max = versions.get(0, (0, 0))[1]
        inferred = {13: (4, 1), 12: (4, 0), 11: (3, 8), 10: (3, 7), 9: (2, 8)}.get(
            produce_max, (2, 8)
        )
    parts = list(inferred) + [0] * (3 - len(inferred))
    return ".".join(str(p) for p in parts[:3])


def add_scram_users(data_dir: Path, users: dict[str, str]) -> None:
    """SCRAM credentials (both mechanisms) in a data directory, before its broker starts."""
    for name, password in users.items():
        added = subprocess.run(
            [sys.executable, "-m", "contextplane.cli.main", "users", "add", name,
             "--data-dir", str(data_dir), "--password-stdin"],
            input=password + "\n", capture_output=True, text=True, check=False,
        )  # fmt: skip
        if added.returncode != 0:
            raise RuntimeError(f"contextplane users add {name} failed: {added.stderr}")


@contextlib.contextmanager
def contextplane_broker(spec: BrokerSpec, keep: Path) -> Iterator[tuple[str, str]]:
    root = Path(tempfile.mkdtemp(prefix="conformance-suite-"))
    add_scram_users(root / "broker", spec.scram_users)
    process = BrokerProcess(root / "broker", settings=dict(spec.settings)).start()
    try:
        yield process.bootstrap, implied_kafka_version(process.bootstrap, spec.tls_cafile)
    finally:
        try:
            process.stop(timeout_s=60)
        finally:
            keep.mkdir(parents=True, exist_ok=True)
            if process.log_path and process.log_path.exists():
                shutil.copy(process.log_path, keep / "contextplane-broker.log")
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def kafka_broker(spec: BrokerSpec, keep: Path) -> Iterator[tuple[str, str]]:
    """Apache Kafka with the suite's settings: to triage a failure (does it fail on Kafka
    too?), never part of the gate's numbers."""
    if spec.scram_users or spec.tls_cafile:
        raise SuiteUnavailable("triage against Apache Kafka runs the PLAINTEXT suites only")
    handle = kafka_reference.start(extra_props=dict(spec.settings))
    try:
        yield handle.bootstrap, implied_kafka_version(handle.bootstrap)
    finally:
        keep.mkdir(parents=True, exist_ok=True)
        if handle.log_path.exists():
            shutil.copy(handle.log_path, keep / "kafka-server.log")
        handle.stop()


def _run_beside(plan: tuple[dict[str, str], Path | None], group: list[Any]) -> Any:
    """One group's scenarios on a pair of brokers of their own (a thread of the caller's)."""
    from conformance import pairs

    pair = pairs.BrokerPair(*plan)
    pair.start()
    try:
        kafka, ours = pair.wait()
        log(f"differential: a pair beside the others, settings {pair.extra}")
        return differential.run(group, kafka.bootstrap, ours.bootstrap, log=log)
    finally:
        pair.close()


def run_differential(full: bool, patterns: list[str] | None, out: Path) -> Any:
    from conformance import pairs

    scenarios = differential.select(quick=not full, patterns=patterns)
    log(f"differential: {len(scenarios)} scenarios; starting Apache Kafka and contextplane")
    started = time.monotonic()
    # Scenarios that need the same broker settings share one pair of brokers; those that
    # mostly wait (`beside`) run on their own pair while the others run.
    groups: dict[tuple[tuple[tuple[str, str], ...], bool], list[Any]] = {}
    for sc in scenarios:
        groups.setdefault((sc.settings, sc.beside), []).append(sc)
    plans = {
        key: (dict(key[0]), out / "differential" / (f"settings-{number}" if key[0] else ""))
        for number, key in enumerate(groups)
    }
    in_turn = [key for key in groups if not key[1]]
    beside = [key for key in groups if key[1]]
    parts: dict[Any, Any] = {}
    with ThreadPoolExecutor(max(1, len(beside))) as pool:
        waiting: dict[Any, Future[Any]] = {}
        with pairs.one_ahead([plans[key] for key in in_turn]) as started_pairs:
            for pair, key in zip(started_pairs, in_turn, strict=True):
                kafka, ours = pair.wait()
                log(
                    f"differential: Kafka {kafka_reference.KAFKA_VERSION} at {kafka.bootstrap}, "
                    f"contextplane at {ours.bootstrap} (up in {time.monotonic() - started:.0f}s)"
                    + (f", settings {pair.extra}" if pair.extra else "")
                )
                if not waiting:  # once the first pair is up: not three pairs starting at once
                    waiting = {k: pool.submit(_run_beside, plans[k], groups[k]) for k in beside}
                parts[key] = differential.run(groups[key], kafka.bootstrap, ours.bootstrap, log=log)
        for other in beside:
            parts[other] = (
                waiting.get(other) or pool.submit(_run_beside, plans[other], groups[other])
            ).result()
    report = None
    for key in groups:  # the report in the groups' order, whichever finished first
        if report is None:
            report = parts[key]
        else:
            report.results.extend(parts[key].results)
    if report is None:
        report = differential.run([], "", "", log=log)
    report.seconds = time.monotonic() - started
    path = differential.write_report(report, out)
    log(f"differential: every difference in {path}")
    return report


def table(results: list[SuiteResult], report: Any, mode: str) -> str:
    rows = [
        f"Conformance gate ({mode}) — contextplane vs real clients and Apache Kafka "
        f"{kafka_reference.KAFKA_VERSION}",
        "",
        f"{'suite':<46} {'passed / total':>15} {'failed':>7} {'skipped':>8} "
        f"{'regressed':>10} {'new':>5} {'time':>7}",
        "-" * 104,
    ]
    for r in results:
        if r.error:
            rows.append(f"{r.label:<46} {'-':>15}  {r.error[:60]}")
            continue
        scope = "" if r.scope == "all" else f" ({r.scope})"
        rows.append(
            f"{r.label + scope:<46} {f'{r.passed} / {r.total}':>15} {r.failed:>7} "
            f"{r.skipped:>8} {len(r.regressions):>10} {len(r.newly_passing):>5} "
            f"{r.seconds:>6.0f}s"
        )
    if report is not None:
        conforming = len(report.conforming)
        rows.append(
            f"{'differential vs Kafka (scenarios)':<46} "
            f"{f'{conforming} / {len(report.results)}':>15} "
            f"{len(report.results) - conforming:>7} {'':>8} {len(report.regressions):>10} "
            f"{len(report.newly_conforming):>5} {report.seconds:>6.0f}s"
        )
        rows.append(
            f"{'  differences (unexplained)':<46} {len(report.unexplained):>15}"
            f"   + {len(report.differences) - len(report.unexplained)} deliberate "
            "(conformance/differences.md)"
        )
    return "\n".join(rows)


def suite_targets(
    suites: list[str], full: bool, cluster: bool, single: bool, against: str
) -> list[tuple[bool, list[str]]]:
    """The client suites' targets, in turn: (on three brokers?, the suites run there). The
    full run against contextplane runs them on one broker, then on the cluster."""
    on_cluster = [name for name in CLUSTER_SUITES if name in suites]
    if cluster:
        return [(True, on_cluster)]
    targets = [(False, [name for name in SUITES if name in suites])]
    if full and not single and against == "contextplane" and on_cluster:
        targets.append((True, on_cluster))
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.run", description=__doc__.split("\n\n")[0]
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the CI subset (default)")
    mode.add_argument("--full", action="store_true", help="every scenario and every test")
    parser.add_argument("--suite", action="append", choices=ALL, help="run only these (repeat)")
    parser.add_argument("--only", action="append", help="suite test ids to run (repeat)")
    parser.add_argument("--scenario", action="append", help="differential scenario globs")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument(
        "--against",
        choices=["contextplane", "kafka"],
        default="contextplane",
        help="broker for the client suites; 'kafka' runs them against Apache Kafka to "
        "triage failures (not a gate result)",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--cluster",
        action="store_true",
        help="run the client suites against three brokers on PostgreSQL and SeaweedFS",
    )
    target.add_argument(
        "--single", action="store_true", help="with --full: one broker only, no cluster"
    )
    args = parser.parse_args(argv)
    if args.cluster and args.against == "kafka":
        parser.error("--cluster runs against contextplane only")
    full = bool(args.full)
    mode_name = "full" if full else "quick"
    suites = args.suite or (list(SUITES) if args.cluster else ALL)
    targets = suite_targets(suites, full, args.cluster, args.single, args.against)
    out = args.out or cache_root() / "conformance" / "last"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    started = time.monotonic()

    report = None
    if "differential" in suites:
        report = run_differential(full, args.scenario, out)
    results: list[SuiteResult] = []
    for cluster, names in targets:
        for name in names:
            log(f"== {name}" + (" on three brokers" if cluster else ""))
            kept = out / (f"cluster-{name}" if cluster and not args.cluster else name)
            broker = kafka_broker if args.against == "kafka" else contextplane_broker
            if cluster:
                broker = cluster_broker
            result = run_suite(
                name,
                lambda spec, kept=kept, broker=broker: broker(spec, kept),
                full=full,
                only=args.only,
                log=log,
                budget_s=BUDGET[mode_name][name] * (CLUSTER_BUDGET if cluster else 1),
                cluster=cluster,
            )
            if args.against == "kafka":
                result.label += " [vs Apache Kafka]"
            if cluster:
                result.label += " [3 brokers]"
            results.append(result)
            kept.mkdir(parents=True, exist_ok=True)
            (kept / "result.json").write_text(json.dumps(result.to_json(), indent=1))
    log("")
    log(table(results, report, mode_name))
    log("")
    failing = []
    for r in results:
        where = f"{r.name} on three brokers" if r.cluster else r.name
        if r.error and r.allowlist:
            failing.append(f"{where}: could not run ({r.error})")
        for test in r.regressions if not r.error else []:
            failing.append(
                f"{where}: allowlisted test {test} did not pass ({r.outcomes.get(test, 'not run')})"
            )
        if r.cluster:
            fails = set(read_cluster_fails(r.name))
            lists = {
                "tests.cluster-fails (remove)": [t for t in r.newly_passing if t in fails],
                "tests.cluster-allow (add, if it cannot pass on one broker)": [
                    t for t in r.newly_passing if t not in fails
                ],
            }
        else:
            lists = {"tests.allow (add)": r.newly_passing}
        for listed, newly in lists.items():
            if newly:
                log(f"{where}: newly passing, conformance/suites/{r.name}/{listed}:")
                for test in newly:
                    log(f"    {test}")
    if report is not None:
        for name in report.regressions:
            failing.append(f"differential: scenario {name} no longer matches Kafka")
        for row in report.unused_rows(differential.load_deliberate()):
            log(f"differences.md row matched nothing (remove it?): {row.scenario} {row.path}")
        if report.newly_conforming:
            log("differential: now conforming, add to conformance/differential.allow:")
            for name in report.newly_conforming:
                log(f"    {name}")
    summary = {
        "mode": mode_name,
        "target": "cluster" if args.cluster else args.against,
        "cluster_also": len(targets) > 1,
        "seconds": round(time.monotonic() - started, 1),
        "suites": [r.to_json() for r in results],
        "differential": None
        if report is None
        else {
            "scenarios": len(report.results),
            "conforming": len(report.conforming),
            "unexplained_differences": len(report.unexplained),
            "deliberate_differences": len(report.differences) - len(report.unexplained),
            "regressions": report.regressions,
        },
        "failing": failing,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if args.against == "kafka":
        log("(suites ran against Apache Kafka for triage: not a gate result)")
        failing = []
    for line in failing:
        log(f"REGRESSION {line}")
    log(f"results in {out} ({time.monotonic() - started:.0f}s)")
    if failing:
        log(f"conformance gate: FAIL ({len(failing)} regressions)")
        return 1
    log("conformance gate: PASS (no allowlisted test or conforming scenario regressed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
