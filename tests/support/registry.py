"""`contextplane registry` as a subprocess on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.wait import wait_until

_READY = re.compile(r"contextplane schema registry ready on \S+:(\d+)")


@dataclass
class RegistryProcess:
    bootstrap: str
    log_path: Path
    port: int = 0  # 0: any free port at the first start; a restart keeps the port
    # `--timeout`: how long a Kafka call may take before the request answers 50002.
    kafka_timeout_s: float = 20.0
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    _log_offset: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> RegistryProcess:
        self.spawn()
        return self.wait_ready(timeout_s)

    def spawn(self) -> RegistryProcess:
        """Start the process without waiting for it to be ready."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child's lifetime
        args = [sys.executable, "-m", "contextplane.cli.main", "registry"]
        args += [
            "--bootstrap",
            self.bootstrap,
            "--port",
            str(self.port),
            "--timeout",
            str(self.kafka_timeout_s),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        return self

    def logged(self, pattern: str) -> re.Match[str] | None:
        """`pattern` in what this start logged so far; fails once the process has exited."""
        process = self.process
        assert process is not None, "not spawned"
        if process.poll() is not None:
            raise RuntimeError(f"registry exited early:\n{self.log_tail()}")
        with open(self.log_path, "rb") as file:
            file.seek(self._log_offset)
            return re.search(pattern, file.read().decode(errors="replace"))

    def wait_ready(self, timeout_s: float = 60.0) -> RegistryProcess:
        def ready_port() -> int | None:
            found = self.logged(_READY.pattern)
            return int(found.group(1)) if found else None

        self.port = wait_until(ready_port, timeout_s, "the registry is ready")
        return self

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, and the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            self.process.wait()
            # From the timeout, which keeps the exception a failed stop interrupts in view.
            raise RuntimeError(f"registry did not stop on SIGTERM:\n{self.log_tail()}") from exc

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
