"""`contextplane cluster rebalance | drain | undrain` against two brokers on one
PostgreSQL and one object store (RFC 0004 §6), run as a user runs them: traffic on
broker 1's partitions shows in its heartbeat's load; `rebalance --dry-run` plans moves
toward the idle broker (the load's, then idle partitions by count) and moves nothing,
`rebalance` moves them under idempotent producers with nothing lost; `drain 1 --wait`
leaves broker 1 leading nothing Metadata names and new topics are not placed there;
`undrain 1` makes it eligible again."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.test_cluster_moves import partitions, read_all
from tests.support.cli import contextplane, one_error_line
from tests.support.moving_producer import MovingProducer, two_brokers
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until

TOPIC = "balanced"
PARTITIONS = 4


def _row(url: str, node: int) -> tuple[str, dict[str, object]]:
    with psycopg.connect(url) as db:
        state, load = db.execute(
            "SELECT state, load FROM brokers WHERE node_id=%s", (node,)
        ).fetchone()
    return str(state), json.loads(load)


def _leaders(admin: AdminClient) -> dict[tuple[str, int], int]:
    metadata = admin.list_topics(timeout=30)
    return {
        (name, p.id): p.leader
        for name, topic in metadata.topics.items()
        for p in topic.partitions.values()
    }


def test_rebalance_and_drain_by_measured_load(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    with two_brokers(tmp_path, url) as (one, two):
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
        wait_until(
            lambda: all(row[1] == row[3] for row in partitions(url, TOPIC).values()),
            10,
            "each broker claims its share",
        )
        for p, row in partitions(url, TOPIC).items():  # everything on broker 1
            if row[1] != 1:
                contextplane(
                    "partitions", "move", f"{TOPIC}-{p}", "--to", "1", "--wait",
                    "--bootstrap-server", one.bootstrap,
                )  # fmt: skip
        producers = [MovingProducer(one.bootstrap, TOPIC, p).start() for p in range(PARTITIONS)]
        try:

            def measured() -> bool:
                _, load = _row(url, 1)
                listed = {(t, p) for t, p, *_ in load.get("partitions", [])}  # type: ignore[misc]
                # The audit records of the moves (some forwarded from broker 2) count too.
                return {(t, p) for t, p in listed if t == TOPIC} == {
                    (TOPIC, p) for p in range(PARTITIONS)
                }

            wait_until(measured, 30, "broker 1's heartbeat publishes its partitions' load")
            assert _row(url, 1)[1]["in"] > 0  # type: ignore[operator]

            def rebalance(*extra: str) -> dict[str, object]:
                run = contextplane(
                    "cluster", "rebalance", *extra, "--bootstrap-server", two.bootstrap,
                    "--output", "json",
                )  # fmt: skip
                return dict(run.json())

            planned = rebalance("--dry-run")
            assert planned["status"] == "planned"
            moves = planned["moves"]
            assert isinstance(moves, list)
            # The load first; then partitions without load (coordinator shards) by count.
            # Half of them when the producers' rates are even; a producer starved on a
            # loaded machine (a partition at ~10 B/s measured) can tip the plan to one more.
            # The audit topics' partitions carry load too (the moves' own audit records),
            # so one of them can be a loaded move; every loaded move leaves broker 1.
            loaded = [m for m in moves if m["load"] > 0]
            assert moves[: len(loaded)] == loaded, moves
            assert all(m["from"] == 1 and m["to"] == 2 for m in loaded), moves
            assert 0 < len([m for m in loaded if m["topic"] == TOPIC]) < PARTITIONS, moves
            assert {row[1] for row in partitions(url, TOPIC).values()} == {1}  # nothing moved
            limited = rebalance("--dry-run", "--max-moves", "1")
            assert len(limited["moves"]) == 1  # type: ignore[arg-type]

            started = rebalance("--max-moves", str(PARTITIONS // 2))  # the load's moves
            assert started["status"] == "started"
            started_moves = started["moves"]
            assert isinstance(started_moves, list) and len(started_moves) == PARTITIONS // 2
            # The largest load moves first: at least one of the producers' partitions.
            moved = {m["partition"] for m in started_moves if m["topic"] == TOPIC}
            assert moved, started_moves
            wait_until(
                lambda: {p for p, row in partitions(url, TOPIC).items() if row[1] == 2} == moved,
                30,
                "broker 2 leads the moved partitions",
            )
            # Broker 2 measures the traffic that moved to it.
            wait_until(lambda: _row(url, 2)[1]["in"] > 0, 30, "broker 2's load")  # type: ignore[operator]

            drained = contextplane(
                "cluster", "drain", "1", "--wait", "--bootstrap-server", two.bootstrap,
                "--output", "json",
            ).json()  # fmt: skip
            assert drained["status"] == "done" and drained["node"] == 1
            print(f"drain of {len(drained['moves'])} partitions: {drained['elapsed_ms']} ms")
            assert {m["to"] for m in drained["moves"]} == {2}
            assert _row(url, 1)[0] == "draining"
            assert 1 not in _leaders(admin).values()
            # Draining the other one too would leave nowhere to move to: refused, and
            # broker 2 stays live (before, it was left draining all the same).
            refused = contextplane("cluster", "drain", "2", "--bootstrap-server", two.bootstrap)
            assert refused.status == 1 and "broker 2 left as it was" in refused.err, refused.err
            assert _row(url, 2)[0] == "live"
        finally:
            for producer in producers:
                producer.stop()
        for p, producer in enumerate(producers):
            assert producer.errors == []
            acked = sorted(producer.acked)
            assert acked == list(range(len(acked)))  # nothing lost, offsets contiguous
            read = read_all(two.bootstrap, TOPIC, p, len(acked))
            assert [value for _, value in read] == [f"m{n}".encode() for n in range(len(acked))]

        # Nothing is placed on a draining broker; undrained, it is eligible again.
        admin.create_topics([NewTopic("after-drain", 16, 1)])["after-drain"].result(30)
        assert {row[3] for row in partitions(url, "after-drain").values()} == {2}
        undrained = contextplane(
            "cluster", "undrain", "1", "--bootstrap-server", two.bootstrap, "--output", "json"
        ).json()
        assert undrained == {"node": 1, "state": "live"}
        assert _row(url, 1)[0] == "live"
        wait_until(
            lambda: [b.state for b in one.broker.registry.brokers] == ["live", "live"],  # type: ignore[union-attr]
            10,
            "broker 1 sees itself live again",
        )
        admin.create_topics([NewTopic("after-undrain", 16, 1)])["after-undrain"].result(30)
        assert {row[3] for row in partitions(url, "after-undrain").values()} == {1, 2}

        unknown = contextplane("cluster", "drain", "7", "--bootstrap-server", two.bootstrap)
        assert one_error_line(unknown) == (
            "contextplane cluster drain: set broker 7 draining: BROKER_NOT_AVAILABLE"
            " (Broker 7 is not live)"
        )
