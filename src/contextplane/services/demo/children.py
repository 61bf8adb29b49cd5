"""The demo's child processes (the embedded broker, the context service, the executor):
each `contextplane ...` started with the running interpreter, its output in a log file,
ready once it prints its ready line, stopped with SIGTERM (then SIGKILL) whatever
happens. Children run in a session of their own, so a Ctrl-C reaches the demo alone and
it stops them in order; on Linux each is also sent SIGTERM if the demo dies first."""

from __future__ import annotations

import contextlib
import ctypes
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from contextplane.clock import SystemClock

STOP_WAIT_S = 15.0
# The ready line comes within a start's first lines: only this much of a log is searched.
READY_SCAN_BYTES = 1024 * 1024
_POLL_S = 0.05
_PR_SET_PDEATHSIG = 1
_CLOCK = SystemClock()


class ChildError(Exception):
    """A child exited or was not ready in time (the message names it and its last line)."""


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the demo's process ends (Linux only)."""
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    def __init__(self, name: str, args: list[str], log_path: Path, ready: str) -> None:
        self.name = name
        self.log_path = log_path
        self._args = [sys.executable, "-m", "contextplane.cli.launch", *args]
        self._ready = re.compile(ready + r" on \S+:(\d+)")
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> Child:
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        return self

    def wait_ready(self, deadline_ms: int) -> int:
        """The port it serves on, once its ready line is printed (before `deadline_ms`,
        the clock's monotonic ms)."""
        assert self._process is not None, "not started"
        while True:
            with open(self.log_path, "rb") as log:
                head = log.read(READY_SCAN_BYTES).decode(errors="replace")
            found = self._ready.search(head)
            if found:
                self.port = int(found.group(1))
                return self.port
            if self._process.poll() is not None:
                raise ChildError(
                    f"the {self.name} exited with status {self._process.returncode}:"
                    f" {self.last_line()}"
                )
            if _CLOCK.monotonic_ms() >= deadline_ms:
                raise ChildError(f"the {self.name} was not ready in time: {self.last_line()}")
            time.sleep(_POLL_S)

    def last_line(self) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(0, 2)
            log.seek(max(0, log.tell() - 4096))
            lines = log.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(no output)"

    def stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
