"""The mirror's raw connection names the side of the mirror a failure is on, and tells a
cluster that does not serve MirrorAppend (a broker that closes the connection on an API
key it does not know, as Apache Kafka does) from contextplane."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from contextplane.cli.mirror_run import answers_mirror_append
from contextplane.cli.wire import Cluster, WireError
from tests.support.broker import free_port


@pytest.fixture
def closing_listener() -> Iterator[str]:
    """host:port of a listener that reads a request and closes the connection."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)  # to see `done` between connections
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(30)
                connection.recv(1 << 16)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    done.set()
    thread.join(30)
    server.close()


def test_a_refused_connection_names_the_side_and_its_bootstrap_servers() -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    cluster = Cluster(nowhere, "source")
    with pytest.raises(WireError) as raised:
        cluster.leaders(["orders"])
    assert str(raised.value).startswith(f"the source ({nowhere}): cannot connect to {nowhere}: "), (
        raised.value
    )


def test_a_cluster_that_closes_on_mirror_append_is_not_contextplane(closing_listener: str) -> None:
    target = Cluster(closing_listener, "target")
    try:
        assert answers_mirror_append(target) is False
        with pytest.raises(WireError) as raised:  # and any request there names the side
            target.leaders(["orders"])
        assert str(raised.value) == (
            f"the target ({closing_listener}): {closing_listener} closed the connection"
        )
    finally:
        target.close()
