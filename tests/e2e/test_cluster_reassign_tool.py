"""`kafka-reassign-partitions.sh` (Apache Kafka 4.4's tool) against two brokers on one
PostgreSQL and one object store (RFC 0004 §6, slice 5): `--generate` proposes a plan
from what the brokers describe; `--execute` moves a partition holding data under an
idempotent acks=all producer, `--verify` sees it complete, and nothing is lost, the
offsets stay contiguous, the ranges retained before the move are the same objects after
it and the new leader read no object (nothing copied); a raw AlterPartitionReassignments
sent to the non-controller is forwarded to the controller and moves another partition;
with the source's reconciler held, a move back is listed (`--list`: replicas target then
source, adding the target, removing the source) and `--cancel` undoes it, the source
keeping the partition. The same tool against Apache Kafka on one broker is the twin
below."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.protocol.error_codes import ErrorCode
from tests.e2e.test_cluster_moves import partitions, ranges, read_all
from tests.support.kafka_tools import reassign_partitions as reassign
from tests.support.moving_producer import MovingProducer, two_brokers
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

TOPIC = "moving"


def plan(path: Path, moves: dict[int, int]) -> str:
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "partitions": [
                    {"topic": TOPIC, "partition": p, "replicas": [node]}
                    for p, node in moves.items()
                ],
            }
        )
    )
    return str(path)


def test_the_tool_moves_a_partition_under_a_producer_and_cancels_a_held_move(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    with two_brokers(tmp_path, url) as (one, two):
        assert one.broker is not None and two.broker is not None
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic(TOPIC, 4, 1)])[TOPIC].result(30)
        wait_until(
            lambda: all(row[1] == row[3] for row in partitions(url, TOPIC).values()),
            10,
            "each broker claims its share",
        )
        stored = partitions(url, TOPIC)

        # --generate: the current assignment is each partition's leader.
        topics = tmp_path / "topics.json"
        topics.write_text(json.dumps({"version": 1, "topics": [{"topic": TOPIC}]}))
        generated = reassign(
            two.bootstrap,
            "--generate",
            "--topics-to-move-json-file",
            str(topics),
            "--broker-list",
            "1,2",
        )
        current = json.loads(
            generated.split("Current partition replica assignment")[1].split(
                "Proposed partition reassignment configuration"
            )[0]
        )
        assert {p["partition"]: p["replicas"] for p in current["partitions"]} == {
            p: [row[1]] for p, row in stored.items()
        }

        # A partition broker 1 leads moves to broker 2 under an idempotent producer.
        moved = next(p for p, row in sorted(stored.items()) if row[1] == 1)
        stream_id, _, epoch_before, _ = stored[moved]
        producer = MovingProducer(one.bootstrap, TOPIC, moved).start()
        acked, errors = producer.acked, producer.errors
        wait_until(lambda: len(acked) >= 200, 30, "the producer is going")
        wait_until(lambda: len(ranges(url, stream_id)) >= 2, 30, "some data is in objects")
        retained = ranges(url, stream_id)
        gets_before = two.broker.storage.objects.gets  # type: ignore[union-attr]
        there = plan(tmp_path / "there.json", {moved: 2})
        executed = reassign(two.bootstrap, "--execute", "--reassignment-json-file", there)
        assert "Successfully started partition reassignment for moving-" in executed
        wait_until(
            lambda: (
                f"Reassignment of partition {TOPIC}-{moved} is completed."
                in reassign(two.bootstrap, "--verify", "--reassignment-json-file", there)
            ),
            60,
            "--verify sees the move complete",
        )
        assert partitions(url, TOPIC)[moved][1:3] == (2, epoch_before + 1)
        gets_during = two.broker.storage.objects.gets - gets_before  # type: ignore[union-attr]
        count_at_move = len(acked)
        wait_until(lambda: len(acked) >= count_at_move + 200, 30, "the producer follows it")
        producer.stop()
        assert errors == []
        assert sorted(acked) == list(range(len(acked)))
        read = read_all(two.bootstrap, TOPIC, moved, len(acked))
        assert [value for _, value in read] == [f"m{n}".encode() for n in range(len(acked))]
        assert ranges(url, stream_id)[: len(retained)] == retained
        assert gets_during == 0
        assert "No partition reassignments found." in reassign(one.bootstrap, "--list")

        # A non-controller forwards the write to the controller (broker 1): a partition
        # broker 1 leads moves to broker 2, asked of broker 2 by a raw client.
        other = next(p for p, row in sorted(stored.items()) if row[1] == 1 and p != moved)
        with RawClient(two.bootstrap) as client:
            forwarded = client.request(
                45,
                0,
                timeout=30_000,
                topics=[
                    {"name": TOPIC, "partitions": [{"partition_index": other, "replicas": [2]}]}
                ],
            )
        assert forwarded.error_code == ErrorCode.none
        assert [(p.partition_index, p.error_code) for p in forwarded.responses[0].partitions] == [
            (other, ErrorCode.none)
        ]
        wait_until(
            lambda: partitions(url, TOPIC)[other][1:4:2] == (2, 2),
            30,
            "the forwarded move completes",
        )
        assert partitions(url, TOPIC)[moved][3] == 2

        # A partition named twice, a cancel then a move: the later entry wins (as Kafka
        # applies them in order); before, the cancel undid the move and both said NONE.
        twice = next(
            p for p, row in sorted(partitions(url, TOPIC).items())
            if p not in (moved, other)
        )  # fmt: skip
        source = partitions(url, TOPIC)[twice][1]
        target = 3 - source  # the other broker
        with RawClient(one.bootstrap) as client:
            both = client.request(
                45,
                0,
                timeout=30_000,
                topics=[
                    {
                        "name": TOPIC,
                        "partitions": [
                            {"partition_index": twice, "replicas": None},
                            {"partition_index": twice, "replicas": [target]},
                        ],
                    }
                ],
            )
        assert [p.error_code for p in both.responses[0].partitions] == [ErrorCode.none] * 2
        wait_until(
            lambda: partitions(url, TOPIC)[twice][1:4:2] == (target, target),
            30,
            "the later entry's move completes",
        )

        # Held by its source (broker 2's reconciler stopped), a move back is listed and
        # cancelled: broker 2 keeps the partition.
        reconciler = two.broker.reconciler
        assert reconciler is not None
        two.call(reconciler.stop())
        back = plan(tmp_path / "back.json", {moved: 1})
        reassign(two.bootstrap, "--execute", "--reassignment-json-file", back)
        listed = reassign(one.bootstrap, "--list")
        assert f"{TOPIC}-{moved}: replicas: 1,2. adding: 1. removing: 2." in listed, listed
        cancelled = reassign(two.bootstrap, "--cancel", "--reassignment-json-file", back)
        assert f"Successfully cancelled partition reassignment for: {TOPIC}-{moved}" in cancelled, (
            cancelled
        )

        async def resume() -> None:
            reconciler.start()

        two.call(resume())
        assert "No partition reassignments found." in reassign(one.bootstrap, "--list")
        row = partitions(url, TOPIC)[moved]
        assert (row[1], row[3]) == (2, 2)
        with psycopg.connect(url) as db:
            assert db.execute("SELECT COUNT(*) FROM reassignments").fetchone() == (0,)
