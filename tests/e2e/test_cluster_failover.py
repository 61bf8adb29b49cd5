"""Failover with the local WAL (RFC 0004 §5, slice 2): two broker processes on one
PostgreSQL and one file:// object store.

- kill -9 of a broker whose partitions are all in objects (clean): the controller expires
  it once its lease lapsed and moves its partitions, the other broker claims them, and a
  confluent-kafka consumer reads every acknowledged record;
- kill -9 of a broker holding acknowledged records in no object (dirty): those partitions
  stay offline (not led elsewhere, Metadata LEADER_NOT_AVAILABLE, Produce
  NOT_LEADER_OR_FOLLOWER) while its clean one moves, and one of a topic with
  unclean.leader.election.enable=true is taken over all the same, the records given up
  logged; restarted on its data directory it replays its WAL and serves every
  acknowledged record of the others;
- SIGSTOP of a leader under an acks=all producer, past its lease: the other broker takes
  what was clean; resumed, the stopped broker acknowledges nothing more for what it lost
  (its marks find another epoch), stops (its row was expired), and after a restart every
  acknowledged record is readable at the offset it was acknowledged at;
- a broker alone cut off from PostgreSQL (and only it) acknowledging from its WAL
  without marks: a broker started meanwhile expires it but neither moves nor claims its
  partition (its `unmarked_acks` flag), and every record is served after its restart.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.test_metrics_endpoint import _metrics_url, _scrape, _value
from tests.support.broker import BrokerProcess
from tests.support.cli import contextplane
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient, record_batch
from tests.support.wait import wait_until

SESSION_MS = 1_500
METADATA, PRODUCE = 3, 0
LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER = 5, 6


def broker(data_dir: Path, node_id: int, url: str, objects: str, **extra: str) -> BrokerProcess:
    return BrokerProcess(
        data_dir,
        metadata_url=url,
        object_store=objects,
        settings={
            "node.id": str(node_id),
            "broker.heartbeat.interval.ms": "300",
            "broker.session.timeout.ms": str(SESSION_MS),
            **extra,
        },
    )


def stored(url: str, topic: str) -> dict[int, dict[str, int]]:
    """partition -> its row: leader, epoch, target, wal_dirty."""
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT partition, leader_node, leader_epoch, target_node, wal_dirty"
            " FROM partitions WHERE topic=%s",
            (topic,),
        ).fetchall()
    return {r[0]: {"leader": r[1], "epoch": r[2], "target": r[3], "dirty": r[4]} for r in rows}


def broker_state(url: str, node_id: int) -> str:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT state FROM brokers WHERE node_id=%s", (node_id,)).fetchone()
    return str(row[0]) if row else "none"


def uploaded_end(url: str, topic: str, partition: int) -> int:
    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT MAX(r.end_offset) FROM ranges r JOIN partitions p"
            " ON p.stream_id=r.stream_id WHERE p.topic=%s AND p.partition=%s",
            (topic, partition),
        ).fetchone()
    return int(row[0] or 0)


def create(
    bootstrap: str, topic: str, partitions: int, url: str, config: dict[str, str] | None = None
) -> dict[int, int]:
    """Create `topic` and wait until every partition is led where it is targeted;
    returns partition -> leader."""
    # The creating broker places the partitions over the brokers it lists: both.
    wait_until(lambda: listed_brokers(bootstrap) == [1, 2], 15, "broker 1 lists both")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})])[topic].result(30)
    wait_until(
        lambda: all(r["leader"] == r["target"] != -1 for r in stored(url, topic).values()),
        15,
        "each broker claims its share",
    )
    leaders = {p: r["leader"] for p, r in stored(url, topic).items()}
    assert set(leaders.values()) == {1, 2}, leaders
    return leaders


class Acks:
    """An idempotent acks=all producer recording what was acknowledged, and where."""

    def __init__(self, bootstrap: str, **config: str) -> None:
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 120_000,
                "topic.metadata.refresh.interval.ms": 500,
                **config,
            }
        )
        self.acked: dict[tuple[int, int], bytes] = {}
        self.errors: list[str] = []

    def send(self, topic: str, partition: int, value: bytes) -> None:
        def on_delivery(error: Any, message: Any) -> None:
            if error is not None:
                self.errors.append(str(error))
            else:
                self.acked[(message.partition(), message.offset())] = message.value()

        self.producer.produce(topic, value=value, partition=partition, on_delivery=on_delivery)
        self.producer.poll(0)

    def flush(self, timeout_s: float = 60) -> None:
        assert self.producer.flush(timeout_s) == 0, "messages left unacknowledged"


def read_back(
    bootstrap: str, topic: str, partitions: list[int], count: int
) -> dict[tuple[int, int], bytes]:
    """Every record of `partitions` from offset 0 (at least `count` of them)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "check", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    read: dict[tuple[int, int], bytes] = {}
    deadline = time.monotonic() + 60
    try:
        while len(read) < count and time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is None or message.error():
                continue
            read[(message.partition(), message.offset())] = message.value()
    finally:
        consumer.close()
    return read


def offline_gauges(metrics_url: str) -> tuple[float, float]:
    """(offline here, offline in the cluster) as the broker's /metrics says."""
    _, samples = _scrape(metrics_url)
    return (
        _value(samples, "kafka_server_replicamanager_offlinepartitionscount"),
        _value(samples, "kafka_controller_kafkacontroller_offlinepartitionscount"),
    )


def listed_brokers(bootstrap: str) -> list[int]:
    with RawClient(bootstrap) as raw:
        answer = raw.request(METADATA, 12, topics=[], allow_auto_topic_creation=False)
    return sorted(b.node_id for b in answer.brokers)


def metadata_partitions(bootstrap: str, topic: str) -> list[Any]:
    """The topic's partition entries as the broker at `bootstrap` answers Metadata."""
    with RawClient(bootstrap) as raw:
        answer = raw.request(
            METADATA,
            12,
            topics=[{"name": topic, "topic_id": None}],
            allow_auto_topic_creation=False,
        )
    (found,) = answer.topics
    return list(found.partitions)


def metadata_leaders(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (leader id, error code) as the broker at `bootstrap` answers."""
    return {
        p.partition_index: (p.leader_id, p.error_code)
        for p in metadata_partitions(bootstrap, topic)
    }


def metadata_replicas(bootstrap: str, topic: str) -> dict[int, tuple[list[int], list[int]]]:
    """partition -> (replica nodes, offline replicas) as the broker at `bootstrap` answers."""
    return {
        p.partition_index: (list(p.replica_nodes), list(p.offline_replicas))
        for p in metadata_partitions(bootstrap, topic)
    }


def raw_produce_error(bootstrap: str, topic: str, partition: int) -> int:
    with RawClient(bootstrap) as raw:
        answer = raw.request(
            PRODUCE,
            9,
            transactional_id=None,
            acks=-1,
            timeout=5000,
            topic_data=[
                {
                    "name": topic,
                    "partition_data": [{"index": partition, "records": record_batch([b"raw"])}],
                }
            ],
        )
    return int(answer.responses[0].partition_responses[0].error_code)


def fixture(tmp_path: Path, postgres_server: PostgresServer) -> tuple[str, str]:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    return url, (tmp_path / "objects").as_uri()


def test_a_killed_brokers_clean_partitions_are_served_by_the_other_within_seconds(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    one = broker(tmp_path / "one", 1, url, objects).start()
    two = broker(tmp_path / "two", 2, url, objects).start()
    try:
        leaders = create(one.bootstrap, "fo", 8, url)
        acks = Acks(one.bootstrap)
        for i in range(400):
            acks.send("fo", i % 8, f"r{i}".encode())
        acks.flush()
        assert len(acks.acked) == 400 and not acks.errors
        # Clean: every acknowledged record is in an object and no partition is dirty.
        wait_until(
            lambda: all(r["dirty"] == 0 for r in stored(url, "fo").values()),
            15,
            "uploaded and cleared",
        )
        assert all(uploaded_end(url, "fo", p) == 50 for p in range(8))
        moved = [p for p, leader in leaders.items() if leader == 2]

        two.kill9()
        killed = time.monotonic()
        wait_until(
            lambda: all(r["leader"] == 1 for r in stored(url, "fo").values()),
            30,
            "broker 1 leads broker 2's partitions",
        )
        claimed_s = time.monotonic() - killed
        # Served: a produce to each of them through broker 1 is acknowledged.
        for p in moved:
            acks.send("fo", p, b"after")
        acks.flush(30)
        served_s = time.monotonic() - killed
        print(f"failover of {len(moved)} clean partitions: claimed {claimed_s:.2f} s"
              f" after kill -9, served {served_s:.2f} s (session {SESSION_MS} ms)")  # fmt: skip
        assert broker_state(url, 2) == "expired"
        read = read_back(one.bootstrap, "fo", list(range(8)), len(acks.acked))
        assert read == acks.acked, "an acknowledged record is missing or different"
        # A supervisor's restart of broker 2 registers it again.
        two.start()
        wait_until(lambda: broker_state(url, 2) == "live", 15, "broker 2 registered again")
    finally:
        one.stop()
        two.stop()


def test_a_killed_brokers_dirty_partitions_stay_offline_until_it_returns(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    one = broker(tmp_path / "one", 1, url, objects, **{"http.port": "0"}).start()
    # Broker 2 uploads nothing by itself: what it acknowledges stays in its WAL.
    two = broker(
        tmp_path / "two", 2, url, objects,
        **{"upload.interval.ms": "3600000", "upload.bytes": "1000000000"},
    ).start()  # fmt: skip
    try:
        leaders = create(one.bootstrap, "fo", 8, url)
        on_two = sorted(p for p, leader in leaders.items() if leader == 2)
        assert len(on_two) >= 2, leaders
        idle, written = on_two[0], on_two[1:]
        acks = Acks(one.bootstrap)
        for i in range(300):
            partition = [p for p in range(8) if p != idle][i % 7]
            acks.send("fo", partition, f"r{i}".encode())
        # A topic that prefers availability: its dirty partition is taken uncleanly.
        unclean = {"unclean.leader.election.enable": "true"}
        given_up = min(p for p, n in create(one.bootstrap, "un", 8, url, unclean).items() if n == 2)
        unclean_acks = Acks(one.bootstrap)
        for i in range(20):
            unclean_acks.send("un", given_up, f"u{i}".encode())
        unclean_acks.flush()
        acks.flush()
        rows = stored(url, "fo")
        assert all(rows[p]["dirty"] == rows[p]["epoch"] for p in written)
        assert rows[idle]["dirty"] == 0
        assert stored(url, "un")[given_up]["dirty"] != 0

        two.kill9()
        wait_until(lambda: stored(url, "fo")[idle]["leader"] == 1, 30, "the clean one moves")
        time.sleep(SESSION_MS / 1000)  # longer than any claim would take
        rows = stored(url, "fo")
        assert broker_state(url, 2) == "expired"
        for p in written:  # offline: still broker 2's, not led elsewhere
            assert (rows[p]["leader"], rows[p]["target"]) == (2, 2), rows[p]
        answered = metadata_leaders(one.bootstrap, "fo")
        # As Kafka lists a fenced broker's partition: its replica, marked offline.
        replicas = metadata_replicas(one.bootstrap, "fo")
        for p in written:
            assert answered[p] == (-1, LEADER_NOT_AVAILABLE), answered[p]
            assert replicas[p] == ([2], [2]), replicas[p]
            assert raw_produce_error(one.bootstrap, "fo", p) == NOT_LEADER_OR_FOLLOWER
        assert answered[idle] == (1, 0)
        assert replicas[idle] == ([1], [])
        wait_until(lambda: stored(url, "un")[given_up]["leader"] == 1, 30, "unclean claim")
        # The controller (broker 1) counts them offline; none is targeted at it unserved.
        metrics = _metrics_url(one)
        assert offline_gauges(metrics) == (0, len(written))
        assert (
            "unclean leader election: records node 2 acknowledged past offset 0"
            in (tmp_path / "one-broker.log").read_text()
        )

        # Broker 2 returns on its data directory: it replays its WAL and serves them.
        two.start()
        wait_until(
            lambda: all(stored(url, "fo")[p]["leader"] == 2 for p in written),
            30,
            "broker 2 leads its dirty partitions again",
        )
        wait_until(lambda: offline_gauges(metrics) == (0, 0), 30, "no partition offline")
        read = read_back(one.bootstrap, "fo", list(range(8)), len(acks.acked))
        assert read == acks.acked, "an acknowledged record is missing or different"
    finally:
        one.stop()
        two.stop()


def test_a_stopped_leader_acknowledges_nothing_after_losing_its_partitions(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    one = broker(tmp_path / "one", 1, url, objects).start()
    two = broker(tmp_path / "two", 2, url, objects).start()
    try:
        leaders = create(one.bootstrap, "fo", 8, url)
        on_two = sorted(p for p, leader in leaders.items() if leader == 2)
        acks = Acks(one.bootstrap)
        for i in range(160):
            acks.send("fo", i % 8, f"before-{i}".encode())
        acks.flush()
        wait_until(
            lambda: all(r["dirty"] == 0 for r in stored(url, "fo").values()),
            15,
            "uploaded and cleared",
        )
        epochs = {p: r["epoch"] for p, r in stored(url, "fo").items()}
        # One more record to one of broker 2's partitions, and broker 2 is stopped as it
        # is acknowledged (before its upload, most likely: that one is dirty).
        acks.send("fo", on_two[0], b"pinned")
        acks.flush()
        assert two.process is not None
        two.process.send_signal(signal.SIGSTOP)
        dirty = {p for p, r in stored(url, "fo").items() if r["dirty"]}
        # The producer keeps writing to every partition while broker 2 is stopped.
        stop = threading.Event()
        sent = [0]

        def write() -> None:
            while not stop.is_set():
                acks.send("fo", sent[0] % 8, f"during-{sent[0]}".encode())
                sent[0] += 1
                time.sleep(0.005)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            # Past its lease: broker 1 takes every partition of broker 2 that was clean.
            wait_until(lambda: broker_state(url, 2) == "expired", 30, "broker 2 expired")
            clean = [p for p in on_two if p not in dirty]
            wait_until(
                lambda: all(stored(url, "fo")[p]["leader"] == 1 for p in clean),
                30,
                "broker 1 claims the clean ones",
            )
            rows = stored(url, "fo")
            assert all(rows[p]["epoch"] > epochs[p] for p in clean)
            assert all(rows[p]["leader"] == 2 for p in dirty), "a dirty partition moved"
            two.process.send_signal(signal.SIGCONT)
            # Its next heartbeat finds its row expired: it stops (a supervisor restarts it).
            assert two.process.wait(30) == 1
        finally:
            stop.set()
            writer.join()
        two.start()
        acks.flush(90)
        assert not acks.errors, acks.errors[:5]
        refused = (tmp_path / "two-broker.log").read_text().count("moved on in the metadata")
        print(f"{len(clean)} of broker 2's {len(on_two)} partitions moved while it was"
              f" stopped, {len(dirty)} stayed dirty; {len(acks.acked)} records acknowledged;"
              f" {refused} partitions refused acknowledgements after resuming")  # fmt: skip
        assert clean, "no partition of the stopped broker was clean"
        read = read_back(one.bootstrap, "fo", list(range(8)), len(acks.acked))
        missing = {k: v for k, v in acks.acked.items() if read.get(k) != v}
        assert not missing, f"acknowledged but not readable there: {sorted(missing)[:10]}"
    finally:
        if two.process is not None and two.process.poll() is None:
            two.process.send_signal(signal.SIGCONT)
        one.stop()
        two.stop()


def test_records_acknowledged_while_only_the_leader_lost_the_store_are_never_lost(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """The outage path's race (RFC 0004 §5): broker 1, alone, loses PostgreSQL while it
    stays up for everyone else, and acknowledges records of a clean partition from its
    WAL within its lease (no mark written). Broker 2 starts, becomes the controller and
    expires broker 1; broker 1's `unmarked_acks` flag keeps the partition from being
    moved or claimed (a claim would miss those records). Broker 1 reaches the store
    again, stops on its expired row, and restarted it serves every acknowledged record."""
    url, objects = fixture(tmp_path, postgres_server)
    role = f"broker_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE ROLE {role} LOGIN SUPERUSER")
    timing = {"broker.session.timeout.ms": "6000", "broker.heartbeat.interval.ms": "1000"}
    one = broker(tmp_path / "one", 1, url.replace("postgres@", f"{role}@"), objects, **timing)
    two = broker(tmp_path / "two", 2, url, objects, **timing)
    one.start()
    try:
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic("alone", 1, 1)])["alone"].result(30)
        acks = Acks(one.bootstrap)
        acks.send("alone", 0, b"before")
        acks.flush()
        wait_until(
            lambda: uploaded_end(url, "alone", 0) == 1 and stored(url, "alone")[0]["dirty"] == 0,
            15,
            "uploaded and clean",
        )

        def flagged() -> bool:
            with psycopg.connect(url) as db:
                query = "SELECT unmarked_acks FROM brokers WHERE node_id=1"
                (flag,) = db.execute(query).fetchone()
            return bool(flag == 1)

        # A broker alone sets its flag with its next heartbeat (one a second here).
        wait_until(flagged, 10, "broker 1's unmarked_acks flag set by its heartbeat")
        # PostgreSQL turns broker 1 away, and only broker 1.
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(f"ALTER ROLE {role} NOLOGIN")
            db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename=%s",
                (role,),
            )
        for i in range(20):
            acks.send("alone", 0, f"during-{i}".encode())
        acks.flush(10)
        assert not acks.errors, acks.errors
        assert "acknowledging without dirty marks" in (tmp_path / "one-broker.log").read_text()
        assert stored(url, "alone")[0]["dirty"] == 0  # nothing marked: the flag stands for it
        two.start()
        wait_until(lambda: broker_state(url, 1) == "expired", 60, "broker 1 expired")
        wait_until(
            lambda: metadata_leaders(two.bootstrap, "alone")[0] == (-1, LEADER_NOT_AVAILABLE),
            15,
            "the partition offline at broker 2",
        )
        row = stored(url, "alone")[0]
        assert (row["leader"], row["target"]) == (1, 1), "broker 1's partition was moved"
        # Broker 1 reaches the store again: its row was expired, so it stops.
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(f"ALTER ROLE {role} LOGIN")
        assert one.process is not None and one.process.wait(60) == 1
        one.start()
        read = read_back(two.bootstrap, "alone", [0], len(acks.acked))
        assert read == acks.acked, "an acknowledged record is missing or different"
        assert len(read) == 21
    finally:
        one.stop()
        two.stop()


def test_a_move_asked_while_a_dead_leaders_lease_lasts_completes_once_it_returns(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """`partitions move` of a dirty partition whose leader was just killed: at the lease
    lapse the partition is offline (its records are only in that broker's WAL) and the
    move stays listed; once the broker is back it replays its WAL and hands the partition
    to the move's target, which serves every acknowledged record."""
    url, objects = fixture(tmp_path, postgres_server)
    one = broker(tmp_path / "one", 1, url, objects).start()
    # A session long enough for the move to be asked before it lapses; no uploads.
    two = broker(
        tmp_path / "two", 2, url, objects,
        **{"upload.interval.ms": "3600000", "upload.bytes": "1000000000",
           "broker.session.timeout.ms": "8000"},
    ).start()  # fmt: skip
    try:
        leaders = create(one.bootstrap, "mv", 4, url)
        moving = min(p for p, leader in leaders.items() if leader == 2)
        acks = Acks(one.bootstrap)
        for i in range(100):
            acks.send("mv", moving, f"r{i}".encode())
        acks.flush()
        assert stored(url, "mv")[moving]["dirty"] != 0

        two.kill9()
        asked = contextplane(
            "partitions", "move", f"mv-{moving}", "--to", "1", "--bootstrap-server", one.bootstrap
        )
        assert asked.status == 0, asked
        assert broker_state(url, 2) == "live", "the move was asked after the lease lapsed"
        wait_until(lambda: broker_state(url, 2) == "expired", 30, "broker 2's lease lapses")
        row = stored(url, "mv")[moving]
        assert (row["leader"], row["target"]) == (2, 1), row  # offline, the move kept

        def moves() -> list[dict[str, Any]]:
            listed = contextplane(
                "partitions", "moves", "--bootstrap-server", one.bootstrap, "--output", "json"
            )
            assert listed.status == 0, listed
            return list(listed.json()["moves"])

        assert [(m["topic"], m["partition"], m["adding"]) for m in moves()] == [("mv", moving, [1])]
        assert raw_produce_error(one.bootstrap, "mv", moving) == NOT_LEADER_OR_FOLLOWER

        two.start()
        wait_until(
            lambda: stored(url, "mv")[moving]["leader"] == 1,
            60,
            "broker 1 leads the partition once broker 2 is back and hands it over",
        )
        assert moves() == []
        read = read_back(one.bootstrap, "mv", [moving], len(acks.acked))
        assert read == acks.acked, "an acknowledged record is missing or different"
    finally:
        one.stop()
        two.stop()
