"""Failover when every broker left is draining: a drain steers placement, rebalance and
failover away from a broker, but when the last broker that is not draining dies, its
partitions go to the draining ones rather than staying offline while they run (before,
every partition stayed leaderless until an operator moved each by hand)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cluster_failover import (
    Acks,
    broker,
    broker_state,
    create,
    fixture,
    read_back,
    stored,
)
from tests.support.cli import contextplane
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until


def test_the_last_live_brokers_partitions_go_to_a_draining_one(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    one = broker(tmp_path / "one", 1, url, objects).start()
    two = broker(tmp_path / "two", 2, url, objects).start()
    try:
        create(one.bootstrap, "drained", 4, url)
        acks = Acks(one.bootstrap)
        for i in range(200):
            acks.send("drained", i % 4, f"r{i}".encode())
        acks.flush()
        drained = contextplane(
            "cluster", "drain", "1", "--wait", "--bootstrap-server", two.bootstrap,
            "--output", "json",
        ).json()  # fmt: skip
        assert drained["status"] == "done", drained
        assert all(r["leader"] == 2 for r in stored(url, "drained").values())
        wait_until(  # uploaded: clean partitions move at once (dirty ones need its WAL)
            lambda: all(r["dirty"] == 0 for r in stored(url, "drained").values()),
            15,
            "uploaded and cleared",
        )

        two.kill9()
        wait_until(
            lambda: all(r["leader"] == 1 for r in stored(url, "drained").values()),
            30,
            "draining broker 1 leads broker 2's partitions",
        )
        assert broker_state(url, 1) == "draining"  # still draining: nothing else changed
        for p in range(4):
            acks.send("drained", p, b"after")
        acks.flush(30)
        assert not acks.errors, acks.errors
        read = read_back(one.bootstrap, "drained", list(range(4)), len(acks.acked))
        assert read == acks.acked, "an acknowledged record is missing or different"
    finally:
        one.stop()
        two.stop()
