"""kill -9 of the broker while the log cleaner works: nothing acknowledged is lost and
nothing is duplicated. A producer keeps overwriting 40 keys of a compacted topic whose
closed segments the cleaner rewrites every few tens of milliseconds; the broker is killed
twice, each time while cleaning passes are running, and restarted. At the end every
key's latest acknowledged value is read at its acknowledged offset, offsets only grow,
and every record read is one that was produced at that offset."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import BrokerProcess
from tests.support.wait import wait_until

TOPIC = "compacted-crash"
KEYS = 40
KILLS = 2


class KeyedProducer(threading.Thread):
    """Overwrites the keys in turn; records every acknowledged (offset, key, value)."""

    def __init__(self, bootstrap: str, start_at: int) -> None:
        super().__init__(daemon=True)
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 1500,
            }
        )
        self.sequence = start_at
        self.acked: dict[int, tuple[bytes, bytes]] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            key = b"key-%02d" % (self.sequence % KEYS)
            value = b"value-%08d" % self.sequence
            self.sequence += 1

            def on_delivery(
                error: object, message: object, k: bytes = key, v: bytes = value
            ) -> None:
                if error is None:
                    self.acked[message.offset()] = (k, v)  # type: ignore[attr-defined]

            try:
                self.producer.produce(
                    TOPIC, key=key, value=value, partition=0, on_delivery=on_delivery
                )
            except BufferError:
                self.producer.poll(0.05)
            self.producer.poll(0)
            time.sleep(0.0005)
        self.producer.flush(5)


def cleaned_passes(broker: BrokerProcess) -> int:
    assert broker.log_path is not None
    return broker.log_path.read_text(errors="replace").count(f"cleaned {TOPIC}-0")


def read_all(bootstrap: str) -> list[tuple[int, bytes, bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "check", "enable.auto.commit": False}
    )
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
        consumer.assign([TopicPartition(TOPIC, 0, -2)])
        got: list[tuple[int, bytes, bytes]] = []
        deadline = time.monotonic() + 30
        while (not got or got[-1][0] < end - 1) and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                assert message.error() is None, message.error()
                got.append((message.offset(), message.key(), message.value()))
        return got
    finally:
        consumer.close()


def test_kill_9_while_cleaning_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    broker = BrokerProcess(
        tmp_path / "broker",
        settings={
            "upload.interval.ms": "20",
            "log.cleaner.backoff.ms": "20",
            "log.segment.delete.delay.ms": "200",
            "object.store.orphan.min.age.ms": "0",
        },
    ).start()
    acked: dict[int, tuple[bytes, bytes]] = {}
    sequence = 0
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        configs = {
            "cleanup.policy": "compact",
            "min.cleanable.dirty.ratio": "0.01",
            "segment.ms": "1",
        }
        admin.create_topics([NewTopic(TOPIC, 1, config=configs)])[TOPIC].result(15)
        for _ in range(KILLS):
            producer = KeyedProducer(broker.bootstrap, sequence)
            producer.start()
            before = cleaned_passes(broker)
            wait_until(lambda b=before: cleaned_passes(broker) >= b + 3, 30, "cleaning passes run")
            broker.kill9()  # the cleaner is mid-pass or between passes, uploads in flight
            producer.stopping.set()
            producer.join(30)
            acked.update(producer.acked)
            sequence = producer.sequence
            broker.start()
        final = read_all(broker.bootstrap)
    finally:
        broker.stop()

    offsets = [offset for offset, _, _ in final]
    assert offsets == sorted(set(offsets)), "an offset repeats or goes back"
    for offset, key, value in final:
        if offset in acked:
            assert acked[offset] == (key, value), f"offset {offset} holds another record"
    latest: dict[bytes, tuple[int, bytes]] = {}
    for offset in sorted(acked):
        key, value = acked[offset]
        latest[key] = (offset, value)
    read = {offset: (key, value) for offset, key, value in final}
    for key, (offset, value) in latest.items():
        # The newest acknowledged record of a key is never cleaned away (a later,
        # unacknowledged write of the same key may have superseded it: then that one).
        if offset in read:
            assert read[offset] == (key, value)
        else:
            newer = [o for o, (k, _) in read.items() if k == key and o > offset]
            assert newer, f"{key!r}'s latest acknowledged value at {offset} was lost"
    assert len(acked) > 100
