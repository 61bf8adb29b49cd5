"""`contextplane context` as a subprocess on a free loopback port, for end-to-end tests;
fixtures for a broker process with the sources of an `account` view, and the service."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import BrokerProcess
from tests.support.wait import wait_until

_READY = re.compile(r"contextplane context ready on \S+:(\d+)")


@dataclass
class ContextProcess:
    bootstrap: str
    views: Path
    data_dir: Path
    log_path: Path
    name: str = "ctx"
    port: int = 0  # 0: any free port at the first start; a restart keeps the port
    extra_args: list[str] = field(default_factory=list)  # more `contextplane context` flags
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> ContextProcess:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child's lifetime
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        process = self.process

        def ready_port() -> int | None:
            if process.poll() is not None:
                raise RuntimeError(f"{self.what} exited early:\n{self.log_tail()}")
            with open(self.log_path, "rb") as file:
                file.seek(offset)
                found = self.ready.search(file.read().decode(errors="replace"))
            return int(found.group(1)) if found else None

        self.port = wait_until(ready_port, timeout_s, f"the {self.what} is ready")
        return self

    what = "context service"
    ready = _READY

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "contextplane.cli.main", "context"]
        args += ["--bootstrap", self.bootstrap, "--views", str(self.views)]
        args += ["--data-dir", str(self.data_dir), "--name", self.name, "--port", str(self.port)]
        return args + self.extra_args

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, and the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"{self.what} did not stop:\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


VIEWS = """
[views.account]
freshness_target_ms = 60000

[[views.account.sources]]
topic = "crm.accounts"
field = "profile"

[[views.account.sources]]
topic = "billing.entitlements"
entity_id = "value.account_id"
field = "entitlement"

[[views.account.sources]]
topic = "support.tickets"
entity_id = "value.account.id"
field = "tickets"
merge = "list"
max_items = 1000
"""
TOPICS = {"crm.accounts": 1, "billing.entitlements": 2, "support.tickets": 2}
TIMEOUT_S = 60


@pytest.fixture(name="broker")
def broker_fixture(tmp_path: Path) -> Iterator[BrokerProcess]:
    running = BrokerProcess(tmp_path / "broker").start()
    admin = AdminClient({"bootstrap.servers": running.bootstrap})
    futures = admin.create_topics([NewTopic(t, n, 1) for t, n in TOPICS.items()])
    for future in futures.values():
        future.result(TIMEOUT_S)
    yield running
    running.stop()


@pytest.fixture(name="views")
def views_fixture(tmp_path: Path) -> Path:
    path = tmp_path / "views.toml"
    path.write_text(VIEWS)
    return path


@pytest.fixture(name="service")
def service_fixture(broker: BrokerProcess, views: Path, tmp_path: Path) -> Iterator[ContextProcess]:
    running = ContextProcess(
        broker.bootstrap, views, tmp_path / "context", tmp_path / "context.log"
    ).start()
    yield running
    running.stop()
