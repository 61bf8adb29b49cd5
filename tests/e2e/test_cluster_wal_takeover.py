"""Takeover of a dead broker's object WAL (RFC 0004 §4): two broker processes on one
PostgreSQL, both with `wal.url` on SeaweedFS and uploads an hour apart, so everything
acknowledged is only in the WALs. Broker 1 is killed -9 and never comes back: broker 2
takes over its partitions at once (no waiting for broker 1's return), replays broker
1's WAL, serves every acknowledged record, each once, and acknowledges new ones; broker
1's WAL objects are deleted and its incarnation marked recovered. Broker 1 restarting
afterwards changes nothing: the partitions stay with broker 2, their records and ends
as they were.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, TopicPartition

from tests.e2e.test_cluster_failover import (
    Acks,
    broker,
    broker_state,
    create,
    read_back,
    stored,
    uploaded_end,
)
from tests.support.postgres import PostgresServer
from tests.support.seaweedfs import SeaweedFS, seaweedfs_fixture  # noqa: F401 - fixture
from tests.support.wait import wait_until

PARTITIONS = 8
RECORDS = 800


def wal_url_of(url: str, node_id: int) -> str | None:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT wal_url FROM brokers WHERE node_id=%s", (node_id,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def incarnation_of(url: str, node_id: int) -> int:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT incarnation FROM brokers WHERE node_id=%s", (node_id,)).fetchone()
    return int(row[0])


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ends"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()


def test_a_killed_brokers_object_wal_is_taken_over_and_every_acknowledged_record_served_once(
    tmp_path: Path, postgres_server: PostgresServer, seaweedfs: SeaweedFS
) -> None:
    url = postgres_server.create_database()
    prefix = f"takeover-{uuid.uuid4().hex[:8]}"
    settings = {
        "wal.url": seaweedfs.url_for(f"{prefix}/wal"),
        "upload.interval.ms": "3600000",  # nothing uploaded before the kill
    }
    objects = seaweedfs.url_for(f"{prefix}/data")
    one = broker(tmp_path / "one", 1, url, objects, **settings).start()
    two = broker(tmp_path / "two", 2, url, objects, **settings).start()
    try:
        leaders = create(one.bootstrap, "wt", PARTITIONS, url)
        acks = Acks(two.bootstrap)
        for i in range(RECORDS):
            acks.send("wt", i % PARTITIONS, f"r{i}".encode())
        acks.flush()
        assert len(acks.acked) == RECORDS and not acks.errors
        ones = [p for p, leader in leaders.items() if leader == 1]
        rows = stored(url, "wt")
        # Broker 1's records are in its WAL only: dirty, nothing uploaded.
        assert all(rows[p]["dirty"] != 0 and uploaded_end(url, "wt", p) == 0 for p in ones)
        assert seaweedfs.list_keys(f"{prefix}/wal", under="1/")
        dead_objects = f"1/{incarnation_of(url, 1):020d}/"

        one.kill9()
        wait_until(
            lambda: all(r["leader"] == 2 for r in stored(url, "wt").values()),
            60,
            "broker 2 leads broker 1's partitions",
        )
        assert broker_state(url, 1) == "expired"
        read = read_back(two.bootstrap, "wt", list(range(PARTITIONS)), RECORDS)
        assert read == acks.acked, "an acknowledged record is missing or different"
        per_partition = RECORDS // PARTITIONS
        ends = end_offsets(two.bootstrap, "wt")
        assert ends == {p: per_partition for p in range(PARTITIONS)}, "a record twice"
        log = two.log_tail(2000)
        assert all(f"wt-{p}: recovered, leading" in log for p in ones), "not replayed"
        # Served: a produce to each of them is acknowledged right after the last record.
        for p in ones:
            acks.send("wt", p, b"after")
        acks.flush(30)
        assert all(acks.acked[(p, per_partition)] == b"after" for p in ones)
        ends = end_offsets(two.bootstrap, "wt")
        # Recovered: the incarnation is marked and its WAL objects deleted.
        wait_until(lambda: wal_url_of(url, 1) is None, 30, "broker 1's WAL marked recovered")
        wait_until(
            lambda: not seaweedfs.list_keys(f"{prefix}/wal", under="1/"),
            30,
            "broker 1's WAL objects deleted",
        )

        # Broker 1 returns: nothing of what broker 2 recovered changes.
        one.start()
        wait_until(lambda: broker_state(url, 1) == "live", 30, "broker 1 registered again")
        assert all(r["leader"] == 2 for r in stored(url, "wt").values())
        assert end_offsets(one.bootstrap, "wt") == ends
        everything = len(acks.acked)
        assert read_back(one.bootstrap, "wt", list(range(PARTITIONS)), everything) == acks.acked
        assert not seaweedfs.list_keys(f"{prefix}/wal", under=dead_objects)
    finally:
        one.stop()
        two.stop()
