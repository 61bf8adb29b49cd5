"""The object WAL (`wal.url` on SeaweedFS) under kill -9 and an object store outage.

* kill -9 during a paced acks=all idempotent produce (four confluent-kafka producers, six
  partitions, uploads running so old WAL objects are trimmed): restarted, the broker
  serves every acknowledged record exactly once at its acknowledged offset, offsets
  contiguous (test_crash.py's checks); the data directory never held a WAL segment.
* the store frozen (SIGSTOP) for a while, then back: produce requests get
  KAFKA_STORAGE_ERROR while it is away, then the broker acknowledges again with no restart,
  and everything acknowledged reads back once.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.test_crash import (
    PARTITIONS,
    RDKAFKA_LOG,
    TOPIC,
    PacedProducer,
    expected_value,
    run_producers,
    verify_log,
)
from tests.support.broker import BrokerProcess
from tests.support.seaweedfs import SeaweedFS, seaweedfs_fixture  # noqa: F401 - fixture
from tests.support.wait import wait_until

PRODUCERS = 4
PER_PRODUCER = 5_000


def wal_url(seaweedfs: SeaweedFS, prefix: str) -> str:
    return seaweedfs.url_for(f"{prefix}/wal")


def wal_keys(seaweedfs: SeaweedFS, prefix: str) -> list[str]:
    return seaweedfs.list_keys(f"{prefix}/wal", under=None)


@pytest.mark.slow
def test_kill9_with_the_object_wal_loses_and_duplicates_nothing(
    tmp_path: Path, seaweedfs: SeaweedFS
) -> None:
    prefix = f"objwal-kill-{uuid.uuid4().hex[:8]}"
    broker = BrokerProcess(
        tmp_path / "broker",
        object_store=seaweedfs.url_for(f"{prefix}/data"),
        settings={
            "wal.url": wal_url(seaweedfs, prefix),
            "upload.interval.ms": "1000",
            "upload.bytes": "1048576",  # a tail of up to 1 MiB is un-uploaded at the kill
            "group.initial.rebalance.delay.ms": "0",
        },
    ).start()
    producers: list[PacedProducer] = []
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap, "logger": RDKAFKA_LOG})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS)])[TOPIC].result(15)
        producers = [
            PacedProducer(
                broker.bootstrap,
                prefix=f"p{n}",
                count=PER_PRODUCER,
                rate=PER_PRODUCER / 6,
                value_bytes=300,
                message_timeout_ms=60_000,
            )
            for n in range(PRODUCERS)
        ]
        value_bytes = {
            f"p{n}-{i}".encode(): 300 for n in range(PRODUCERS) for i in range(PER_PRODUCER)
        }
        for producer in producers:
            producer.start()
        first_keys: set[str] = set()

        def ready_to_kill() -> bool:
            assert all(p.is_alive() for p in producers), "producers finished before the kill"
            keys = set(wal_keys(seaweedfs, prefix))
            if not first_keys:
                first_keys.update(keys)
            # Trimmed: a WAL object seen earlier is gone (its records are in objects).
            trimmed = bool(first_keys - keys)
            return trimmed and sum(len(p.acked) for p in producers) >= 0.4 * len(value_bytes)

        wait_until(ready_to_kill, 60, "acknowledgements and a trimmed WAL object", poll_s=0.05)
        for producer in producers:
            producer.lost_broker.clear()
        broker.kill9()
        acked_at_kill = sum(len(p.acked) for p in producers)
        assert not (broker.data_dir / "wal").exists(), "a local WAL was written"
        wait_until(
            lambda: all(p.lost_broker.is_set() for p in producers),
            30,
            "every producer sees the broker gone",
        )
        broker.start(timeout_s=60)
        run_producers(producers, timeout_s=120)  # they ride through the restart
        acked = {k: v for p in producers for k, v in p.acked.items()}
        assert acked_at_kill < len(acked)
        checked = verify_log(broker.bootstrap, acked, value_bytes)
        replayed = re.findall(r"replayed (\d+) WAL entries", broker.log_tail(400))
        assert replayed, "the restart replayed nothing from the object WAL"
        print(
            f"\nacked at kill {acked_at_kill}, acked {len(acked)}, "
            f"failed {sum(len(p.failed) for p in producers)}, "
            f"unacked present {checked['unacked_present']}, WAL entries replayed {replayed[-1]}"
        )
    finally:
        for producer in producers:
            producer.stop_producing.set()
        broker.stop()


def produce_once(bootstrap: str, keys: list[bytes]) -> dict[bytes, object]:
    """Each key produced once (no retries): key -> (partition, offset) or the error."""
    outcomes: dict[bytes, object] = {}

    def report(err: KafkaError | None, message: object) -> None:
        key = message.key()  # type: ignore[attr-defined]
        outcomes[key] = (
            err.code() if err is not None else (message.partition(), message.offset())  # type: ignore[attr-defined]
        )

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "logger": RDKAFKA_LOG,
            "acks": "all",
            "enable.idempotence": False,
            "retries": 0,
            "linger.ms": 5,
            "request.timeout.ms": 20_000,
            "message.timeout.ms": 30_000,
        }
    )
    for key in keys:
        producer.produce(TOPIC, key=key, value=expected_value(key, 100), on_delivery=report)
    assert producer.flush(60) == 0
    return outcomes


@pytest.mark.slow
def test_an_object_store_outage_fails_produce_then_the_broker_serves_again_by_itself(
    tmp_path: Path,
) -> None:
    store = SeaweedFS(tmp_path / "weed").start()
    prefix = "outage"
    broker = BrokerProcess(
        tmp_path / "broker",
        object_store=store.url_for(f"{prefix}/data"),
        settings={
            "wal.url": wal_url(store, prefix),
            "object.store.request.timeout.ms": "2000",
            "upload.interval.ms": "100",
        },
    ).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap, "logger": RDKAFKA_LOG})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS)])[TOPIC].result(15)
        before = produce_once(broker.bootstrap, [f"a-{i}".encode() for i in range(200)])
        assert all(isinstance(v, tuple) for v in before.values()), before
        assert store.process is not None
        os.killpg(store.process.pid, signal.SIGSTOP)  # every S3 request now hangs
        try:
            started = time.monotonic()
            during = produce_once(broker.bootstrap, [f"b-{i}".encode() for i in range(50)])
            refused = [v for v in during.values() if v == KafkaError.KAFKA_STORAGE_ERROR]
            assert len(refused) == 50, during
            assert time.monotonic() - started < 30
        finally:
            os.killpg(store.process.pid, signal.SIGCONT)
        # Back: the next PUT succeeds and produce is acknowledged again, no restart.
        after: dict[bytes, object] = {}

        def acknowledged_again() -> bool:
            after.update(produce_once(broker.bootstrap, [f"c-{len(after)}".encode()]))
            return isinstance(after[f"c-{len(after) - 1}".encode()], tuple)

        wait_until(acknowledged_again, 60, "produce acknowledged after the outage", poll_s=0.5)
        more = produce_once(broker.bootstrap, [f"d-{i}".encode() for i in range(200)])
        assert all(isinstance(v, tuple) for v in more.values()), more
        acked = {
            k: v
            for outcomes in (before, during, after, more)
            for k, v in outcomes.items()
            if isinstance(v, tuple)
        }
        keys = {k: 100 for outcomes in (before, during, after, more) for k in outcomes}
        verify_log(broker.bootstrap, acked, keys)  # type: ignore[arg-type]
        # And after a restart, from the WAL objects and the uploads.
        broker.kill9()
        broker.start(timeout_s=60)
        verify_log(broker.bootstrap, acked, keys)  # type: ignore[arg-type]
    finally:
        broker.stop()
        store.stop()
