"""Two brokers on one PostgreSQL and one object store (RFC 0004 slice 0): each lists both
(with their racks) in Metadata and DescribeCluster, asked directly and through
confluent-kafka; the first leads the topic it created alone, the second's topic is
spread over both (RFC 0004 slice 1); each names the other as the leader of the other's
partitions, which a producer that knows only one of them follows; a second broker
with a live node.id exits before it listens; a killed broker restarted on its data
directory is registered again at once, a killed one is unlisted once its lease lapses
(and marked expired by the controller), a stopped one at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from contextplane.cluster.assignment_plan import Candidate, place
from tests.support.broker import BrokerProcess
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

METADATA, CREATE_TOPICS, DESCRIBE_CLUSTER = 3, 19, 60
SESSION_MS = 2_000


def broker(data_dir: Path, node_id: int, url: str, objects: str) -> BrokerProcess:
    return BrokerProcess(
        data_dir,
        metadata_url=url,
        object_store=objects,
        settings={
            "node.id": str(node_id),
            "broker.rack": f"rack-{node_id}",
            "broker.heartbeat.interval.ms": "200",
            "broker.session.timeout.ms": str(SESSION_MS),
        },
    )


def listed(bootstrap: str) -> dict[str, Any]:
    """What the broker at `bootstrap` itself answers: Metadata's and DescribeCluster's
    brokers as (node, port, rack), and the leader of each partition of the topics named."""
    with RawClient(bootstrap) as raw:
        metadata = raw.request(METADATA, 12, topics=None, allow_auto_topic_creation=False)
        cluster = raw.request(DESCRIBE_CLUSTER, 1, include_cluster_authorized_operations=False)
    return {
        "metadata": sorted((b.node_id, b.port, b.rack) for b in metadata.brokers),
        "describe_cluster": sorted((b.broker_id, b.port, b.rack) for b in cluster.brokers),
        "leaders": {
            (t.name, p.partition_index): p.leader_id for t in metadata.topics for p in t.partitions
        },
    }


def wait_listed(bootstrap: str, expected: list[tuple[int, int, str]], timeout_s: float) -> None:
    wait_until(
        lambda: listed(bootstrap)["describe_cluster"] == expected,
        timeout_s,
        f"{bootstrap} lists {expected}",
    )


def stored_leaders(url: str) -> dict[tuple[str, int], tuple[int, int]]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT topic, partition, leader_node, leader_epoch FROM partitions")
        return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def targets(url: str, topic: str, brokers: list[Candidate]) -> list[int]:
    """Each partition's stored target, checked against the placement function."""
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT stream_id, target_node FROM partitions WHERE topic=%s ORDER BY partition",
            (topic,),
        ).fetchall()
    planned = place([r[0] for r in rows], brokers)
    assert [r[1] for r in rows] == [planned[r[0]] for r in rows]
    return [r[1] for r in rows]


def create(bootstrap: str, topic: str) -> None:
    """Create `topic` on the broker at `bootstrap` itself (an admin client sends it to
    whichever broker Metadata named controller)."""
    with RawClient(bootstrap) as raw:
        response = raw.request(
            CREATE_TOPICS,
            4,
            topics=[{"name": topic, "num_partitions": 2, "replication_factor": 1,
                     "assignments": [], "configs": []}],
            timeout_ms=30_000,
            validate_only=False,
        )  # fmt: skip
    assert [t.error_code for t in response.topics] == [0]


def test_two_brokers_on_one_database_list_each_other_and_lead_what_they_create(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    one = broker(tmp_path / "one", 1, url, objects).start()
    two: BrokerProcess | None = None
    try:
        create(one.bootstrap, "from-one")
        two = broker(tmp_path / "two", 2, url, objects).start()
        create(two.bootstrap, "from-two")
        both = [(1, one.port, "rack-1"), (2, two.port, "rack-2")]
        for running in (one, two):
            wait_listed(running.bootstrap, both, 10)
            assert listed(running.bootstrap)["metadata"] == both

        # The first broker's topic, created alone, is all its own; the second never
        # claimed it. The second's topic is placed over both (RFC 0004 slice 1), each
        # partition led by its target once that broker's reconciler claimed it.
        planned = dict(
            zip(
                [("from-two", 0), ("from-two", 1)],
                targets(url, "from-two", [Candidate(1, "rack-1"), Candidate(2, "rack-2")]),
                strict=True,
            )
        )
        wait_until(
            lambda: {k: stored_leaders(url)[k][0] for k in planned} == planned,
            10,
            "each broker claims its share of from-two",
        )
        stored = stored_leaders(url)
        assert stored[("from-one", 0)][0] == stored[("from-one", 1)][0] == 1
        assert stored[("from-one", 0)][1] == 1  # claimed once, by its creator
        # The second broker read the first's topic at its start and names its leader.
        # Each partition's leader reaches the broker's cache on its own refresh, so wait
        # for all of them, not one.
        wait_until(
            lambda: {k: listed(two.bootstrap)["leaders"][k] for k in planned} == planned,
            10,
            "the second broker names the leaders",
        )
        leaders = listed(two.bootstrap)["leaders"]
        assert leaders[("from-one", 0)] == leaders[("from-one", 1)] == 1
        assert {k: leaders[k] for k in planned} == planned

        # A real client: confluent-kafka's view of the cluster, and a producer that
        # knows only the second broker writes to the first's partitions.
        admin = AdminClient({"bootstrap.servers": two.bootstrap})
        cluster = admin.describe_cluster().result(30)
        assert sorted((n.id, n.port, n.rack) for n in cluster.nodes) == both
        topics = admin.list_topics(timeout=30)
        assert sorted(topics.brokers) == [1, 2]
        producer = Producer({"bootstrap.servers": two.bootstrap, "acks": "all"})
        for i in range(20):
            producer.produce("from-one", value=f"v{i}".encode(), partition=i % 2)
        assert producer.flush(30) == 0, one.log_tail() + two.log_tail()
        assert stored_leaders(url)[("from-one", 0)] == stored[("from-one", 0)]

        # A second broker with a live node.id stops before it listens.
        duplicate = broker(tmp_path / "another", 1, url, objects)
        with pytest.raises(RuntimeError, match="exited early"):
            duplicate.start()
        assert duplicate.process is not None and duplicate.process.returncode == 1
        assert "node.id 1 is registered by a live broker at 127.0.0.1:" in duplicate.log_tail()
        assert "ready on" not in duplicate.log_tail()

        # A killed broker restarted on its data directory takes its row back at once,
        # its lease still live; a killed broker is unlisted once its lease lapses.
        two.kill9()
        two.start()
        wait_listed(one.bootstrap, both, 10)
        two.kill9()
        wait_listed(one.bootstrap, both[:1], SESSION_MS / 1000 + 10)
        assert listed(one.bootstrap)["metadata"] == both[:1]

        # The controller (broker 1) then marks the lapsed broker expired (failover).
        def state_of_two() -> str:
            with psycopg.connect(url) as db:
                row = db.execute("SELECT state FROM brokers WHERE node_id=2").fetchone()
            return str(row[0])

        wait_until(lambda: state_of_two() == "expired", 10, "broker 2 marked expired")
    finally:
        if two is not None:
            two.stop()
        one.stop()
    with psycopg.connect(url) as db:
        states = dict(db.execute("SELECT node_id, state FROM brokers").fetchall())
    assert states == {1: "stopped", 2: "expired"}
