"""`contextplane up --metadata postgresql://...`: a broker whose metadata lives in
PostgreSQL serves confluent-kafka, keeps everything across a restart (the object index,
group offsets and topics are read back from PostgreSQL, none from a SQLite file), and an
unreachable server is one line naming it, without its password."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import BrokerProcess
from tests.support.postgres import PostgresServer
from tests.support.topic_read import read_to

TOPIC = "on-postgres"
PARTITIONS = 3
MESSAGES = 300


def test_a_broker_on_postgresql_keeps_everything_across_a_restart(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    # Uploads only at shutdown: after the restart every record is read from objects the
    # PostgreSQL object index names.
    broker = BrokerProcess(
        tmp_path / "data", metadata_url=url, settings={"upload.interval.ms": "600000"}
    ).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        for i in range(MESSAGES):
            producer.produce(TOPIC, value=f"v{i}".encode(), partition=i % PARTITIONS)
        assert producer.flush(60) == 0, broker.log_tail()
        ends = {p: MESSAGES // PARTITIONS for p in range(PARTITIONS)}
        before = read_to(broker.bootstrap, TOPIC, ends, "read_uncommitted")
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g"})
        consumer.commit(offsets=[TopicPartition(TOPIC, 0, 42)], asynchronous=False)
        consumer.close()
        broker.stop()
        with psycopg.connect(url) as db:
            (ranges,) = db.execute("SELECT COUNT(*) FROM ranges").fetchone() or (0,)
        assert ranges > 0, "the clean stop's upload committed its ranges to PostgreSQL"
        assert not (tmp_path / "data" / "metadata.db").exists()
        # Nor the embedded store's disk-space reserve: the server keeps its own disk.
        assert not (tmp_path / "data" / "metadata.reserve").exists()

        broker.start()
        after = read_to(broker.bootstrap, TOPIC, ends, "read_uncommitted")
        assert after == before
        assert sorted(v for p in after.values() for _, v in p) == sorted(
            f"v{i}".encode() for i in range(MESSAGES)
        )
        assert "replayed" not in broker.log_tail(200)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g"})
        (committed,) = consumer.committed([TopicPartition(TOPIC, 0)], timeout=30)
        consumer.close()
        assert committed.offset == 42
    finally:
        broker.stop()


def test_an_unreachable_metadata_server_is_named_without_its_password(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the block ends
    result = subprocess.run(
        [sys.executable, "-m", "contextplane.cli.main", "up", "--data-dir", str(tmp_path),
         "--port", "0", "--metadata", f"postgresql://broker:s3cret@127.0.0.1:{port}/meta"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"postgresql://broker:***@127.0.0.1:{port}/meta" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
