"""KIP-951 across brokers on one PostgreSQL: a broker that does not lead a partition
answers Produce (v10+) and Fetch (v16+) with NOT_LEADER_OR_FOLLOWER naming the current
leader, its epoch and its endpoint, and real clients sent to the wrong broker follow it.

The partition is moved by hand as a handover leaves it (RFC 0004 §6): its leader
stops, the row is released (`leader_node = -1`) and targeted at a third broker, which
claims it at the next epoch. Broker 2 read the topic before the move and its heartbeat,
which would read the move, is slower than the test, so it still names broker 1 in
Metadata: a client that asks broker 2 is sent to broker 1 first, deterministically, and
broker 1 (restarted, so it read the move) names broker 3 — as happens in a cluster
between a move and the next heartbeat of the broker a client asked.

The raw requests check the fields. The clients check that a producer and a consumer sent
to the wrong broker first get their records through; they would also get there without
the fields, by refreshing Metadata until a broker that knows the move answers it, so
librdkafka's own log is checked too: it took the leader from the Produce response.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition

from contextplane.protocol.error_codes import ErrorCode
from harness import java_client
from tests.e2e.test_cluster_registry import broker, create, listed, stored_leaders, wait_listed
from tests.support.broker import BrokerProcess
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient, record_batch
from tests.support.wait import wait_until

PRODUCE, FETCH, METADATA = 0, 1, 3
TOPIC = "moved"
BEFORE = 10  # records written through broker 1 before the move

# librdkafka producers tried until one asks broker 2 for the moved partition's leader.
ATTEMPTS = 10

# Broker 2's heartbeat interval: longer than the test, so its view stays stale.
STALE_MS = 120_000


def produce(bootstrap: str, version: int, topic_id: uuid.UUID) -> Any:
    with RawClient(bootstrap) as raw:
        return raw.request(
            PRODUCE,
            version,
            transactional_id=None,
            acks=-1,
            timeout=5000,
            topic_data=[
                {
                    "name": TOPIC,
                    "topic_id": topic_id,  # v13 names the topic by id
                    "partition_data": [{"index": 0, "records": record_batch([b"raw"])}],
                }
            ],
        )


def fetch(bootstrap: str, version: int, topic_id: uuid.UUID, leader_epoch: int = -1) -> Any:
    partition = {
        "partition": 0,
        "current_leader_epoch": leader_epoch,
        "fetch_offset": 0,
        "last_fetched_epoch": -1,
        "log_start_offset": -1,
        "partition_max_bytes": 1 << 20,
    }
    with RawClient(bootstrap) as raw:
        return raw.request(
            FETCH,
            version,
            replica_id=-1,
            replica_state={"replica_id": -1, "replica_epoch": -1},
            max_wait=0,
            min_bytes=0,
            max_bytes=1 << 20,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=[{"topic": TOPIC, "topic_id": topic_id, "partitions": [partition]}],
            forgotten_topics_data=[],
            rack_id="",
        )


def named(response: Any, partition: Any) -> tuple[int, tuple[int, int], list[Any]]:
    """(error, (leader id, epoch) named, node endpoints as (id, port, rack))."""
    leader = partition.current_leader
    return (
        partition.error_code,
        (leader.leader_id, leader.leader_epoch),
        [(e.node_id, e.port, e.rack) for e in response.node_endpoints],
    )


def topic_id_of(bootstrap: str) -> uuid.UUID:
    with RawClient(bootstrap) as raw:
        metadata = raw.request(METADATA, 12, topics=None, allow_auto_topic_creation=False)
    return next(t.topic_id for t in metadata.topics if t.name == TOPIC)


def move_to_three(url: str, one: BrokerProcess, three: BrokerProcess) -> None:
    """Broker 1's partitions of TOPIC go to broker 3 at the next epoch: 1 stops (its tail
    uploaded), the rows are released and targeted at 3, 3 starts and claims them, 1
    starts again."""
    one.stop()
    with psycopg.connect(url) as db:
        db.execute(
            "UPDATE partitions SET leader_node = -1, target_node = 3 WHERE topic = %s",
            (TOPIC,),
        )  # what a move's handover leaves, with the target a move sets
    three.start()
    one.start()


def test_the_broker_that_does_not_lead_names_the_leader_and_clients_follow(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    one = broker(tmp_path / "one", 1, url, objects).start()
    two = broker(tmp_path / "two", 2, url, objects)
    # Broker 2 reads the registry and the assignment only at start within the test's
    # time: its view stays what it was before the move, as any broker's does until its
    # next heartbeat after a move.
    two.settings["broker.heartbeat.interval.ms"] = str(STALE_MS)
    # Nor does a change notice wake it (broker 3's claim announces the move at once).
    two.settings["metadata.postgresql.listen"] = "false"
    two.settings["broker.session.timeout.ms"] = str(2 * STALE_MS)
    three = broker(tmp_path / "three", 3, url, objects)
    try:
        create(one.bootstrap, TOPIC)
        producer = Producer({"bootstrap.servers": one.bootstrap, "acks": "all"})
        for i in range(BEFORE):
            producer.produce(TOPIC, value=f"before-{i}".encode(), partition=0)
        assert producer.flush(30) == 0
        two.start()  # reads TOPIC led by 1 at epoch 1, and keeps that view
        move_to_three(url, one, three)
        assert stored_leaders(url)[(TOPIC, 0)] == (3, 2)
        everyone = [(1, one.port, "rack-1"), (2, two.port, "rack-2"), (3, three.port, "rack-3")]
        for running in (one, three):
            wait_listed(running.bootstrap, everyone, 10)
        assert listed(two.bootstrap)["leaders"][(TOPIC, 0)] == 1  # stale: before its heartbeat
        assert listed(one.bootstrap)["leaders"][(TOPIC, 0)] == 3
        topic_id = topic_id_of(one.bootstrap)
        leader = (3, 2)
        three_endpoint = [(3, three.port, "rack-3")]

        # Produce: from v10 the error names the leader and the response its endpoint.
        for version in (10, 11, 12, 13):
            response = produce(one.bootstrap, version, topic_id)
            partition = response.responses[0].partition_responses[0]
            assert named(response, partition) == (
                ErrorCode.not_leader_or_follower,
                leader,
                three_endpoint,
            ), version
        response = produce(one.bootstrap, 9, topic_id)
        partition = response.responses[0].partition_responses[0]
        assert partition.error_code == ErrorCode.not_leader_or_follower
        assert not hasattr(partition, "current_leader")

        # Fetch: from v16, as Kafka answers (the tag exists from v12, unused below v16).
        for version in (16, 17, 18):
            response = fetch(one.bootstrap, version, topic_id)
            partition = response.responses[0].partitions[0]
            assert named(response, partition) == (
                ErrorCode.not_leader_or_follower,
                leader,
                three_endpoint,
            ), version
        partition = fetch(one.bootstrap, 15, topic_id).responses[0].partitions[0]
        assert partition.error_code == ErrorCode.not_leader_or_follower
        assert partition.current_leader.leader_id == -1  # not written: the tag's default
        # The leader itself, asked with the old epoch: FENCED_LEADER_EPOCH naming itself.
        response = fetch(three.bootstrap, 16, topic_id, leader_epoch=1)
        partition = response.responses[0].partitions[0]
        assert named(response, partition) == (
            ErrorCode.fenced_leader_epoch,
            leader,
            three_endpoint,
        )

        # confluent-kafka sent to broker 1 by broker 2's Metadata: produce and consume.
        # librdkafka asks the topic's leader of whichever broker it connected to first: only
        # a producer that asked broker 2 (stale) goes to broker 1 first, so a new producer
        # is tried until one did (each one's records are acknowledged all the same).
        sent: list[str] = []
        for attempt in range(ATTEMPTS):
            rejected = refusals(one)
            said = LogLines()
            logger = logging.getLogger(f"librdkafka-kip951-{attempt}")
            logger.addHandler(said)
            logger.setLevel(logging.DEBUG)
            producer = Producer(
                {"bootstrap.servers": two.bootstrap, "acks": "all", "debug": "metadata,topic",
                 "logger": logger}
            )  # fmt: skip
            values = [f"librdkafka-{attempt}-{i}" for i in range(10)]
            for value in values:
                producer.produce(TOPIC, value=value.encode(), partition=0)
            assert producer.flush(30) == 0, one.log_tail() + three.log_tail()
            sent += values
            if refusals(one) > rejected:  # it went to broker 1 first
                break
        else:
            raise AssertionError(f"no producer of {ATTEMPTS} asked broker 2 for the leader")
        # librdkafka's KIP-951 path: the leader taken from the Produce response.
        assert any("[0]: updated with leader 3 and epoch 2" in line for line in said.lines)
        consumer = Consumer(
            {"bootstrap.servers": two.bootstrap, "group.id": "unused", "enable.auto.commit": False}
        )
        try:
            consumer.assign([TopicPartition(TOPIC, 0, 0)])
            values = consume(consumer, BEFORE + len(sent))
        finally:
            consumer.close()
        assert values[:BEFORE] == [f"before-{i}" for i in range(BEFORE)]
        assert values[BEFORE:] == sent

        # The Java client, the same way.
        rejected = refusals(one)
        java = java_client.run(
            ["produce", "--bootstrap", two.bootstrap, "--topic", TOPIC, "--count", "10",
             "--partition", "0", "--value-prefix", "java-", "--acks", "all",
             "--timeout-ms", "60000"],
            timeout=120,
            check=True,
        )  # fmt: skip
        assert java.result is not None and java.result["acked"] == 10
        assert refusals(one) > rejected
        read = java_client.run(
            ["consume", "--bootstrap", two.bootstrap, "--topic", TOPIC,
             "--count", str(BEFORE + len(sent) + 10), "--timeout-ms", "60000"],
            timeout=120,
            check=True,
        )  # fmt: skip
        assert len([r for r in read.records if r[0] == 0]) == BEFORE + len(sent) + 10

        # The leader's broker gone (lease lapsed): the error names no leader, at the epoch
        # the store holds (Kafka's getCurrentLeader: its metadata cache's leaderEpoch).
        three.kill9()
        wait_listed(one.bootstrap, everyone[:2], 15)
        response = produce(one.bootstrap, 13, topic_id)
        partition = response.responses[0].partition_responses[0]
        assert named(response, partition) == (
            ErrorCode.not_leader_or_follower,
            (-1, leader[1]),
            [],
        )
    finally:
        for running in (three, two, one):
            running.stop()


class LogLines(logging.Handler):
    """What a client logged, line by line."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def refusals(one: BrokerProcess) -> int:
    """How many produce requests broker 1 has refused for partition 0 (each is logged)."""
    return one.log_tail(1_000_000).count(f"produce to {TOPIC}-0 from")


def consume(consumer: Consumer, count: int) -> list[str]:
    values: list[str] = []

    def more() -> bool:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value().decode())
        return len(values) >= count

    wait_until(more, 60, f"{count} records consumed")
    return values
