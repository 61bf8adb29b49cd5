"""The SDK's context client against a server that is not a context service (a 421 may
name any member's address): a reply that streams past any answer's size, and one that
trickles a byte at a time, each byte within the socket's timeout. Each is an error the
caller can handle, not memory filled or a caller held for ever."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from contextplane.services.context.client import (
    REPLY_BYTES_MAX,
    ContextClient,
    ContextClientError,
)


class Hostile(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        status = 404 if "nope" in self.path else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            if "big" in self.path:
                piece = b" " * (1024 * 1024)
                for _ in range(REPLY_BYTES_MAX // len(piece) + 2):
                    self.wfile.write(piece)
            else:
                for _ in range(600):  # ends in time should the client never give up
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
        except OSError:  # the client gave up: what this test wants
            return

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(name="hostile")
def hostile_fixture() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("view", "kind"),
    [
        ("big", "reply-too-large"),
        ("slow", "reply-too-slow"),
        ("nope-big", "reply-too-large"),  # a problem's body is bounded the same way
        ("nope-slow", "reply-too-slow"),
    ],
)
def test_replies_past_their_size_or_time_are_errors(hostile: str, view: str, kind: str) -> None:
    with pytest.raises(ContextClientError) as failed:
        ContextClient(hostile, timeout_s=1.0).get(view, "e1")
    assert failed.value.kind == kind


def test_a_service_that_does_not_answer_is_a_problem_naming_it() -> None:
    # A port nothing listens on: bound and closed again, so the connection is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(ContextClientError) as failed:
        ContextClient(url, timeout_s=1.0).get("account", "a1")
    assert (failed.value.status, failed.value.kind) == (503, "unreachable")
    assert url in str(failed.value)
