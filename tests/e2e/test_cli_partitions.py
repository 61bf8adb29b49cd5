"""`contextplane partitions move|moves` against two brokers on one PostgreSQL and one
object store (RFC 0004 §6), run as a user runs them, bootstrapped on the broker that is
not the controller: a partition holding data moves and `--wait` returns once the cluster
names its new leader, reporting how long that took (printed: the move-time figure of
RFC 0004 slice 5); no move is left listed; a broker that is not live, a malformed
partition and an unknown one fail in one line."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.test_cluster_moves import partitions
from tests.support.cli import contextplane, one_error_line
from tests.support.moving_producer import two_brokers
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until

TOPIC = "cli-moves"
RECORDS = 20_000


def test_move_waits_for_the_new_leader_and_names_failures(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    with two_brokers(tmp_path, url) as (one, two):
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(30)
        wait_until(
            lambda: all(row[1] == row[3] for row in partitions(url, TOPIC).values()),
            10,
            "each broker claims its share",
        )
        moved, (_, source, _, _) = sorted(partitions(url, TOPIC).items())[0]
        producer = Producer({"bootstrap.servers": one.bootstrap, "linger.ms": 5})
        for n in range(RECORDS):
            producer.produce(TOPIC, value=b"%05d" % n + b"x" * 500, partition=moved)
            producer.poll(0)
        assert producer.flush(60) == 0

        def move(to: int) -> dict[str, object]:
            run = contextplane(
                "partitions",
                "move",
                f"{TOPIC}-{moved}",
                "--to",
                str(to),
                "--wait",
                "--bootstrap-server",
                two.bootstrap,
                "--output",
                "json",
            )
            return dict(run.json())

        took = []
        for to in (3 - source, source, 3 - source, source):
            done = move(to)
            assert {k: done[k] for k in ("topic", "partition", "to", "status")} == {
                "topic": TOPIC,
                "partition": moved,
                "to": to,
                "status": "moved",
            }
            assert partitions(url, TOPIC)[moved][1] == to
            took.append(done["elapsed_ms"])
        print(f"move time (request to new leader named), ms: {took}")
        listed = contextplane(
            "partitions", "moves", "--bootstrap-server", two.bootstrap, "--output", "json"
        )
        assert listed.json() == {"moves": []}
        table = contextplane("partitions", "moves", "--bootstrap-server", two.bootstrap)
        assert table.out == "no moves in progress\n"

        dead = contextplane(
            "partitions",
            "move",
            f"{TOPIC}-{moved}",
            "--to",
            "7",
            "--bootstrap-server",
            two.bootstrap,
        )
        assert one_error_line(dead) == (
            f"contextplane partitions move: move {TOPIC}-{moved} to broker 7:"
            # kafka-python's name for INVALID_REPLICA_ASSIGNMENT (39)
            " INVALID_REPLICATION_ASSIGNMENT (The manual partition assignment includes broker"
            " 7, but no such broker is registered.)"
        )
        unknown = contextplane(
            "partitions", "move", f"{TOPIC}-9", "--to", "1", "--bootstrap-server", two.bootstrap
        )
        assert one_error_line(unknown) == (
            f"contextplane partitions move: move {TOPIC}-9 to broker 1: UNKNOWN_TOPIC_OR_PARTITION"
            f" (Unable to find partition {TOPIC}:9.)"
        )
        malformed = contextplane(
            "partitions", "move", "nodash", "--to", "1", "--bootstrap-server", two.bootstrap
        )
        assert one_error_line(malformed, 2) == (
            "contextplane partitions move: expected TOPIC-PARTITION (e.g. orders-3), got 'nodash'"
        )
