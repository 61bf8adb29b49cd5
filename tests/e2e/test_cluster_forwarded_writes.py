"""The brokers' own writes to partitions another broker leads (RFC 0004, "Brokers' own
writes across brokers as built"): two broker processes on one PostgreSQL and one
file:// object store. Broker 1 starts alone, so it creates and leads
`__contextplane_audit` and `__contextplane_read_receipts`.

- Produce and Fetch served by broker 2 are audited (allowed writes of an audited topic,
  read receipts) and their records reach the audit topics on broker 1; a refused batch
  on a validating topic whose dead-letter partition the other broker leads is written
  there and the producer answered success; a client's Produce to the audit topic stays
  refused;
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

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conformance import wire
from conformance.wire import Rec
from tests.e2e.test_cluster_failover import broker, create, fixture, stored
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
    tmp_path: Path, url: str, objects: str
) -> Iterator[tuple[BrokerProcess, BrokerProcess, int]]:
    """Brokers 1 (leading both audit topics) and 2, and a partition of `orders` that
    broker 2 leads; both stopped after."""
    one = broker(tmp_path / "one", 1, url, objects, **AUDITED).start()
    two = broker(tmp_path / "two", 2, url, objects, **AUDITED).start()
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

        # Clients still cannot write the audit topic, on either broker.
        for node in (one, two):
            with RawClient(node.bootstrap) as client:
                refused = wire.produce(client, AUDIT_TOPIC, wire.encode_batch([Rec(b"x")]))
            assert refused.error_code == 17  # INVALID_TOPIC_EXCEPTION


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
