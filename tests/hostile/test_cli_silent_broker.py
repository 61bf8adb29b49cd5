"""A broker that accepts the connection and never answers is named as slow or stalled:
the hint to give security settings is for listeners that close a plaintext client's
connection (TLS or SASL), which this one does not do."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support.cli import contextplane, one_error_line


@pytest.fixture
def silent_listener() -> Iterator[str]:
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            held.append(connection)  # read nothing, answer nothing, keep it open

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


def test_a_broker_that_never_answers_is_not_said_to_need_security_settings(
    silent_listener: str,
) -> None:
    run = contextplane("topic", "list", "--bootstrap-server", silent_listener)
    error = one_error_line(run)
    assert f"no answer from {silent_listener}" in error, error
    assert "stayed open without an answer" in error, error
    assert "--command-config" not in error, error
