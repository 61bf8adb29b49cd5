"""The brokers' own writes to partitions another broker leads (RFC 0004, "Brokers' own
writes across brokers as built"): two broker processes on one PostgreSQL and one
file:// object store. Broker 1 starts alone, so it creates and leads
`__contextplane_audit` and `__contextplane_read_receipts`.

- Produce and Fetch served by broker 2 are audited (allowed writes of an audited topic,
  read receipts) and their records reach the audit topics on broker 1; a refused batch
  on a validating topic whose dead-letter partition the other broker leads is written
  there and the producer answered success; a client's Produce to the audit topic stays
  refused;
- a share group coordinated by broker 1 rejects a record of a partition broker 1
  leads: its copy reaches the group's dead-letter partition, which broker 2 leads;
- broker 1 killed -9 while broker 2 serves requests: broker 2 keeps the audit records
  it cannot write, retries, and every one of them is in the audit topic once broker 1 is
  back (or the partition moved).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conformance import wire
from conformance.wire import Rec
from contextplane.protocol.offsets_records import OFFSETS_TOPIC, partition_for
from tests.e2e.test_cluster_failover import broker, create, fixture, stored
from tests.e2e.test_share_dead_letters import SETTINGS, _group_configs, _read_all, _work
from tests.support.audit_topics import AUDIT_TOPIC, RECEIPTS_TOPIC, read_json_topic
from tests.support.broker import BrokerProcess
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

AUDITED = {
    "contextplane.audit.allowed.topics": "orders",
    "contextplane.audit.flush.interval.ms": "100",
    "contextplane.audit.read.receipts.enable": "true",
    "contextplane.audit.read.receipts.window.ms": "200",
}
DLQ = "contextplane.schema.validation.dlq.topic"
VALIDATING = {"confluent.value.schema.validation": "true"}
SHARE_SETTINGS = {**SETTINGS, "group.initial.rebalance.delay.ms": "0"}


def produce_each(bootstrap: str, topic: str, partition: int, labels: list[str]) -> None:
    """One Produce request per label (each one audit record), every one acknowledged."""
    with RawClient(bootstrap) as client:
        for label in labels:
            batch = wire.encode_batch([Rec(label.encode())])
            answer = wire.produce(client, topic, batch, partition)
            assert answer.error_code == 0, answer


def audited_writes(bootstrap: str, node: int) -> dict[str, dict[str, Any]]:
    """id -> the audit record of each allowed Produce to `orders` broker `node` served."""
    return {
        e["id"]: e
        for e in read_json_topic(bootstrap, AUDIT_TOPIC)
        if e["source"].endswith(f"/broker/{node}")
        and e["type"] == "io.contextplane.audit.authorization"
        and e["data"]["resource_name"] == "orders"
        and e["data"]["operation"] == "WRITE"
    }


def read_one(bootstrap: str, topic: str, partition: int) -> Any:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex[:8]}"})
    consumer.assign([TopicPartition(topic, partition, 0)])
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return message
    finally:
        consumer.close()
    raise AssertionError(f"nothing read from {topic}-{partition}")


@contextmanager
def audited_pair(
    tmp_path: Path, url: str, objects: str, **extra: str
) -> Iterator[tuple[BrokerProcess, BrokerProcess, int]]:
    """Brokers 1 (leading both audit topics and every `__consumer_offsets` shard) and
    2, and a partition of `orders` that broker 2 leads; both stopped after."""
    one = broker(tmp_path / "one", 1, url, objects, **AUDITED, **extra).start()
    two = broker(tmp_path / "two", 2, url, objects, **AUDITED, **extra).start()
    try:
        assert stored(url, AUDIT_TOPIC)[0]["leader"] == 1
        assert stored(url, RECEIPTS_TOPIC)[0]["leader"] == 1
        on_two = min(p for p, node in create(one.bootstrap, "orders", 8, url).items() if node == 2)
        yield one, two, on_two
    finally:
        two.stop()
        one.stop()


def test_writes_served_by_the_broker_not_leading_the_audit_topics_reach_them(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    with audited_pair(tmp_path, url, objects) as (one, two, on_two):
        produce_each(two.bootstrap, "orders", on_two, [f"o{i}" for i in range(5)])
        assert read_one(two.bootstrap, "orders", on_two).value() == b"o0"

        wait_until(
            lambda: len(audited_writes(one.bootstrap, 2)) == 5 or None,
            30,
            "broker 2's five audited writes in the audit topic",
            poll_s=0.5,
        )
        receipts = wait_until(
            lambda: [
                r
                for r in read_json_topic(one.bootstrap, RECEIPTS_TOPIC)
                if r["source"].endswith("/broker/2") and r["data"]["topic"] == "orders"
            ],
            30,
            "broker 2's read receipt of orders",
            poll_s=0.5,
        )
        assert receipts[0]["data"]["partition"] == on_two
        assert receipts[0]["data"]["first_offset"] == 0

        # A schema-refused batch whose dead-letter partition the other broker leads.
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic("checked-dlq", 1, 1)])["checked-dlq"].result(30)
        wait_until(lambda: stored(url, "checked-dlq")[0]["leader"] > 0, 15, "the DLQ is led")
        dlq_leader = stored(url, "checked-dlq")[0]["leader"]
        checked = create(one.bootstrap, "checked", 8, url, {**VALIDATING, DLQ: "checked-dlq"})
        source = min(p for p, node in checked.items() if node != dlq_leader)
        served_by = two if checked[source] == 2 else one
        with RawClient(served_by.bootstrap) as client:
            batch = wire.encode_batch([Rec(b"not avro", key=b"k-1")])
            answer = wire.produce(client, "checked", batch, source)
        assert (answer.error_code, answer.base_offset) == (0, -1), answer
        letter = read_one(one.bootstrap, "checked-dlq", 0)
        assert (letter.key(), letter.value()) == (b"k-1", b"not avro")
        assert ("__contextplane.dlq.partition", str(source).encode()) in letter.headers()

        # Clients still cannot write the audit topic, on either broker; with no
        # authorizer a broker's client id is taken only when it names another live
        # broker (not the leader itself, not a broker that is not registered).
        for node in (one, two):
            with RawClient(node.bootstrap) as client:
                refused = wire.produce(client, AUDIT_TOPIC, wire.encode_batch([Rec(b"x")]))
            assert refused.error_code == 17  # INVALID_TOPIC_EXCEPTION
        for claimed in ("broker-1", "broker-9"):
            with RawClient(one.bootstrap, client_id=claimed) as client:
                forged = wire.produce(client, AUDIT_TOPIC, wire.encode_batch([Rec(b"forged")]))
            assert forged.error_code == 17, claimed


def test_audit_records_wait_in_the_buffer_while_the_audit_leader_is_killed(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    with audited_pair(tmp_path, url, objects) as (one, two, on_two):
        produce_each(two.bootstrap, "orders", on_two, [f"before{i}" for i in range(5)])
        wait_until(
            lambda: len(audited_writes(one.bootstrap, 2)) == 5 or None,
            30,
            "the first five",
            poll_s=0.5,
        )

        one.kill9()
        produce_each(two.bootstrap, "orders", on_two, [f"during{i}" for i in range(5)])
        wait_until(
            lambda: "failed (kept to retry)" in two.log_tail(400),
            60,
            "broker 2 failing to write its audit records, keeping them",
            poll_s=0.2,
        )
        one.restart()
        found = wait_until(
            lambda: (lambda w: w if len(w) >= 10 else None)(audited_writes(two.bootstrap, 2)),
            90,
            "all ten of broker 2's audited writes",
            poll_s=0.5,
        )
        assert len(found) == 10  # the five served while the leader was away included


def test_a_share_groups_dead_letters_reach_a_partition_the_other_broker_leads(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    with audited_pair(tmp_path, url, objects, **SHARE_SETTINGS) as (one, _, _):
        group = "job-workers"
        assert stored(url, OFFSETS_TOPIC)[partition_for(group, 50)]["leader"] == 1
        jobs = create(one.bootstrap, "jobs", 8, url)
        gate = {"errors.deadletterqueue.group.enable": "TRUE"}
        letters = create(one.bootstrap, "dlq.jobs", 8, url, gate)
        # Broker 1 coordinates the group and leads the source partition; broker 2 leads
        # the dead-letter partition its copies go to (the same index).
        source = min(p for p in range(8) if jobs[p] == 1 and letters[p] == 2)
        _group_configs(
            one,
            group,
            {
                "share.auto.offset.reset": "earliest",
                "errors.deadletterqueue.topic.name": "dlq.jobs",
                "errors.deadletterqueue.copy.record.enable": "true",
            },
        )
        values = ["job-0", "reject-1", "job-2"]
        producer = Producer({"bootstrap.servers": one.bootstrap, "acks": "all"})
        for index, value in enumerate(values):
            producer.produce(
                "jobs", key=f"k{index}".encode(), value=value.encode(), partition=source
            )
        assert producer.flush(30) == 0
        _work(one, "jobs", group, values)  # type: ignore[arg-type]
        copies = [c for c in _read_all(one, "dlq.jobs", 1) if c["partition"] == source]
        assert [(c["key"], c["value"]) for c in copies] == [(b"k1", b"reject-1")]
        headers = dict(copies[0]["headers"])  # type: ignore[call-overload]
        assert headers["__dlq.errors.partition"] == str(source).encode()
        assert headers["__dlq.errors.message"] == b"Offset rejected by client."
