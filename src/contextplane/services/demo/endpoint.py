"""The demo's stand-in for the systems the tools act on: an HTTP endpoint on 127.0.0.1 that
counts every request it receives, per tool (the path's last segment) and per
Idempotency-Key, and answers a repeated key with its first answer, as a payment API does.
The demo's "tool calls executed" is this count, not the ledger's word."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A tool call's arguments are bounded by the executor; this bounds what is read anyway.
BODY_BYTES_MAX = 64 * 1024


class CountingEndpoint:
    def __init__(self) -> None:
        self.by_tool: Counter[str] = Counter()
        self.by_key: Counter[str] = Counter()
        self._answers: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a request's reads on the socket, at most

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length_text = self.headers.get("Content-Length") or "0"
                if not length_text.isdigit() or int(length_text) > BODY_BYTES_MAX:
                    self.send_error(413)
                    return
                length = int(length_text)
                try:
                    arguments = json.loads(self.rfile.read(length) or b"null")
                except ValueError:
                    self.send_error(400)
                    return
                tool = self.path.rstrip("/").rsplit("/", 1)[-1]
                answer = endpoint.perform(tool, self.headers.get("Idempotency-Key"), arguments)
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-endpoint", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def calls(self) -> int:
        with self._lock:
            return sum(self.by_tool.values())

    def perform(self, tool: str, key: str | None, arguments: Any) -> dict[str, Any]:
        with self._lock:
            self.by_tool[tool] += 1
            if key is None:
                return {"tool": tool, "effect": "performed", "arguments": arguments}
            self.by_key[key] += 1
            if key not in self._answers:
                self._answers[key] = {"tool": tool, "effect": "performed", "key": key}
            return self._answers[key]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
