"""The in-process broker fixture: a real listener, a clean stop that leaves no thread,
a restart on the same port with the same data."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient


def broker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("broker-")]


def test_starts_restarts_on_its_port_and_stops_without_a_thread_left(tmp_path: Path) -> None:
    before = broker_threads()
    broker = InProcessBroker(tmp_path / "one").start()
    try:
        port = broker.port
        assert port > 0
        assert f"listening on 127.0.0.1:{port}" in broker.log_tail()
        with RawClient(broker.bootstrap) as client:
            assert client.request(18, 3, client_software_name="t", client_software_version="1")
        broker.restart()
        assert broker.port == port
        assert (tmp_path / "one" / "metadata.db").exists()
        with RawClient(broker.bootstrap) as client:
            assert client.request(18, 3, client_software_name="t", client_software_version="1")
    finally:
        broker.stop()
    assert broker_threads() == before
