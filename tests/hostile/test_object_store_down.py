"""The object store stopped (SIGSTOP of SeaweedFS, or killed and restarted).

* A backlog past the memory budget: producers are throttled (librdkafka reports the
  throttle time), then refused with a retriable error naming the bound; the broker's
  RSS stays bounded; once the store is back the backlog goes up in objects no larger
  than upload.bytes and every acknowledged record is read back.
* A catch-up read of data that is only in the stopped store answers KAFKA_STORAGE_ERROR
  within the request bound.
* SIGTERM with the store frozen exits within shutdown.timeout.ms (plus slack), and the
  next start loses nothing.
* A restart with a large WAL backlog replays it in bounded memory (VmHWM).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import obstore
import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.protocol.error_codes import ErrorCode
from tests.e2e.test_metrics_endpoint import _metrics_url, _scrape, every_put_committed
from tests.e2e.test_protocol import fetch_partitions
from tests.e2e.test_protocol import produce as raw_produce
from tests.hostile.support import (
    MIB,
    assert_acknowledged_exactly_once,
    proc_status_kib,
    read_partitions,
)
from tests.support.broker import BrokerProcess
from tests.support.metadata import uploaded_end_offsets
from tests.support.rawclient import RawClient, record_batch
from tests.support.seaweedfs import SeaweedFS
from tests.support.wait import wait_until


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A SeaweedFS of this module's own: its tests freeze and kill it."""
    weed = SeaweedFS(tmp_path_factory.mktemp("weed") / "data").start()
    yield weed
    weed.stop()


def object_sizes(store: SeaweedFS, prefix: str) -> list[int]:
    sizes: list[int] = []
    for chunk in obstore.list(store.store(prefix)):
        sizes.extend(int(item["size"]) for item in chunk)
    return sizes


class AckingProducer:
    """An idempotent producer that records acknowledgements and throttle reports."""

    def __init__(self, bootstrap: str, topic: str, **config: object) -> None:
        self.topic = topic
        self.acked: dict[bytes, tuple[int, int]] = {}
        self.failed: dict[bytes, str] = {}
        self.fatal: list[str] = []
        self.throttle_ms: list[int] = []
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 180_000,
                "error_cb": self._on_error,
                "throttle_cb": self._on_throttle,
                **config,
            }
        )

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.fatal.append(error.str())

    def close(self) -> None:
        """Its callbacks are bound methods, a reference cycle: without this the producer
        outlives the test and reconnects to the stopped broker in later tests' output."""
        self.producer.close()

    def _on_throttle(self, event: object) -> None:
        self.throttle_ms.append(int(event.throttle_time * 1000))  # type: ignore[attr-defined]

    def _on_delivery(self, error: KafkaError | None, message: object) -> None:
        key = message.key()  # type: ignore[attr-defined]
        if error is None:
            self.acked[key] = (message.partition(), message.offset())  # type: ignore[attr-defined]
        else:
            self.failed[key] = error.str()

    def send(self, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(
                    self.topic, key=key, value=value, on_delivery=self._on_delivery
                )
                return
            except BufferError:
                self.producer.poll(0.05)


def stop_quietly(broker: BrokerProcess) -> None:
    try:
        broker.stop()
    except RuntimeError as exc:
        print(f"broker stop: {exc}")


@pytest.mark.slow  # about a minute: a backlog past the budget, then its upload
def test_backlog_past_the_budget_is_throttled_refused_and_uploaded_in_bounded_objects(
    store: SeaweedFS, tmp_path: Path
) -> None:
    # The backlog bound is past the memory budget: un-uploaded data cannot all be in memory.
    budget, backlog, upload = 32 * MIB, 64 * MIB, 1 * MIB
    broker = BrokerProcess(
        tmp_path / "broker",
        object_store=store.url_for("backlog"),
        settings={
            "memory.budget.bytes": str(budget),
            "wal.backlog.bytes": str(backlog),
            "upload.bytes": str(upload),
            "upload.interval.ms": "100",
            "object.store.request.timeout.ms": "2000",
        },
    ).start()
    assert broker.process is not None
    weed_killed = False
    producer: AckingProducer | None = None
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for name, count in (("backlog", 3), ("probe", 1)):
            admin.create_topics([NewTopic(name, count)])[name].result(15)
        producer = AckingProducer(broker.bootstrap, "backlog", **{"batch.size": 1 * MIB})
        for i in range(500):
            producer.send(f"k{i}".encode(), b"a" * 1000)
        assert producer.producer.flush(30) == 0

        store.freeze()
        value = b"b" * (8 * 1024)
        refusal: str | None = None
        peak_rss_kib = 0
        sent = 500
        started = time.monotonic()
        with RawClient(broker.bootstrap) as probe:
            while refusal is None and sent * len(value) < 4 * backlog:
                for _ in range(256):
                    producer.send(f"k{sent}".encode(), value)
                    sent += 1
                producer.producer.poll(0.05)
                peak_rss_kib = max(peak_rss_kib, proc_status_kib(broker.process.pid, "VmRSS"))
                answer = raw_produce(probe, "probe", record_batch([b"p"]))
                if answer.error_code != ErrorCode.none:
                    assert answer.error_code == ErrorCode.kafka_storage_error, answer
                    refusal = answer.error_message
        print(
            f"\n[store down] {sent * len(value) / MIB:.0f} MiB sent in"
            f" {time.monotonic() - started:.1f}s; throttle reports {len(producer.throttle_ms)}"
            f" (max {max(producer.throttle_ms, default=0)} ms); peak broker RSS"
            f" {peak_rss_kib / 1024:.0f} MiB; refusal: {refusal}"
        )
        assert producer.throttle_ms and max(producer.throttle_ms) > 0, "never throttled"
        assert refusal is not None and "wal.backlog.bytes" in refusal
        assert peak_rss_kib * 1024 < budget + 128 * MIB
        assert not producer.fatal

        store.kill()  # killed while frozen, then back on the same ports
        weed_killed = True
        store.start(keep_ports=True)
        weed_killed = False
        assert producer.producer.flush(180) == 0
        assert not producer.failed, list(producer.failed.items())[:3]
        assert not producer.fatal
        assert_acknowledged_exactly_once(
            read_partitions(broker.bootstrap, "backlog", 3, timeout_s=120), producer.acked
        )
        peak_rss_kib = max(peak_rss_kib, proc_status_kib(broker.process.pid, "VmHWM"))
        broker.stop()  # uploads what is left
        sizes = object_sizes(store, "backlog")
        print(
            f"[store down] after the outage: {len(sizes)} objects, largest"
            f" {max(sizes) / MIB:.2f} MiB; broker VmHWM {peak_rss_kib / 1024:.0f} MiB"
        )
        # An object ends with the batch that brings it to upload.bytes (over by one batch
        # at most: here batch.size, 1 MiB), its index on top: bounded, not the backlog.
        assert max(sizes) <= upload + 1 * MIB + 64 * 1024, max(sizes)
        assert sum(sizes) >= len(producer.acked) * 1000
        # Reads now come from objects alone.
        (broker.data_dir / "wal").rename(broker.data_dir / "wal-aside")
        broker.start()
        assert_acknowledged_exactly_once(
            read_partitions(broker.bootstrap, "backlog", 3, timeout_s=120), producer.acked
        )
    finally:
        if producer is not None:
            producer.close()
        if weed_killed:
            store.start(keep_ports=True)
        elif store.process is not None:
            store.thaw()
        stop_quietly(broker)


def test_catch_up_read_from_a_stopped_store_fails_retriably_in_bounded_time(
    store: SeaweedFS, tmp_path: Path
) -> None:
    """One fetch of six partitions whose data is only in the frozen store answers
    KAFKA_STORAGE_ERROR for each within about one request bound (3 s), not six."""
    partitions = 6
    broker = BrokerProcess(
        tmp_path / "broker",
        object_store=store.url_for("catchup"),
        settings={
            "log.cache.bytes": "1",  # uploaded batches leave memory at once
            "upload.interval.ms": "50",
            "object.store.request.timeout.ms": "3000",
            "object.compaction.enable": "false",  # every object written is an upload
            "http.port": "0",
        },
    ).start()
    try:
        with RawClient(broker.bootstrap) as client:
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            admin.create_topics([NewTopic("catchup", partitions)])["catchup"].result(15)
            url = _metrics_url(broker)
            for i in range(partitions * 5):
                batch = record_batch([b"%d" % i * 1000] * 10)
                answer = raw_produce(client, "catchup", batch, partition=i % partitions)
                assert answer.error_code == ErrorCode.none
            # Committed to objects, not only PUT: until the commit the WAL serves the reads.
            uploaded = dict.fromkeys(range(partitions), 5 * 10)
            wait_until(
                lambda: uploaded_end_offsets(tmp_path / "broker", "catchup") == uploaded,
                30,
                "upload",
            )
            # The commit is seen in the metadata before the broker settles it (a loop
            # turn later); a partition read in between comes from the WAL. Every PUT
            # counted as committed means every upload is settled.
            wait_until(
                lambda: every_put_committed(_scrape(url)[1]), 30, "uploads settled in the broker"
            )
            everything = dict.fromkeys(range(partitions), 0)
            store.freeze()
            try:
                started = time.monotonic()
                results = fetch_partitions(client, "catchup", everything)
                elapsed = time.monotonic() - started
                codes = [r.error_code for r in results]
                print(f"\n[store down] catch-up read answered in {elapsed:.1f}s: {codes}")
                assert codes == [ErrorCode.kafka_storage_error] * partitions
                assert elapsed < 12
            finally:
                store.thaw()
            wait_until(
                lambda: all(r.records for r in fetch_partitions(client, "catchup", everything)),
                30,
                "reads to resume",
            )
    finally:
        stop_quietly(broker)


def test_sigterm_with_a_frozen_store_exits_in_time_and_the_next_start_loses_nothing(
    store: SeaweedFS, tmp_path: Path
) -> None:
    broker = BrokerProcess(
        tmp_path / "broker",
        object_store=store.url_for("shutdown"),
        settings={
            "upload.interval.ms": "100",
            "object.store.request.timeout.ms": "2000",
            "shutdown.timeout.ms": "3000",
        },
    ).start()
    thawed = threading.Event()
    producer: AckingProducer | None = None
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("shutdown", 2)])["shutdown"].result(15)
        producer = AckingProducer(broker.bootstrap, "shutdown")
        for i in range(2000):
            producer.send(f"k{i}".encode(), b"s" * 500)
            if i == 999:
                assert producer.producer.flush(30) == 0
                store.freeze()  # the second half is only in the WAL
        assert producer.producer.flush(30) == 0
        assert len(producer.acked) == 2000
        started = time.monotonic()
        broker.stop(timeout_s=30)
        elapsed = time.monotonic() - started
        print(f"\n[store down] SIGTERM to exit: {elapsed:.1f}s (shutdown.timeout.ms=3000)")
        assert elapsed < 3 + 12
        store.thaw()
        thawed.set()
        broker.start()
        assert_acknowledged_exactly_once(
            read_partitions(broker.bootstrap, "shutdown", 2), producer.acked
        )
    finally:
        if producer is not None:
            producer.close()
        if not thawed.is_set():
            store.thaw()
        stop_quietly(broker)


@pytest.mark.slow  # a WAL backlog larger than the memory budget, written then replayed
def test_restart_with_a_large_wal_backlog_replays_in_bounded_memory(tmp_path: Path) -> None:
    objects = (tmp_path / "objects").resolve().as_uri()
    budget = 64 * MIB
    common = {"memory.budget.bytes": str(budget), "wal.backlog.bytes": str(1024 * MIB)}
    broker = BrokerProcess(
        tmp_path / "broker",
        object_store=objects,
        # Nothing is uploaded: the whole backlog stays in the WAL.
        settings={**common, "upload.interval.ms": "3600000", "upload.bytes": str(2**40)},
    ).start()
    producer: AckingProducer | None = None
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("replay", 3)])["replay"].result(15)
        producer = AckingProducer(broker.bootstrap, "replay", **{"batch.size": 1 * MIB})
        value = b"r" * (16 * 1024)
        count = 160 * MIB // len(value)
        for i in range(count):
            producer.send(f"k{i}".encode(), value)
            if i % 256 == 0:
                producer.producer.poll(0)
        assert producer.producer.flush(120) == 0
        assert len(producer.acked) == count
        broker.kill9()
        wal_bytes = sum(f.stat().st_size for f in (broker.data_dir / "wal").glob("*.wal"))

        broker.settings = {**common, "upload.interval.ms": "100", "upload.bytes": str(4 * MIB)}
        started = time.monotonic()
        broker.start(timeout_s=120)
        assert broker.process is not None
        ready_s = time.monotonic() - started
        wait_until(
            lambda: (
                sum(f.stat().st_size for f in (tmp_path / "objects").rglob("*.obj"))
                >= count * len(value)
            ),
            120,
            "the replayed backlog to be uploaded",
        )
        hwm_kib = proc_status_kib(broker.process.pid, "VmHWM")
        print(
            f"\n[replay] {wal_bytes / MIB:.0f} MiB WAL replayed, listening after {ready_s:.1f}s,"
            f" uploaded; broker VmHWM {hwm_kib / 1024:.0f} MiB (budget {budget // MIB} MiB)"
        )
        assert hwm_kib * 1024 < budget + 128 * MIB
        assert_acknowledged_exactly_once(
            read_partitions(broker.bootstrap, "replay", 3, timeout_s=120), producer.acked
        )
    finally:
        if producer is not None:
            producer.close()
        stop_quietly(broker)
        shutil.rmtree(tmp_path / "objects", ignore_errors=True)
