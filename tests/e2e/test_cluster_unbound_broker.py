"""A broker between its registration and its listeners' binding (RFC 0004 §1): it
registered with the port it was given, 0 for `listener.port=0`, and may already lead
partitions; until it publishes the bound ports, another broker's Metadata and
DescribeCluster leave it out (a client would dial port 0), its partitions answer
LEADER_NOT_AVAILABLE with no leader, as a leader absent from the brokers list does.

Broker 1 runs in this process; node 2 is played through the metadata store with the
statements a starting broker runs (register, claim what is targeted at it, publish), so
the window between register and publish stays open for as long as the test needs."""

from __future__ import annotations

from pathlib import Path

import psycopg

from contextplane.metadata.records import BrokerEndpoint
from contextplane.protocol.error_codes import ErrorCode
from tests.support.inprocess import InProcessBroker
from tests.support.metadata import open_engine
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

METADATA, CREATE_TOPICS, DESCRIBE_CLUSTER = 3, 19, 60
TOPIC = "spread"
PARTITIONS = 6
UNBOUND = (BrokerEndpoint("PLAINTEXT", "127.0.0.1", 0, "PLAINTEXT"),)
BOUND_PORT = 41_999  # published, never dialled by the test


def answered(bootstrap: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]], dict]:
    """(Metadata's brokers, DescribeCluster's brokers, {partition: (error, leader)})."""
    with RawClient(bootstrap) as raw:
        metadata = raw.request(METADATA, 12, topics=[{"name": TOPIC}],
                               allow_auto_topic_creation=False)  # fmt: skip
        cluster = raw.request(DESCRIBE_CLUSTER, 1, include_cluster_authorized_operations=False)
    partitions = {
        p.partition_index: (p.error_code, p.leader_id)
        for t in metadata.topics
        for p in t.partitions
    }
    return (
        sorted((b.node_id, b.port) for b in metadata.brokers),
        sorted((b.broker_id, b.port) for b in cluster.brokers),
        partitions,
    )


def test_a_broker_is_offered_to_clients_only_once_its_listeners_are_bound(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    one = InProcessBroker(
        tmp_path / "one",
        settings={
            "node.id": "1",
            "metadata.url": url,
            "broker.heartbeat.interval.ms": "100",
            "broker.session.timeout.ms": "60000",
        },
        object_store=(tmp_path / "objects").as_uri(),
    ).start()
    engine = open_engine(url)
    try:
        port = one.port
        # Node 2 registers, its port not yet bound: live (topics are placed on it) ...
        assert engine.register_broker(2, 1_000, None, UNBOUND, 60_000).registered
        wait_until(
            lambda: sorted(one.broker.registry.live_ids) == [1, 2],  # type: ignore[union-attr]
            30,
            "broker 1 reads node 2's registration",
        )
        with RawClient(one.bootstrap) as raw:
            created = raw.request(
                CREATE_TOPICS,
                4,
                topics=[{"name": TOPIC, "num_partitions": PARTITIONS, "replication_factor": 1,
                         "assignments": [], "configs": []}],
                timeout_ms=30_000,
                validate_only=False,
            )  # fmt: skip
        assert [t.error_code for t in created.topics] == [0]
        with psycopg.connect(url) as db:
            targeted = db.execute(
                "SELECT stream_id, leader_epoch, partition FROM partitions"
                " WHERE topic=%s AND target_node=2",
                (TOPIC,),
            ).fetchall()
        assert targeted, "the placement put some partition on node 2"
        theirs = {int(r[2]) for r in targeted}
        # ... and claims them, as a start does before its listeners bind.
        outcome = engine.claim_leadership({int(r[0]): int(r[1]) for r in targeted}, 2)
        assert sorted(outcome.claimed) == sorted(int(r[0]) for r in targeted)

        mine = {index: (ErrorCode.none, 1) for index in range(PARTITIONS) if index not in theirs}
        leaderless = {index: (ErrorCode.leader_not_available, -1) for index in theirs}
        wait_until(
            lambda: answered(one.bootstrap) == ([(1, port)], [(1, port)], mine | leaderless),
            30,
            "node 2 left out, its partitions without a leader",
        )

        # Bound: node 2 publishes its ports, and is offered with its partitions.
        assert engine.set_broker_endpoints(
            2, 1_000, (BrokerEndpoint("PLAINTEXT", "127.0.0.1", BOUND_PORT, "PLAINTEXT"),)
        )
        led = {index: (ErrorCode.none, 2) for index in theirs}
        both = [(1, port), (2, BOUND_PORT)]
        wait_until(
            lambda: answered(one.bootstrap) == (both, both, mine | led),
            30,
            "node 2 listed with its bound port, leading its partitions",
        )
    finally:
        engine.close()
        one.stop()
