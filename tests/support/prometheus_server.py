"""A private Prometheus server (Debian's `prometheus` package, installed by
harness/install.sh) scraping targets on 127.0.0.1 and evaluating the repository's alert
rules, and Debian's `promtool` for the rules' own unit tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.broker import free_port
from tests.support.wait import wait_until


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is not installed: run `bash harness/install.sh` (Debian's prometheus)"
    return found


@dataclass
class PrometheusServer:
    """One Prometheus on a free loopback port; scrapes and evaluates rules every second."""

    directory: Path
    targets: list[str]
    rule_files: list[Path] = field(default_factory=list)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [
                {"job_name": "contextplane", "static_configs": [{"targets": self.targets}]}
            ],
        }
        (self.directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        log = (self.directory / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, 30, "Prometheus answers /-/ready")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"Prometheus exited: {self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """The `data` of an HTTP API answer; a query Prometheus refuses fails naming it."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{path} {params}: {error.read().decode()}") from error
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        return list(data["result"])

    def log_tail(self, lines: int = 30) -> str:
        path = self.directory / "prometheus.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
