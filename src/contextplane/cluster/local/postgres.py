"""A private PostgreSQL server from Debian's package (`postgresql`): initdb once in its
directory, then `postgres` listening on 127.0.0.1 only (no Unix socket, whose path could
be too long), trust authentication on loopback. PostgreSQL refuses to run as root: as
root the server runs as `nobody` (setpriv), its directory handed over to it."""

from __future__ import annotations

import glob
import os
import pwd
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from contextplane.clock import SystemClock
from contextplane.cluster.local.processes import (
    MissingProgram,
    StartFailed,
    die_with_parent,
    log_tail,
    stop_process,
    wait_for,
)

INSTALL_HINT = (
    "PostgreSQL's server programs (initdb, postgres) were not found in"
    " /usr/lib/postgresql/*/bin: install PostgreSQL (apt install postgresql)"
)
UNPRIVILEGED_USER = "nobody"
USER = "postgres"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def server_binaries(pattern: str = "/usr/lib/postgresql/*/bin/postgres") -> Path | None:
    """The bin directory of the newest PostgreSQL installed, or None."""
    found = sorted(
        (Path(p).parent for p in glob.glob(pattern)),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    if not found or not (found[-1] / "initdb").exists():
        return None
    return found[-1]


def check_traversable(directory: Path) -> None:
    """Under root, PostgreSQL runs as `nobody`: StartFailed unless every existing parent
    of `directory` lets others through (those made later are made so). Asked before
    anything is made, so a refused --dir leaves nothing behind."""
    if os.geteuid() != 0:
        return
    for parent in directory.resolve().parents:
        if parent.exists() and parent.stat().st_mode & 0o001 == 0:
            raise StartFailed(
                f"PostgreSQL runs as {UNPRIVILEGED_USER} under root, and {parent} does not"
                " let it through: choose a --dir every user may traverse (e.g. under /tmp)"
            )


def as_unprivileged(directory: Path) -> list[str]:
    """The command prefix that runs PostgreSQL as `nobody` when we are root (owning
    `directory`), else nothing. setpriv execs the command, so signals reach it directly."""
    if os.geteuid() != 0:
        return []
    check_traversable(directory)
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    os.chown(directory, entry.pw_uid, entry.pw_gid)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
            "--"]  # fmt: skip


def initdb_command(bin_dir: Path, data: Path) -> list[str]:
    return [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust",
            "--no-locale", "-E", "UTF8"]  # fmt: skip


def postgres_command(bin_dir: Path, data: Path, port: int, options: Sequence[str]) -> list[str]:
    """`postgres` on 127.0.0.1:`port` with `options` (each NAME=VALUE) after ours."""
    settings = ["listen_addresses=127.0.0.1", "unix_socket_directories=", "max_connections=200",
                *options]  # fmt: skip
    return [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
            *(word for option in settings for word in ("-c", option))]  # fmt: skip


class LocalPostgres:
    """PostgreSQL in `root` (data in root/data, log in root/postgres.log) on `port`."""

    def __init__(self, root: Path, port: int, database: str = "contextplane") -> None:
        bin_dir = server_binaries()
        if bin_dir is None:
            raise MissingProgram(INSTALL_HINT)
        self.bin = bin_dir
        self.root = root
        self.port = port
        self.database = database
        self.log = root / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{self.database}"

    def start(self, stop: threading.Event) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        as_user = as_unprivileged(self.root)
        data = self.root / "data"
        if not (data / "PG_VERSION").exists():
            done = subprocess.run(
                [*as_user, *initdb_command(self.bin, data)],
                capture_output=True, cwd=self.root, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise StartFailed(f"initdb failed: {done.stderr.decode(errors='replace')}")
        _stop_leftover(data)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*as_user, *postgres_command(self.bin, data, self.port, ())],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.root, start_new_session=True,
                # Not as root: setpriv's change of user clears the parent-death signal.
                preexec_fn=die_with_parent,
            )  # fmt: skip
        wait_for(self._accepts, START_TIMEOUT_S, f"PostgreSQL on port {self.port}", stop)
        self._create_database()

    def _accepts(self) -> bool:
        import psycopg

        assert self.process is not None
        if self.process.poll() is not None:
            raise StartFailed(
                f"PostgreSQL exited ({self.process.returncode}):\n{log_tail(self.log)}"
            )
        try:
            psycopg.connect(self._url("postgres"), connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def _url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(self._url("postgres"), autocommit=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if found is None:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def stop(self) -> None:
        """A fast shutdown (SIGINT): clients disconnected, data kept."""
        stop_process(self.process, signal.SIGINT, STOP_TIMEOUT_S)


def _stop_leftover(data: Path) -> None:
    """Stop a PostgreSQL an earlier `cluster up` of this directory left running (its
    supervisor killed, or, as root, gone on SIGHUP: setpriv's change of user clears the
    parent-death signal), which would hold the data directory's lock: a fast shutdown,
    waited for. Nothing when its postmaster.pid names no live postgres of this directory."""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return
    if "postgres" not in command or str(data) not in command:
        return
    print(
        f"stopping PostgreSQL left running by an earlier cluster up (pid {pid})",
        file=sys.stderr,
        flush=True,
    )
    try:
        os.kill(pid, signal.SIGINT)
    except OSError:
        return
    clock, pause = SystemClock(), threading.Event()
    deadline_ms = clock.monotonic_ms() + STOP_TIMEOUT_S * 1000
    while Path(f"/proc/{pid}").exists() and clock.monotonic_ms() < deadline_ms:
        pause.wait(0.1)
