"""A full disk under the broker's data directory (a small tmpfs).

Produce gets KAFKA_STORAGE_ERROR, an idempotent librdkafka producer rides it out without
a fatal error, reads keep working, produce works again once space is freed (no
restart), the broker starts on a full disk and serves reads, and every acknowledged
record is read back exactly once at its offset.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewPartitions,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from conformance import wire
from contextplane.protocol.error_codes import ErrorCode
from tests.e2e.test_protocol import produce as raw_produce
from tests.hostile.support import (
    MIB,
    assert_acknowledged_exactly_once,
    fill_disk,
    read_partitions,
    tmpfs,
)
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient, record_batch
from tests.support.wait import wait_until

TOPIC = "diskfull"
PARTITIONS = 2
PROBE = "probe"  # raw produce probes write here, apart from the tracked records
OFFSET_DELETE, ALTER_CLIENT_QUOTAS = 47, 49


@dataclass
class TrackedProducer:
    """An idempotent producer that records acknowledgements and fatal errors."""

    bootstrap: str
    acked: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    failed: dict[bytes, str] = field(default_factory=dict)
    fatal: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 120_000,
                "retry.backoff.ms": 100,
                "retry.backoff.max.ms": 500,
                "error_cb": self._on_error,
            }
        )

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.fatal.append(error.str())

    def close(self) -> None:
        """Its callbacks are bound methods, a reference cycle: without this the producer
        outlives the test and reconnects to the stopped broker in later tests' output."""
        self.producer.close()

    def _on_delivery(self, error: KafkaError | None, message: object) -> None:
        key = message.key()  # type: ignore[attr-defined]
        if error is None:
            self.acked[key] = (message.partition(), message.offset())  # type: ignore[attr-defined]
        else:
            self.failed[key] = error.str()

    def send(self, prefix: str, count: int, value_bytes: int = 2000) -> None:
        for i in range(count):
            key = f"{prefix}-{i}".encode()
            while True:
                try:
                    self.producer.produce(
                        TOPIC, key=key, value=b"v" * value_bytes, on_delivery=self._on_delivery
                    )
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)

    def flush(self, timeout_s: float) -> int:
        return self.producer.flush(timeout_s)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """The broker's data directory on a 48 MiB tmpfs (its log file stays outside)."""
    with tmpfs(tmp_path / "broker", 48 * MIB) as path:
        yield path


def storage_error_from_raw_produce(bootstrap: str, attempts: int = 50) -> tuple[int, str | None]:
    """Produce 256 KiB batches until one fails (a page-cache write may still fit)."""
    with RawClient(bootstrap) as client:
        for _ in range(attempts):
            result = raw_produce(client, PROBE, record_batch([b"r" * 256 * 1024]))
            if result.error_code != ErrorCode.none:
                return result.error_code, result.error_message
    return ErrorCode.none, None


def create_topic_error(bootstrap: str, name: str) -> int:
    """CreateTopics on one connection; its error code. A Metadata on the same connection
    afterwards shows the broker kept the connection open."""
    with RawClient(bootstrap) as client:
        created = wire.create_topic(client, name)
        wire.metadata(client, [])
    return int(created.error_code)


def stop_quietly(broker: BrokerProcess) -> None:
    """Stop in a `finally` without hiding the test's own failure."""
    try:
        broker.stop()
    except RuntimeError as exc:
        print(f"broker stop: {exc}")


def test_full_disk_refuses_produce_keeps_reads_and_recovers_without_restart(
    small_disk: Path, tmp_path: Path
) -> None:
    broker = BrokerProcess(
        small_disk,
        # Objects live elsewhere: uploads are what lets the WAL drain off a full disk.
        object_store=(tmp_path / "objects").resolve().as_uri(),
        settings={
            "upload.interval.ms": "100",
            "upload.bytes": str(256 * 1024),
            "wal.segment.bytes": str(1 * MIB),
            "metadata.reserved.bytes": str(2 * MIB),
        },
    ).start()
    producer: TrackedProducer | None = None
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for name, count in ((TOPIC, PARTITIONS), (PROBE, 1)):
            admin.create_topics([NewTopic(name, count)])[name].result(15)
        producer = TrackedProducer(broker.bootstrap)
        producer.send("before", 2000)
        assert producer.flush(30) == 0
        assert len(producer.acked) == 2000

        # The disk fills up under the idempotent producer: some of its batches fail in
        # the WAL write itself, and their retries must be written again, not deduplicated.
        sent = [0]

        def keep_producing() -> None:
            producer.send(f"filling{sent[0]}", 20)
            sent[0] += 1

        filler = fill_disk(small_disk, between=keep_producing)
        producer.send("during", 2000)
        producer.producer.poll(2)
        code, message = storage_error_from_raw_produce(broker.bootstrap)
        print(f"\n[disk full] raw produce: error {code} ({message})")
        assert code == ErrorCode.kafka_storage_error, (code, message)
        # ... reads are served meanwhile ...
        logs = read_partitions(broker.bootstrap, TOPIC, PARTITIONS)
        assert sum(len(r) for r in logs.values()) >= 2000
        assert not producer.fatal, producer.fatal

        filler.unlink()  # space comes back: produce must resume without a restart
        freed_at = time.monotonic()
        assert producer.flush(90) == 0, f"{len(producer.producer)} messages never answered"
        print(
            f"[disk full] after freeing space: {len(producer.acked)} acked,"
            f" {len(producer.failed)} failed, all answered in {time.monotonic() - freed_at:.1f}s"
        )
        assert not producer.fatal, producer.fatal
        assert not producer.failed, list(producer.failed.items())[:3]
        assert len(producer.acked) == 4000 + 20 * sent[0]
        assert_acknowledged_exactly_once(
            read_partitions(broker.bootstrap, TOPIC, PARTITIONS), producer.acked
        )
        producer.close()
        producer = None

        # A restart on a full disk: the broker starts, serves reads, refuses produce.
        broker.stop()
        filler = fill_disk(small_disk)
        started = time.monotonic()
        broker.start(timeout_s=60)
        print(f"[disk full] started on a full disk in {time.monotonic() - started:.1f}s")
        code, message = storage_error_from_raw_produce(broker.bootstrap, attempts=1)
        assert code == ErrorCode.kafka_storage_error, (code, message)
        logs = read_partitions(broker.bootstrap, TOPIC, PARTITIONS)
        assert sum(len(r) for r in logs.values()) >= 4000 + 20 * sent[0]
        filler.unlink()
        wait_until(
            lambda: (
                storage_error_from_raw_produce(broker.bootstrap, attempts=1)[0] == ErrorCode.none
            ),
            30,
            "produce to resume after space came back",
        )
    finally:
        if producer is not None:
            producer.close()
        stop_quietly(broker)


def test_starts_on_a_disk_that_was_already_full_when_it_stopped(
    small_disk: Path, tmp_path: Path
) -> None:
    # The disk fills while the broker runs, so it gives its metadata reserve back; after
    # the stop something else takes the space that frees. The start has nothing left to
    # release (SQLite could not even open its database: disk I/O error at journal_mode).
    broker = BrokerProcess(
        small_disk,
        object_store=(tmp_path / "objects").resolve().as_uri(),
        settings={
            "upload.interval.ms": "100",
            "upload.bytes": str(256 * 1024),
            "wal.segment.bytes": str(1 * MIB),
            "metadata.reserved.bytes": str(2 * MIB),
            # The leadership claim at start writes every partition's epoch; with the 50
            # partitions of __consumer_offsets it once needed more than the full disk's
            # free database pages under load (a known gap: see the issue notes). The test
            # keeps the footprint it was written for.
            "offsets.topic.num.partitions": "1",
        },
    ).start()
    reserve = small_disk / "metadata.reserve"
    fillers: list[Path] = []
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for name, count in ((TOPIC, PARTITIONS), (PROBE, 1)):
            admin.create_topics([NewTopic(name, count)])[name].result(15)
        producer = TrackedProducer(broker.bootstrap)
        producer.send("before", 1000)
        assert producer.flush(30) == 0
        assert len(producer.acked) == 1000
        del producer

        fillers.append(fill_disk(small_disk))
        assert storage_error_from_raw_produce(broker.bootstrap)[0] == ErrorCode.kafka_storage_error
        # The reserve goes back on the first metadata write that finds the disk full. An
        # upload commit is one only if the fill caught an upload pending, so a topic
        # creation makes that write happen on every run. If the upload came first and its
        # trimmed WAL's space was taken again, the creation is refused (the next test).
        assert create_topic_error(broker.bootstrap, "after-full") in (
            ErrorCode.none,
            ErrorCode.kafka_storage_error,
        )
        wait_until(lambda: not reserve.exists(), 30, "the broker to release its reserve")
        broker.stop()
        fillers.append(fill_disk(small_disk))  # what the stop freed is taken too

        broker.start(timeout_s=60)
        assert broker.log_path is not None
        for line in broker.log_path.read_text(errors="replace").splitlines():
            if "contextplane.metadata" in line:
                print(f"[full at stop] {line}")
        logs = read_partitions(broker.bootstrap, TOPIC, PARTITIONS)  # Metadata, ListOffsets
        assert sum(len(records) for records in logs.values()) >= 1000
        code, message = storage_error_from_raw_produce(broker.bootstrap, attempts=1)
        assert code == ErrorCode.kafka_storage_error, (code, message)
        assert message is not None and "disk" in message.lower(), message

        for filler in fillers:
            filler.unlink()
        wait_until(
            lambda: (
                storage_error_from_raw_produce(broker.bootstrap, attempts=1)[0] == ErrorCode.none
            ),
            30,
            "produce to resume after space came back",
        )
    finally:
        stop_quietly(broker)


def test_a_metadata_write_on_a_full_disk_is_refused_with_a_storage_error(
    small_disk: Path, tmp_path: Path
) -> None:
    # No reserve to release: nothing can be written to the metadata store. Each request
    # gets KAFKA_STORAGE_ERROR (retriable) on an open connection, not an internal error
    # and a closed one, and works once space is freed.
    broker = BrokerProcess(
        small_disk,
        object_store=(tmp_path / "objects").resolve().as_uri(),
        settings={
            "metadata.reserved.bytes": "0",
            "offsets.topic.num.partitions": "1",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "true",  # the clients are anonymous
        },
    ).start()
    try:
        assert create_topic_error(broker.bootstrap, PROBE) == ErrorCode.none
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        member = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "emptied"})
        member.commit(offsets=[TopicPartition(PROBE, 0, 0)], asynchronous=False)
        member.close()
        filler = fill_disk(small_disk)

        def refused(future: Any) -> None:
            with pytest.raises(KafkaException) as raised:
                future.result(15)
            assert raised.value.args[0].code() == KafkaError.KAFKA_STORAGE_ERROR

        assert create_topic_error(broker.bootstrap, "refused") == ErrorCode.kafka_storage_error
        refused(admin.create_partitions([NewPartitions(PROBE, 3)])[PROBE])
        acl = AclBinding(ResourceType.TOPIC, PROBE, ResourcePatternType.LITERAL, "User:reader",
                         "*", AclOperation.READ, AclPermissionType.ALLOW)  # fmt: skip
        refused(admin.create_acls([acl])[acl])
        user = UserScramCredentialUpsertion(
            "alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"secret"
        )
        refused(admin.alter_user_scram_credentials([user])["alice"])
        with RawClient(broker.bootstrap) as client:
            quota = client.request(
                ALTER_CLIENT_QUOTAS,
                1,
                entries=[{"entity": [{"entity_type": "client-id", "entity_name": "bulk"}],
                          "ops": [{"key": "producer_byte_rate", "value": 1e6, "remove": False}]}],
                validate_only=False,
            )  # fmt: skip
            assert [e.error_code for e in quota.entries] == [ErrorCode.kafka_storage_error]
            offsets = client.request(
                OFFSET_DELETE,
                0,
                group_id="emptied",
                topics=[{"name": PROBE, "partitions": [{"partition_index": 0}]}],
            )
            assert offsets.error_code == ErrorCode.kafka_storage_error
        refused(admin.delete_consumer_groups(["emptied"])["emptied"])
        transactional = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "t"})
        with pytest.raises(KafkaException) as raised:
            transactional.init_transactions(5)  # retried until then: the error is retriable
        assert raised.value.args[0].code() == KafkaError.KAFKA_STORAGE_ERROR
        assert raised.value.args[0].retriable()
        assert broker.state() == "running"
        assert broker.log_path is not None
        log = broker.log_path.read_text(errors="replace")
        assert "internal error" not in log and "Traceback" not in log, broker.log_tail()

        filler.unlink()
        assert create_topic_error(broker.bootstrap, "refused") == ErrorCode.none
        admin.create_acls([acl])[acl].result(15)
        admin.delete_consumer_groups(["emptied"])["emptied"].result(15)  # the retry deletes it
        listed = admin.list_consumer_groups().result(15).valid
        assert "emptied" not in {g.group_id for g in listed}
    finally:
        stop_quietly(broker)
