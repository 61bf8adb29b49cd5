"""What every supervised service shares: free loopback ports, a child that dies with its
supervisor, a bounded stop, and a wait that a stop request interrupts."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping

from contextplane.clock import SystemClock

_PR_SET_PDEATHSIG = 1
_CLOCK = SystemClock()


class MissingProgram(RuntimeError):
    """A program the cluster needs is not installed; the message says what to install."""


class StartFailed(RuntimeError):
    """A service exited or did not get ready; the message carries its log's tail."""


class Interrupted(Exception):
    """A stop was requested while waiting for a service to get ready."""


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def taken_ports(ports: Mapping[int, str]) -> list[str]:
    """Of `ports` (port -> what it is for), those a listener cannot bind on 127.0.0.1
    now, as "PORT (what)"; a port only in TIME_WAIT binds (the brokers set
    SO_REUSEADDR too)."""
    taken = []
    for port, what in ports.items():
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                taken.append(f"{port} ({what})")
    return taken


def die_with_parent() -> None:
    """A `preexec_fn`: the child gets SIGTERM if the supervisor dies (even by SIGKILL), so
    nothing is left running behind it. Linux only; elsewhere nothing."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_for(ready: Callable[[], bool], timeout_s: float, what: str, stop: threading.Event) -> None:
    """Poll `ready` until true; Interrupted on `stop`, StartFailed after `timeout_s`."""
    deadline = _CLOCK.monotonic_ms() / 1000 + timeout_s
    while not ready():
        if stop.wait(0.2):
            raise Interrupted
        if _CLOCK.monotonic_ms() / 1000 > deadline:
            raise StartFailed(f"{what}: not ready within {timeout_s:.0f} s")


def stop_process(process: subprocess.Popen[bytes] | None, sig: int, timeout_s: float) -> int | None:
    """Send `sig`, wait up to `timeout_s`, then SIGKILL; the exit status (None: none ran)."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def log_tail(path: object, lines: int = 20) -> str:
    try:
        with open(str(path), errors="replace") as log:
            return "".join(log.readlines()[-lines:])
    except OSError:
        return ""
