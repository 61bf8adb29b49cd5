"""A private PostgreSQL server for tests, from Debian's package (`postgresql`).

`PostgresServer` runs initdb and postgres (/usr/lib/postgresql/<version>/bin) in a
temporary directory, listening on 127.0.0.1 at a free port (and a Unix socket in that
directory only), and removes everything at `stop`. PostgreSQL refuses to run as root:
when the tests run as root the server runs as `nobody` (setpriv), its directory handed
over to it.
The server is for tests only: fsync is off (crash durability is PostgreSQL's, not ours to
test), trust authentication on loopback.

`metadata_url` (conftest.py) gives each test a database of its own on one server for the
whole session: `create_database()`. A test that stops the server (`halt`, then `resume` on
the same data and port) starts one of its own.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from contextplane.cluster.local import postgres as local
from tests.support.wait import wait_until

INSTALL_HINT = local.INSTALL_HINT
START_TIMEOUT_S = 60.0


def server_binaries() -> Path:
    """The bin directory of the newest PostgreSQL installed (fails naming the package)."""
    found = local.server_binaries()
    if found is None:
        pytest.fail(INSTALL_HINT)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        self.bin = server_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="contextplane-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres"
        self._process: subprocess.Popen[bytes] | None = None
        self._as_user = local.as_unprivileged(self.root)  # as root: nobody, owning root

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        subprocess.run(
            [*self._as_user, *local.initdb_command(self.bin, self.data), "--no-sync"],
            check=True, capture_output=True, cwd=self.root,
        )  # fmt: skip
        return self.resume()

    def resume(self) -> PostgresServer:
        """Run the server on its data directory and port (again, after `halt`)."""
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - the server's lifetime
        self._process = subprocess.Popen(
            [*self._as_user, *local.postgres_command(self.bin, self.data, self.port, [
                f"unix_socket_directories={self.root}", "fsync=off",
                "synchronous_commit=off", "full_page_writes=off"])],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
        )  # fmt: skip
        log.close()
        wait_until(self._accepts, START_TIMEOUT_S, f"PostgreSQL accepting on port {self.port}")
        return self

    def _accepts(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(
                f"PostgreSQL exited ({self._process.returncode}):"
                f" {(self.root / 'postgres.log').read_text()[-2000:]}"
            )
        try:
            psycopg.connect(self.url(), connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # noqa: S608 - generated name
        return self.url(name)

    @property
    def pid(self) -> int:
        assert self._process is not None, "the server is not running"
        return self._process.pid

    def halt(self) -> None:
        """Stop the server (a fast shutdown), keeping its data for `resume`."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test session (started by the first test that asks)."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
