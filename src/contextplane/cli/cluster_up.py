"""`contextplane cluster up`: a local cluster on 127.0.0.1 (PostgreSQL, SeaweedFS and N
brokers, cluster/local/) until Ctrl-C or SIGTERM, which stop everything, brokers first.
It prints each broker's bootstrap, rack and pid, the stores' addresses and how to try
failover and a move; a broker that exits is reported and, with `--restart-after`, started
again."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contextplane.cli.output import say
from contextplane.clock import SystemClock
from contextplane.cluster.local.brokers import PER_BROKER, LocalBroker
from contextplane.cluster.local.processes import Interrupted, MissingProgram, StartFailed
from contextplane.cluster.local.supervisor import MAX_BROKERS, LocalCluster

DEFAULT_BASE_PORT = 9092
READY_LINE = "cluster ready"
_CLOCK = SystemClock()


def add_parser(what: Any) -> None:
    up = what.add_parser(
        "up", help="run a local cluster: PostgreSQL, SeaweedFS and brokers on 127.0.0.1"
    )
    up.add_argument(
        "--dir",
        type=Path,
        help="keep the cluster's state here and reuse it on the next `up`"
        " (default: a new temporary directory, removed at exit)",
    )
    up.add_argument(
        "--brokers", type=int, default=3, metavar="N", help=f"1 to {MAX_BROKERS} (default 3)"
    )
    up.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_BASE_PORT,
        metavar="PORT",
        help="broker N listens on PORT+N-1 and serves /metrics on PORT+100+N-1"
        f" (default {DEFAULT_BASE_PORT}; 0: free ports)",
    )
    up.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every broker, e.g. broker.session.timeout.ms=3000",
    )
    up.add_argument(
        "--restart-after",
        type=float,
        metavar="SECONDS",
        help="start a broker that failed (killed, crashed; not one stopped cleanly) again"
        " this long after, with its node id, port and data directory (default: reported,"
        " not restarted)",
    )


def _settings(items: list[str]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects NAME=VALUE, got {item!r}")
        if name in PER_BROKER:
            raise ValueError(f"--set {name}: each broker gets its own (not settable for all)")
        settings[name] = value
    return settings


def _check(settings: dict[str, str]) -> None:
    """Load `settings` as a broker of the cluster would (SettingsError naming the bad
    one), with stand-ins for what the cluster gives each broker once its stores run."""
    from contextplane.settings import load_settings

    store = "s3://contextplane/{}?endpoint=http://127.0.0.1:1&region=us-east-1"
    load_settings(
        None,
        environ={},
        overrides={
            "object.store.url": store.format("data"),
            "wal.url": store.format("wal"),
            **settings,
            "metadata.url": "postgresql://postgres@127.0.0.1:1/contextplane",
            "node.id": "1",
            "broker.rack": "a",
            "http.port": "0",
        },
    )


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.brokers <= MAX_BROKERS:
        return _fail(f"--brokers must be 1 to {MAX_BROKERS}, got {args.brokers}")
    top = args.base_port + 100 + args.brokers - 1
    if args.base_port != 0 and not (args.base_port >= 1024 and top <= 65535):
        return _fail(f"--base-port must be 0 or 1024 to {65535 - 100 - args.brokers + 1}")
    if args.restart_after is not None and not 0 <= args.restart_after <= 86_400:
        return _fail(f"--restart-after must be 0 to 86400 seconds, got {args.restart_after:g}")
    try:
        settings = _settings(args.set)
        _check(settings)
    except ValueError as exc:  # SettingsError too: before PostgreSQL and SeaweedFS start
        return _fail(str(exc))
    stop = threading.Event()
    # SIGHUP too: a closed terminal stops the cluster in order, not the supervisor alone.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    try:
        cluster = LocalCluster(args.dir, args.brokers, args.base_port, settings)
    except (MissingProgram, StartFailed) as exc:  # nothing started, no directory made
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"--dir: {exc}")
    try:
        return _serve(cluster, stop, args.restart_after)
    finally:
        say("stopping: brokers, then SeaweedFS and PostgreSQL", err=True)
        cluster.close()
        say("stopped", err=True)


def _serve(cluster: LocalCluster, stop: threading.Event, restart_after: float | None) -> int:
    try:
        took = cluster.start(stop)
    except Interrupted:
        return 0
    except StartFailed as exc:
        say(f"contextplane: {exc}", err=True)
        return 1
    say(_table(cluster, took, restart_after))
    restarts = Restarts(restart_after)
    while not stop.wait(0.5):
        for broker in cluster.brokers:
            restarts.watch(broker)
        for name, service in (("PostgreSQL", cluster.postgres), ("SeaweedFS", cluster.seaweedfs)):
            if service.process is not None and service.process.poll() is not None:
                say(f"contextplane: {name} exited ({service.process.returncode})", err=True)
                return 1
    return 0


class Restarts:
    """Reports each broker that exits and, with `--restart-after`, starts one that failed
    (a non-zero status: killed, crashed) again that long after (a crash loop restarts at
    that pace), saying when it serves again; one stopped cleanly stays stopped."""

    def __init__(self, after_s: float | None) -> None:
        self._after_s = after_s
        self._due: dict[int, float] = {}  # node -> when to start it (monotonic s)
        self._starting: set[int] = set()

    def watch(self, broker: LocalBroker) -> None:
        node = broker.node_id
        now_s = _CLOCK.monotonic_ms() / 1000
        status = broker.exited()
        if status is not None and not broker.exit_reported:
            broker.exit_reported = True
            self._starting.discard(node)
            then = ""
            if self._after_s is not None and status == 0:
                # Restarted on failure only, as systemd's Restart=on-failure: a broker
                # stopped on purpose (SIGTERM, a controlled shutdown) stays stopped.
                then = "; stopped cleanly, so not started again"
            elif self._after_s is not None:
                self._due[node] = now_s + self._after_s
                then = f"; starting it again in {self._after_s:g} s"
            ended = f"killed by {_signal_name(-status)}" if status < 0 else f"exited ({status})"
            say(f"broker {node} (pid {broker.pid}) {ended}{then}")
        if node in self._due and now_s >= self._due[node]:
            del self._due[node]
            broker.exit_reported = False
            broker.start()
            self._starting.add(node)
            say(f"broker {node} started again (pid {broker.pid})")
        if node in self._starting and broker.exited() is None and broker.ready():
            self._starting.discard(node)
            say(f"broker {node} serving again on {broker.bootstrap}")


def _signal_name(number: int) -> str:
    """SIGKILL for 9; "signal 40" for one Python has no name for (a real-time signal)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _table(cluster: LocalCluster, took: float, restart_after: float | None) -> str:
    where = "removed at exit" if cluster.temporary else "kept for the next `up --dir`"
    first = cluster.brokers[0]
    last = cluster.brokers[-1]
    program = _program()
    rows = [f"{'node':<6}{'bootstrap':<18}{'rack':<6}{'pid':<9}metrics"]
    rows += [
        f"{b.node_id:<6}{b.bootstrap:<18}{b.rack:<6}{b.pid!s:<9}"
        f"http://127.0.0.1:{b.http_port}/metrics"
        for b in cluster.brokers
    ]
    return "\n".join(
        [
            f"{READY_LINE}: {len(cluster.brokers)} brokers in {took:.1f} s",
            "",
            *rows,
            "",
            f"bootstrap.servers  {cluster.bootstrap}",
            f"PostgreSQL         {cluster.postgres.url}",
            f"S3 endpoint        {cluster.seaweedfs.endpoint} (bucket {cluster.seaweedfs.bucket})",
            f"state              {cluster.directory} ({where}; logs broker-N.log there)",
            "",
            "try failover: kill -9 a broker; once its lease lapses (broker.session.timeout.ms,"
            f" 6 s) and the controller sees it, {_failover(first.settings)}:",
            f"  {program} topic create demo -p 6 --bootstrap-server {first.bootstrap}"
            + ("" if cluster.temporary else "   # once: topics stay in the --dir"),
            f"  kill -9 {first.pid}",
            f"  {program} topic describe demo --bootstrap-server {last.bootstrap}",
            *(
                [f"  (it is started again {restart_after:g} s after it exits: --restart-after)"]
                if restart_after is not None
                else []
            ),
            f"try a move:  {program} partitions move demo-0 --to {last.node_id} --wait"
            f" --bootstrap-server {last.bootstrap}",
            "Ctrl-C stops everything (brokers first).",
        ]
    )


def _program() -> str:
    """How a shell runs this command-line tool: `contextplane` when that name finds this
    installation's, else its path (`scripts/cluster-up` runs `.venv/bin/contextplane`,
    whose directory a new shell does not have on PATH)."""
    here = Path(sys.executable).parent / "contextplane"
    found = shutil.which("contextplane")
    if found is not None and (not here.exists() or Path(found).resolve() == here.resolve()):
        return "contextplane"
    return str(here) if here.exists() else "contextplane"


def _failover(settings: Mapping[str, str]) -> str:
    if settings.get("wal.url"):
        return "others lead its partitions, every acknowledged record kept (the object WAL)"
    return (
        "others lead its partitions whose records are all uploaded; those with records"
        " only in its local WAL stay offline until it is back (wal.url is empty)"
    )


def _fail(message: str) -> int:
    print(f"contextplane cluster up: {message}", file=sys.stderr)
    return 2
