"""A partition whose data is newer than the others' backlog is read in its turn.

Partitions 1-3 hold a backlog of 12 MiB in objects written first; partition 0's records
are written after them, into newer objects only. After a restart (nothing in the log
cache) a confluent-kafka consumer reads all four from offset 0 with 512 KiB responses.
Kafka reads partitions in request order, the first with data at least up to its first
batch whatever the bounds (ReplicaManager.readFromLog's minOneMessage), and librdkafka
starts each request one partition further: partition 0 is first in every fourth request,
so its records arrive while the backlog is still being read, not after all of it.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.test_catchup_reads import _value
from tests.support.broker import BrokerProcess

BACKLOG = 3 * 4 * 1024  # records of 1 KiB over partitions 1-3
LATE = 200  # records of partition 0, written after the backlog


def test_a_partition_with_newer_data_is_not_starved_by_the_backlog(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "broker", settings={"object.compaction.enable": "false"})
    try:
        broker.start()
        topic = "fairness"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(topic, 4)])[topic].result(30)
        _produce_to(broker.bootstrap, topic, range(1, 4), BACKLOG)
        time.sleep(1)  # past the upload interval (250 ms): partition 0 starts a new object
        _produce_to(broker.bootstrap, topic, range(0, 1), LATE)
        broker.stop()  # a clean stop uploads the rest: the restarted broker reads objects
        broker.start()

        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": f"fairness-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "error",
                "fetch.max.bytes": 512 * 1024,
                "message.max.bytes": 512 * 1024,
            }
        )
        order: list[int] = []  # the partition of each record, in the order consumed
        try:
            consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
            deadline = time.monotonic() + 180
            while len(order) < BACKLOG + LATE:
                assert time.monotonic() < deadline, f"timed out after {len(order)} records"
                for message in consumer.consume(1000, 0.5):
                    assert message.error() is None, message.error()
                    order.append(message.partition())
        finally:
            consumer.close()
        first_late = order.index(0)
        backlog_before = sum(1 for p in order[:first_late] if p != 0)
        print(f"partition 0's first record after {backlog_before} of {BACKLOG} backlog records")
        assert backlog_before < BACKLOG // 2, "partition 0 waited for most of the backlog"
    finally:
        broker.stop()


def _produce_to(bootstrap: str, topic: str, partitions: range, records: int) -> None:
    """`records` values of 1 KiB over `partitions` round-robin, every one acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20})
    errors: list[str] = []

    def on_delivery(err, _message) -> None:  # noqa: ANN001 - confluent-kafka callback
        if err is not None:
            errors.append(str(err))

    for i in range(records):
        partition = partitions[i % len(partitions)]
        while True:
            try:
                producer.produce(
                    topic, value=_value(i), partition=partition, on_delivery=on_delivery
                )
                break
            except BufferError:  # the client's queue is full: let it send
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0
    assert not errors, errors[:5]
