"""`contextplane cluster describe`: the brokers with their endpoints, racks and the
controller, from two brokers (racks a and b) on one PostgreSQL; asked through either
broker it names the same controller, the lease holder (DescribeCluster), while each
broker's Metadata names itself (as a KRaft broker names a live broker). So a killed
controller, whose lease outlives it, is no client's admin target: a new admin client
bootstrapped on the survivor describes a topic at once (librdkafka sent its
DescribeTopics to the named controller and timed out after 30 s)."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.test_cluster_failover import METADATA, broker, fixture, listed_brokers
from tests.support.cli import contextplane
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until


def test_describe_lists_each_broker_with_its_rack_and_the_controller(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    # A lease far longer than the test's steps after the kill.
    lease = {"broker.session.timeout.ms": "60000"}
    one = broker(tmp_path / "one", 1, url, objects, **{"broker.rack": "a"}, **lease).start()
    two = broker(tmp_path / "two", 2, url, objects, **{"broker.rack": "b"}, **lease).start()
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
        assert [b["state"] for b in brokers] == ["live", "live"]
        controllers = [b["node_id"] for b in brokers if b["controller"]]
        assert controllers == [document["controller"]] and document["controller"] in (1, 2)
        assert document["cluster_id"]
        table = contextplane("cluster", "describe", "--bootstrap-server", one.bootstrap)
        assert table.status == 0, table.err
        rows = [line.split() for line in table.out.split("\n\n")[1].splitlines()]
        assert rows[0] == ["NODE", "ENDPOINT", "RACK", "CONTROLLER", "STATE"]
        assert [r[:3] for r in rows[1:]] == [
            ["1", f"127.0.0.1:{one.port}", "a"],
            ["2", f"127.0.0.1:{two.port}", "b"],
        ]
        assert sorted(r[3:] for r in rows[1:]) == [["live"], ["yes", "live"]]
        again = contextplane("cluster", "describe", "--output", "json", "--bootstrap-server",
                             one.bootstrap).json()  # fmt: skip
        assert again["controller"] == document["controller"]
        for node, bootstrap in ((1, one.bootstrap), (2, two.bootstrap)):
            with RawClient(bootstrap) as raw:
                answer = raw.request(METADATA, 12, topics=[], allow_auto_topic_creation=False)
            assert answer.controller_id == node

        creator = AdminClient({"bootstrap.servers": one.bootstrap})
        creator.create_topics([NewTopic("described", 2)])["described"].result(30)
        controller = {1: one, 2: two}[document["controller"]]
        survivor = two if controller is one else one
        controller.kill9()
        admin = AdminClient({"bootstrap.servers": survivor.bootstrap})
        described = admin.describe_topics(TopicCollection(["described"]), request_timeout=10)
        assert len(described["described"].result(15).partitions) == 2
    finally:
        two.stop()
        one.stop()
