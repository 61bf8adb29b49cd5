"""Controlled shutdown (RFC 0004 §6): three broker processes on one PostgreSQL and one
file:// object store, their leases long (a minute) so that only the handover can put a
stopped broker's partitions under other leaders while the test looks.

Under an idempotent acks=all producer writing to every partition:
- SIGTERM to a broker that is not the controller: by the time its process has exited,
  every partition it led (its `__consumer_offsets` and `__transaction_state` shards
  included) is led by a live broker among the others; restarted, it registers live (a
  shutdown, unlike a drain, is not kept);
- SIGTERM to the controller: the same, the controller retargeting its own partitions
  before it resigns;
- every acknowledged record is then read back exactly once, at the offset it was
  acknowledged at.
Then the last live broker stops as a broker alone does: nothing moved, its partitions
still its own for its next start, which serves every record; and two brokers signalled
at once both stop without waiting for each other.

With `controlled.shutdown.enable=false` a stop hands nothing over, as Kafka's: the
partitions the broker led are still its own once it has exited, and its next start
serves every record acknowledged before the stop.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.test_cluster_failover import (
    Acks,
    broker_state,
    create,
    listed_brokers,
    read_back,
    stored,
)
from tests.support.broker import BrokerProcess
from tests.support.cli import contextplane
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until

TOPIC = "leaving"
PARTITIONS = 6
SESSION_MS = 60_000  # no lease lapses during the test


def _broker(tmp_path: Path, node_id: int, url: str, objects: str, **extra: str) -> BrokerProcess:
    return BrokerProcess(
        tmp_path / f"b{node_id}",
        metadata_url=url,
        object_store=objects,
        settings={
            "node.id": str(node_id),
            "broker.heartbeat.interval.ms": "300",
            "broker.session.timeout.ms": str(SESSION_MS),
            **extra,
        },
    )


def _leaders(url: str) -> dict[tuple[str, int], int]:
    """Every partition's leader as stored, internal topics included."""
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT topic, partition, leader_node FROM partitions").fetchall()
    return {(str(r[0]), int(r[1])): int(r[2]) for r in rows}


def _placed(url: str) -> dict[int, tuple[int, int]]:
    """partition -> (leader, target) of the topic, as stored."""
    return {p: (r["leader"], r["target"]) for p, r in stored(url, TOPIC).items()}


def _live(url: str) -> set[int]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT node_id FROM brokers WHERE state='live'").fetchall()
    return {int(r[0]) for r in rows}


def _controller(url: str) -> int:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT node_id FROM controller WHERE id=1").fetchone()
    return int(row[0]) if row else -1


def _stop_and_check_handover(url: str, leaving: BrokerProcess, node: int) -> None:
    """SIGTERM `leaving`; once its process has exited, everything it led is led by a
    live other broker."""
    led = {key for key, leader in _leaders(url).items() if leader == node}
    assert led, f"node {node} leads nothing to hand over"
    leaving.stop()
    assert broker_state(url, node) == "stopped"
    live = _live(url)
    assert node not in live
    after = _leaders(url)
    assert {key: after[key] for key in led if after[key] not in live} == {}, after


def _produce(acks: Acks, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        acks.send(TOPIC, n % PARTITIONS, f"v{n}".encode())
        n += 1
        stop.wait(0.005)


def _watermarks(bootstrap: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "marks"})
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=30)[1]
            for p in range(PARTITIONS)
        )
    finally:
        consumer.close()


def test_sigterm_hands_over_before_exit(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    brokers = {n: _broker(tmp_path, n, url, objects) for n in (1, 2, 3)}
    try:
        for process in brokers.values():
            process.start()
        wait_until(lambda: _live(url) == {1, 2, 3}, 15, "three brokers live")
        # The creating broker places the partitions over the brokers it lists: all three.
        wait_until(lambda: listed_brokers(brokers[2].bootstrap) == [1, 2, 3], 15, "all listed")
        admin = AdminClient({"bootstrap.servers": brokers[2].bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
        wait_until(
            lambda: all(r["leader"] == r["target"] != -1 for r in stored(url, TOPIC).values()),
            15,
            "each broker claims its share",
        )
        controller = _controller(url)
        assert controller in brokers
        # The first to stop: a broker that is not the controller and leads a partition of
        # the topic (placement may give one broker none of six).
        others = sorted(n for n in brokers if n != controller)
        leading = {r["leader"] for r in stored(url, TOPIC).values()}
        follower = max(others, key=lambda n: (n in leading, n))
        if follower not in leading:
            moved = contextplane(
                "partitions", "move", f"{TOPIC}-0", "--to", str(follower), "--wait",
                "--bootstrap-server", brokers[follower].bootstrap,
            )  # fmt: skip
            assert moved.status == 0, moved.err
        last = next(n for n in others if n != follower)
        # The producer starts at the broker that stays: its bootstrap never goes away.
        acks = Acks(brokers[last].bootstrap)
        stop = threading.Event()
        producing = threading.Thread(target=_produce, args=(acks, stop))
        producing.start()
        try:
            wait_until(lambda: len(acks.acked) >= 100, 30, "records acknowledged")
            _stop_and_check_handover(url, brokers[follower], follower)
            seen = len(acks.acked)
            wait_until(lambda: len(acks.acked) >= seen + 100, 30, "acknowledged after the stop")

            brokers[follower].start()
            assert broker_state(url, follower) == "live"  # a shutdown is not kept
            wait_until(lambda: _live(url) == {1, 2, 3}, 15, "the restarted broker live")

            _stop_and_check_handover(url, brokers[controller], controller)
            wait_until(lambda: _controller(url) not in (-1, controller), 15, "a new controller")
            seen = len(acks.acked)
            wait_until(lambda: len(acks.acked) >= seen + 100, 30, "acknowledged after the stop")
        finally:
            stop.set()
            producing.join()
        acks.flush()
        assert acks.errors == []
        read = read_back(brokers[last].bootstrap, TOPIC, list(range(PARTITIONS)), len(acks.acked))
        assert read == acks.acked  # every acknowledged record, at its offset
        assert _watermarks(brokers[last].bootstrap) == len(acks.acked)  # none twice

        # The last two: the first hands over to the last, which then stops alone.
        _stop_and_check_handover(url, brokers[follower], follower)
        before = _placed(url)
        assert set(before.values()) == {(last, last)}
        brokers[last].stop()
        assert broker_state(url, last) == "stopped"
        assert _placed(url) == before  # nothing moved: its own at its next start
        brokers[last].start()
        read = read_back(brokers[last].bootstrap, TOPIC, list(range(PARTITIONS)), len(acks.acked))
        assert read == acks.acked

        # Two stopped at once (as `cluster up` stops its brokers): neither waits out
        # shutdown.timeout.ms for a broker that is leaving too.
        brokers[follower].start()
        wait_until(lambda: _live(url) == {last, follower}, 15, "both live")
        wait_until(
            lambda: listed_brokers(brokers[last].bootstrap) == sorted((last, follower)),
            15,
            "both listed",
        )
        admin = AdminClient({"bootstrap.servers": brokers[last].bootstrap})
        admin.create_topics([NewTopic("pair", 16, 1)])["pair"].result(30)
        wait_until(
            lambda: {r["leader"] for r in stored(url, "pair").values()} == {last, follower},
            15,
            "each leads part of a new topic",
        )
        pair = [brokers[last], brokers[follower]]
        for process in pair:
            assert process.process is not None
            process.process.send_signal(signal.SIGTERM)
        for process in pair:
            process.stop()  # waits for the exit
            assert "ran out of shutdown.timeout.ms" not in process.log_tail(400)
        assert broker_state(url, last) == broker_state(url, follower) == "stopped"
    finally:
        for process in brokers.values():
            process.stop()


def test_without_controlled_shutdown_a_stop_hands_nothing_over(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    staying = _broker(tmp_path, 1, url, objects)
    leaving = _broker(tmp_path, 2, url, objects, **{"controlled.shutdown.enable": "false"})
    try:
        staying.start()
        leaving.start()
        leaders = create(staying.bootstrap, TOPIC, 8, url)
        led = sorted(p for p, node in leaders.items() if node == 2)
        acks = Acks(staying.bootstrap)
        for n in range(200):
            acks.send(TOPIC, n % 8, f"v{n}".encode())
        acks.flush()
        assert acks.errors == [] and len(acks.acked) == 200
        before = _placed(url)

        leaving.stop()
        assert broker_state(url, 2) == "stopped"
        assert _placed(url) == before  # its partitions still its own: nothing moved
        assert {p: before[p] for p in led} == dict.fromkeys(led, (2, 2))
        assert "stopping without handing over" in leaving.log_tail(400)

        leaving.start()
        read = read_back(staying.bootstrap, TOPIC, list(range(8)), len(acks.acked))
        assert read == acks.acked
    finally:
        staying.stop()
        leaving.stop()
