"""`contextplane cluster describe`: the brokers with their endpoints, racks and the
controller, from two brokers (racks a and b) on one PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cluster_failover import broker, fixture, listed_brokers
from tests.support.cli import contextplane
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until


def test_describe_lists_each_broker_with_its_rack_and_the_controller(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    one = broker(tmp_path / "one", 1, url, objects, **{"broker.rack": "a"}).start()
    two = broker(tmp_path / "two", 2, url, objects, **{"broker.rack": "b"}).start()
    try:
        wait_until(lambda: listed_brokers(two.bootstrap) == [1, 2], 15, "both listed")
        document = contextplane(
            "cluster", "describe", "--output", "json", "--bootstrap-server", two.bootstrap
        ).json()
        brokers = document["brokers"]
        assert [(b["node_id"], b["host"], b["port"], b["rack"]) for b in brokers] == [
            (1, "127.0.0.1", one.port, "a"),
            (2, "127.0.0.1", two.port, "b"),
        ]
        controllers = [b["node_id"] for b in brokers if b["controller"]]
        assert controllers == [document["controller"]] and document["controller"] in (1, 2)
        assert document["cluster_id"]
        table = contextplane("cluster", "describe", "--bootstrap-server", one.bootstrap)
        assert table.status == 0, table.err
        rows = [line.split() for line in table.out.split("\n\n")[1].splitlines()]
        assert rows[0] == ["NODE", "ENDPOINT", "RACK", "CONTROLLER"]
        assert [r[:3] for r in rows[1:]] == [
            ["1", f"127.0.0.1:{one.port}", "a"],
            ["2", f"127.0.0.1:{two.port}", "b"],
        ]
        assert sum(r[3:] == ["yes"] for r in rows[1:]) == 1
    finally:
        two.stop()
        one.stop()
