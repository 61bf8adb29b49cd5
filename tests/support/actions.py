"""For the executor's end-to-end tests: `contextplane executor` as a subprocess, and a
tool endpoint on 127.0.0.1 that counts what reaches it (each request, and each effect
performed: once per Idempotency-Key when it honours the key, once per request when not)
and can hold a key's request until released, to kill its caller mid call."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.context import ContextProcess

_READY = re.compile(r"contextplane executor ready on \S+:(\d+)")


@dataclass
class ExecutorProcess(ContextProcess):
    """`views` is the tools file here; `data_dir` is unused (the executor keeps none)."""

    transactional_id: str = "executor-test"

    what = "executor"
    ready = _READY

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "contextplane.cli.main", "executor"]
        args += ["--bootstrap", self.bootstrap, "--tools", str(self.views)]
        args += ["--transactional-id", self.transactional_id, "--port", str(self.port)]
        return args + self.extra_args

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class CountingEndpoint:
    def __init__(self, *, honours_key: bool, port: int = 0) -> None:
        self.honours_key = honours_key
        self.requests: Counter[str] = Counter()  # Idempotency-Key -> requests received
        self.effects: Counter[str] = Counter()  # Idempotency-Key -> effects performed
        self.without_key = 0
        self.traceparents: list[str] = []  # W3C trace context headers received
        self._answers: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.hold: set[str] = set()  # keys whose first answer waits for `release`
        self.arrived = threading.Event()  # a held key's request came in
        self.release = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                arguments = json.loads(self.rfile.read(length) or b"null")
                key = self.headers.get("Idempotency-Key")
                if traceparent := self.headers.get("traceparent"):
                    endpoint.traceparents.append(traceparent)
                answer = endpoint._perform(key, arguments)
                if key in endpoint.hold:
                    endpoint.hold.discard(key)  # the first request only
                    endpoint.arrived.set()
                    endpoint.release.wait(120)
                body = json.dumps(answer).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the caller is gone (killed mid call)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/act"

    def _perform(self, key: str | None, arguments: Any) -> dict[str, Any]:
        with self._lock:
            if key is None:
                self.without_key += 1
                return {"effect": "no key"}
            self.requests[key] += 1
            if self.honours_key and key in self._answers:
                return self._answers[key]  # a repeated key: the recorded answer
            self.effects[key] += 1
            answer = {"effect_of": key, "arguments": arguments, "n": self.effects[key]}
            self._answers[key] = answer
            return answer

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
