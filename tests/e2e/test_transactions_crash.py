"""Transactions across a kill -9 of the broker (a real process): a committed transaction
stays visible, a transaction left open is never visible to read_committed readers and
stops holding them back once a new producer with the same transactional.id fences it."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import BrokerProcess
from tests.support.topic_read import read_values

TIMEOUT_S = 60  # liveness bound of each client call (a restart included)


def test_kill9_mid_transaction(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "broker", settings={"upload.interval.ms": "100"}).start()
    try:
        topic = "crash-txn"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)
        config = {"bootstrap.servers": broker.bootstrap, "transactional.id": "crash-tid"}
        producer = Producer(config)
        producer.init_transactions(TIMEOUT_S)
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, f"committed-{i}".encode())
        producer.commit_transaction(TIMEOUT_S)  # offsets 0-2, marker 3
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, f"open-{i}".encode())
        producer.flush(TIMEOUT_S)  # offsets 4-6, acknowledged, never committed
        broker.kill9()
        broker.start()
        # The committed transaction survived; the open one holds the LSO at 4.
        assert read_values(broker.bootstrap, topic, 4) == [
            f"committed-{i}".encode() for i in range(3)
        ]
        successor = Producer(dict(config, **{"bootstrap.servers": broker.bootstrap}))
        successor.init_transactions(TIMEOUT_S)  # fences the zombie: its ABORT marker
        successor.begin_transaction()
        successor.produce(topic, b"after-restart")
        successor.commit_transaction(TIMEOUT_S)
        values = read_values(broker.bootstrap, topic, 10)
        assert values == [f"committed-{i}".encode() for i in range(3)] + [b"after-restart"]
        broker.kill9()
        broker.start()
        values = read_values(broker.bootstrap, topic, 10)
        assert values == [f"committed-{i}".encode() for i in range(3)] + [b"after-restart"]
    finally:
        broker.stop()
