"""Start contextplane as a subprocess on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.wait import wait_until

# Printed by `contextplane up` once every listener accepts connections.
_READY = re.compile(r"contextplane broker ready on \S+:(\d+)")

# The brokers the running test started: a failed test's report ends with their logs
# (tests/conftest.py), since a broker that died shows nothing in the client's error.
STARTED: list[BrokerProcess] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BrokerProcess:
    data_dir: Path
    port: int = 0
    settings: dict[str, str] = field(default_factory=dict)
    object_store: str | None = None
    # `--metadata` (e.g. a PostgreSQL URL); the SQLite file in the data directory if None.
    metadata_url: str | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    # RLIMIT_NOFILE of the broker process (its descriptor budget), when a test sets one.
    open_files_max: int | None = None
    # A properties file (`--config`) and the directory the broker runs in (relative paths
    # in settings are relative to it), when a test gives them.
    config: Path | None = None
    cwd: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> BrokerProcess:
        """Start the broker and wait for its ready line. The first start asks for port 0
        and reads the port bound from that line: picking a free port first and probing it
        races with other processes (a probe can even connect to itself), and a probe that
        succeeds against something else hides a broker that failed to bind."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable,
            "-m",
            "contextplane.cli.launch",
            "up",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
        ]
        if self.object_store:
            args += ["--object-store", self.object_store]
        if self.metadata_url:
            args += ["--metadata", self.metadata_url]
        if self.config is not None:
            args += ["--config", str(self.config)]
        # The HTTP surface only where a test asks for it: many brokers run at once here,
        # and 8080 is one port.
        for name, value in {"http.port": "-1", **self.settings}.items():
            args += ["--set", f"{name}={value}"]
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-broker.log"
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child's lifetime
        self.process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
            cwd=self.cwd,
            preexec_fn=self._limit_open_files if self.open_files_max else None,
        )
        process = self.process
        if self not in STARTED:
            STARTED.append(self)

        def ready_port() -> int | None:
            if process.poll() is not None:
                raise RuntimeError(f"broker exited early:\n{self.log_tail()}")
            assert self.log_path is not None
            with open(self.log_path, "rb") as file:
                file.seek(log_offset)
                found = _READY.search(file.read().decode(errors="replace"))
            return int(found.group(1)) if found else None

        try:
            port = wait_until(ready_port, timeout_s, "the broker is ready")
        except AssertionError:
            raise RuntimeError(
                f"broker was not ready within {timeout_s}s:\n{self.log_tail()}"
            ) from None
        if self.port and port != self.port:
            raise RuntimeError(f"broker bound {port}, not {self.port}:\n{self.log_tail()}")
        self.port = port  # a restart asks for the same port again
        return self

    def _limit_open_files(self) -> None:
        assert self.open_files_max is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files_max, self.open_files_max))

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"broker did not stop on SIGTERM:\n{self.log_tail()}") from None

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def restart(self) -> BrokerProcess:
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def state(self) -> str:
        """Running, or how the process ended (a negative code is the signal)."""
        if self.process is None:
            return "not started"
        code = self.process.poll()
        return "running" if code is None else f"exited with {code}"
