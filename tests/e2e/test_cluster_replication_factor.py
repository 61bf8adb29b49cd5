"""A replication factor above 1 on a cluster whose WAL is the object store (RFC 0004,
"Replication factor as built"): two broker processes on one PostgreSQL, both with
`wal.url` on a file:// store. CreateTopics with replication factor 2 is accepted, as
Kafka accepts it with two brokers registered (tools and librdkafka's tests ask for 3 on a
three-broker cluster), and the topic keeps one replica, its leader: confluent-kafka's
admin sees one replica per partition, and an acks=all producer writes to it. Replication
factor 3 is refused with Kafka's own words for two registered brokers."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.test_cluster_failover import broker, listed_brokers, stored
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until


def test_replication_factor_up_to_the_registered_brokers_is_accepted_with_one_replica(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    objects = (tmp_path / "objects").as_uri()
    wal = {"wal.url": (tmp_path / "wal").as_uri()}
    one = broker(tmp_path / "one", 1, url, objects, **wal).start()
    two = broker(tmp_path / "two", 2, url, objects, **wal).start()
    try:
        wait_until(lambda: listed_brokers(one.bootstrap) == [1, 2], 15, "broker 1 lists both")
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic("rf2", 4, 2)])["rf2"].result(30)
        wait_until(
            lambda: all(r["leader"] == r["target"] != -1 for r in stored(url, "rf2").values()),
            15,
            "each broker claims its share",
        )
        expected = {p: ([r["leader"]], [r["leader"]]) for p, r in stored(url, "rf2").items()}

        def replicas_listed() -> dict[int, tuple[list[int], list[int]]]:
            described = admin.list_topics("rf2", timeout=10).topics["rf2"].partitions
            return {p: (m.replicas, m.isrs) for p, m in described.items()}

        # Broker 1 lists broker 2's claims once its notification of them is read (a few
        # ms after the store holds them): waited for, then one replica each, its leader.
        wait_until(lambda: replicas_listed() == expected, 15, "one replica, its leader, each")
        producer = Producer({"bootstrap.servers": two.bootstrap, "acks": "all"})
        delivered: list[int] = []
        for partition in range(4):
            producer.produce(
                "rf2",
                b"v",
                partition=partition,
                on_delivery=lambda e, m: delivered.append(m.offset()),
            )
        assert producer.flush(30) == 0 and sorted(delivered) == [0, 0, 0, 0]

        refused = admin.create_topics([NewTopic("rf3", 1, 3)])["rf3"]
        try:
            refused.result(30)
            raise AssertionError("replication factor 3 accepted with two brokers")
        except KafkaException as exc:
            error = exc.args[0]
        assert error.name() == "INVALID_REPLICATION_FACTOR"
        assert error.str() == (
            "Unable to replicate the partition 3 time(s): The target replication factor of 3"
            " cannot be reached because only 2 broker(s) are registered."
        )
    finally:
        one.stop()
        two.stop()
