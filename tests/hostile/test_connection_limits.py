"""Connections a client opens cannot pile up: idle ones expire (connections.max.idle.ms),
max.connections makes new ones wait in the listen backlog, max.connections.per.ip (and its
overrides) refuses extra ones at once, and a flood of thousands leaves the broker serving.
Each case checks that the connections already established keep working."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from tests.hostile.observe import api_versions, descriptors, listen_queue
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

JOIN_GROUP, DELETE_GROUPS = 11, 42


@contextlib.contextmanager
def running(tmp_path: Path, **settings: str) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(tmp_path / "broker", settings=settings).start()
    try:
        yield broker
    finally:
        broker.stop()


def test_idle_connections_are_closed_after_connections_max_idle_ms(tmp_path: Path) -> None:
    # A JoinGroup parked by group.initial.rebalance.delay.ms is work in progress, not idleness.
    with running(
        tmp_path, **{"connections.max.idle.ms": "1000", "group.initial.rebalance.delay.ms": "2500"}
    ) as broker:
        idle = [RawClient(broker.bootstrap) for _ in range(50)]
        used_once = RawClient(broker.bootstrap)
        api_versions(used_once)
        active = RawClient(broker.bootstrap)
        joining = RawClient(broker.bootstrap)
        joining.sock.settimeout(30)
        join = {
            "group_id": "parked",
            "session_timeout": 10_000,
            "rebalance_timeout": 10_000,
            "group_instance_id": None,
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b""}],
        }
        member_id = joining.request(JOIN_GROUP, 5, member_id="", **join).member_id
        joining.send(JOIN_GROUP, 5, member_id=member_id, **join)
        started_at = time.monotonic()
        # The active connection sends a request every 200 ms for three idle periods: the
        # pacing is the scenario (activity spaced well inside connections.max.idle.ms),
        # not a wait for something to happen.
        while time.monotonic() - started_at < 3.0:
            api_versions(active)
            time.sleep(0.2)
        assert joining.receive().error_code == 0  # answered after the delay, not closed
        for client in [*idle, used_once]:
            assert client.closed_by_broker(timeout_s=10), "an idle connection was kept"
        api_versions(active)
        api_versions(joining)


def test_max_connections_queues_new_connections_while_existing_ones_work(
    tmp_path: Path,
) -> None:
    with running(tmp_path, **{"max.connections": "3"}) as broker:
        clients = [RawClient(broker.bootstrap) for _ in range(3)]
        for client in clients:
            api_versions(client)
        waiting = RawClient(broker.bootstrap)  # the kernel completes the handshake
        waiting.send(18, 3, client_software_name="w", client_software_version="1")
        # Kafka's semantics: not accepted, so it stays in the listen backlog.
        wait_until(lambda: listen_queue(broker.port) == 1, 10, "a connection waits in backlog")
        for client in clients:
            api_versions(client)
        assert listen_queue(broker.port) == 1
        clients.pop().close()
        waiting.sock.settimeout(10)
        assert waiting.receive().error_code == 0
        for client in clients:
            api_versions(client)


def test_max_connections_per_ip_refuses_extra_connections_with_overrides(
    tmp_path: Path,
) -> None:
    settings = {"max.connections.per.ip": "2", "max.connections.per.ip.overrides": "127.0.0.2:4"}
    with running(tmp_path, **settings) as broker:
        for source, limit in (("127.0.0.1", 2), ("127.0.0.2", 4)):
            allowed = [RawClient(broker.bootstrap, source=source) for _ in range(limit)]
            for client in allowed:
                api_versions(client)
            extra = RawClient(broker.bootstrap, source=source)
            assert extra.closed_by_broker(timeout_s=10), f"connection {limit + 1} from {source}"
            for client in allowed:
                api_versions(client)
            # A closed connection frees its slot.
            allowed.pop().close()

            def replacement_served(source: str = source) -> bool:
                try:
                    with RawClient(broker.bootstrap, source=source) as client:
                        client.sock.settimeout(2)
                        api_versions(client, timeout_s=2)
                        return True
                except (ConnectionError, TimeoutError, OSError):
                    return False

            wait_until(replacement_served, 10, f"a new connection from {source} is served")


def _open_flood(port: int, count: int) -> list[socket.socket]:
    flood = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        flood.append(sock)
    return flood


def _settled(pid: int) -> object:
    """The broker's socket count once it has stopped changing for a second."""
    counts = []

    def stable() -> int | None:
        counts.append(descriptors(pid)[1])
        return counts[-1] if len(counts) > 20 and counts[-1] == counts[-21] else None

    return wait_until(stable, 60, "the flood settles")


def test_connection_flood_leaves_the_broker_serving(tmp_path: Path) -> None:
    broker = BrokerProcess(
        tmp_path / "broker", settings={"max.connections.per.ip": "500"}, open_files_max=1024
    ).start()
    flood: list[socket.socket] = []
    try:
        assert broker.process is not None
        pid = broker.process.pid
        before = RawClient(broker.bootstrap)
        api_versions(before)
        flood = _open_flood(broker.port, 2500)
        held = _settled(pid)
        # Refused beyond max.connections.per.ip, and descriptors are left for the broker.
        assert held <= 500 + 5, held
        open_fds = descriptors(pid)[0]
        assert 1024 - open_fds >= 128, open_fds
        with RawClient(broker.bootstrap, source="127.0.0.2") as other:
            assert api_versions(other, timeout_s=5) < 5
        api_versions(before)
        for sock in flood:
            sock.close()

        def fresh_connection_served() -> bool:
            try:
                with RawClient(broker.bootstrap) as client:
                    api_versions(client, timeout_s=2)
                    return True
            except OSError:
                return False

        wait_until(fresh_connection_served, 30, "a connection after the flood is served")
    finally:
        for sock in flood:
            sock.close()
        broker.stop()
