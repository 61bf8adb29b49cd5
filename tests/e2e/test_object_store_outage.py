"""An object-store outage must not stop produce: acks come from the WAL, uploads catch up."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.test_produce_fetch import consume_all
from tests.support.broker import BrokerProcess
from tests.support.seaweedfs import SeaweedFS


def produce(bootstrap: str, start: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(start, start + count):
        producer.produce("outage", key=str(i).encode(), value=b"v" * 200)
    assert producer.flush(30) == 0


def test_produce_continues_while_the_object_store_is_frozen(tmp_path: Path) -> None:
    store = SeaweedFS(tmp_path / "weed").start()
    # The clean stop below must upload everything, however busy the machine: the default
    # shutdown deadline would leave the rest in the WAL, which this test moves aside.
    broker = BrokerProcess(
        tmp_path / "broker",
        object_store=store.url,
        settings={"upload.interval.ms": "50", "shutdown.timeout.ms": "300000"},
    ).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("outage", 3)])["outage"].result(10)
        produce(broker.bootstrap, 0, 1000)
        assert store.process is not None
        os.killpg(store.process.pid, signal.SIGSTOP)  # every S3 request now hangs
        try:
            started = time.monotonic()
            produce(broker.bootstrap, 1000, 2000)  # acknowledged from the WAL alone
            during = consume_all(broker.bootstrap, "outage", 3, 3000)
            assert len(during) == 3000
            assert time.monotonic() - started < 30
        finally:
            os.killpg(store.process.pid, signal.SIGCONT)
        broker.stop(timeout_s=300)  # a clean stop uploads whatever the outage held back
        moved = broker.data_dir / "wal"
        moved.rename(broker.data_dir / "wal-aside")  # so reads must come from objects
        broker.start()
        after = consume_all(broker.bootstrap, "outage", 3, 3000)
        assert sorted(int(m.key()) for m in after) == list(range(3000))
    finally:
        broker.stop()
        store.stop()
