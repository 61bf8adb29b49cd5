"""One broker process of the local cluster: `contextplane up` with its node.id, rack,
port and data directory, the shared metadata URL and object store, its output in
`broker-N.log`."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from contextplane.cluster.local.processes import (
    StartFailed,
    die_with_parent,
    log_tail,
    stop_process,
    wait_for,
)

RACKS = ("a", "b", "c")
_READY = re.compile(r"contextplane broker ready on [^\s:]+:(\d+)")
_CONSOLE = re.compile(r"console at http://[^\s/]+:(\d+)/")
START_TIMEOUT_S = 120.0
# A clean stop uploads the tail within shutdown.timeout.ms (30 s by default) and slack.
STOP_TIMEOUT_S = 45.0
# What the cluster sets per broker: `--set` cannot change these for all of them at once.
PER_BROKER = frozenset({"node.id", "broker.rack", "listener.port", "log.dirs", "metadata.url",
                        "http.port"})  # fmt: skip


@dataclass
class LocalBroker:
    node_id: int
    port: int
    http_port: int
    directory: Path
    settings: Mapping[str, str]  # every broker's: the shared stores and `--set`
    process: subprocess.Popen[bytes] | None = None
    exit_reported: bool = field(default=False)

    @property
    def rack(self) -> str:
        return RACKS[(self.node_id - 1) % len(RACKS)]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory.parent / f"broker-{self.node_id}.log"

    def command(self) -> list[str]:
        own = {
            "node.id": str(self.node_id),
            "broker.rack": self.rack,
            "http.port": str(self.http_port),
        }
        sets = [w for k, v in {**self.settings, **own}.items() for w in ("--set", f"{k}={v}")]
        return [sys.executable, "-m", "contextplane.cli.launch", "up", "--host", "127.0.0.1",
                "--port", str(self.port), "--data-dir", str(self.directory), *sets]  # fmt: skip

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
            self._log_start = log.tell()

    def wait_ready(self, stop: threading.Event) -> None:
        wait_for(self._ready, START_TIMEOUT_S, f"broker {self.node_id}", stop)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise StartFailed(
                f"broker {self.node_id} exited ({self.process.returncode}):\n{log_tail(self.log)}"
            )
        return self.ready()

    def ready(self) -> bool:
        """Whether this start's log says it serves (its ports taken from it)."""
        with open(self.log, "rb") as log:
            log.seek(self._log_start)
            text = log.read().decode(errors="replace")
        # Port 0 (`--base-port 0`): the ports it bound, as it reports them.
        listening = _READY.search(text)
        console = _CONSOLE.search(text)
        if listening is None or console is None:
            return False
        self.port = int(listening.group(1))
        self.http_port = int(console.group(1))
        return True

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def exited(self) -> int | None:
        """The exit status once the process ended, else None."""
        return None if self.process is None else self.process.poll()

    def signal_stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        stop_process(self.process, signal.SIGTERM, STOP_TIMEOUT_S)
