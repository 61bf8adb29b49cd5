"""The security audit topic and read receipts through real clients: a confluent-kafka
consumer's reads answered by `contextplane audit reads` (also after a restart), an ACL
denial read back from `__contextplane_audit` (and its JSON-lines file), allowed reads
and writes of an audited topic, Produce to the internal topics refused, and a full audit
buffer failing open (dropped, counted) or closed (requests refused). Every client is
User:ANONYMOUS (PLAINTEXT)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from contextplane.broker.read_receipts import returned_range
from tests.e2e.test_protocol import fetch_partitions
from tests.groups.support import Wire
from tests.support.audit_topics import AUDIT_TOPIC, RECEIPTS_TOPIC, read_json_topic
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "true",
}
QUICK_GROUPS = {"group.initial.rebalance.delay.ms": "0"}


def produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, value=f"m{i}".encode(), partition=0)
    assert producer.flush(15) == 0


def consume(bootstrap: str, topic: str, group: str, client_id: str, count: int) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": client_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        received = 0
        deadline = time.monotonic() + 30
        while received < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                received += 1
        assert received == count
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()


def audit_cli(what: str, bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`contextplane audit <what> --bootstrap-server <bootstrap> <args>`."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "contextplane.cli.main",
            "audit",
            what,
            "--bootstrap-server",
            bootstrap,
            *args,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
    )


def audit_reads(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return audit_cli("reads", bootstrap, *args)


def receipts_for(bootstrap: str, topic: str, offset: int) -> list[dict[str, Any]]:
    done = audit_reads(bootstrap, "--topic", topic, "--offset", str(offset), "--output", "json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_audit_reads_names_who_received_an_offset_also_after_a_restart(
    start: Callable[..., InProcessBroker],
) -> None:
    broker = start(**QUICK_GROUPS, **{"contextplane.audit.allowed.topics": "ord*"})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic("orders", num_partitions=1)]).values():
        future.result(10)
    produce(broker.bootstrap, "orders", 10)
    before = time.time()
    consume(broker.bootstrap, "orders", "billing", "billing-app", 10)

    found = wait_until(lambda: receipts_for(broker.bootstrap, "orders", 5), 30, "a receipt of 5")
    receipt = found[0]
    assert receipt["principal"] == "User:ANONYMOUS"
    assert receipt["client_id"] == "billing-app"
    assert receipt["group"] == "billing"
    assert receipt["partition"] == 0
    assert receipt["first_offset"] <= 5 <= receipt["last_offset"]
    assert receipt["client_address"].startswith("127.0.0.1:")
    fetched = time.mktime(time.strptime(receipt["last_fetch_time"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert fetched - time.timezone >= int(before) - 1
    # Offsets nobody received, another topic, another principal: nothing.
    assert receipts_for(broker.bootstrap, "orders", 10) == []
    assert receipts_for(broker.bootstrap, "other", 5) == []
    table = audit_reads(broker.bootstrap, "--topic", "orders", "--principal", "User:bob")
    assert table.returncode == 0 and "User:ANONYMOUS" not in table.stdout

    # The allowed writes and reads of an audited topic are in the audit topic.
    events = read_json_topic(broker.bootstrap, AUDIT_TOPIC)
    allowed = {
        (e["data"]["operation"], e["data"]["api"])
        for e in events
        if e["type"] == "io.contextplane.audit.authorization"
        and e["data"]["resource_name"] == "orders"
        and e["data"]["decision"] == "ALLOWED"
    }
    assert allowed == {("WRITE", "Produce"), ("READ", "Fetch")}

    broker.restart()
    again = receipts_for(broker.bootstrap, "orders", 5)
    assert [r["id"] for r in again] == [r["id"] for r in found]
    table = audit_reads(broker.bootstrap, "--topic", "orders", "--offset", "5")
    rows = [line.split() for line in table.stdout.splitlines()[1:]]
    assert ["User:ANONYMOUS", "billing-app", "billing"] in [r[1:4] for r in rows]


def test_an_acl_denial_is_in_the_audit_topic_and_file(
    start: Callable[..., InProcessBroker], tmp_path: Path
) -> None:
    audit_file = tmp_path / "audit.jsonl"
    broker = start(**AUTHORIZER, **QUICK_GROUPS, **{"contextplane.audit.file": str(audit_file)})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic("secret", num_partitions=1)]).values():
        future.result(10)
    deny = AclBinding(ResourceType.TOPIC, "secret", ResourcePatternType.LITERAL,
                      "User:ANONYMOUS", "*", AclOperation.READ, AclPermissionType.DENY)  # fmt: skip
    # DESCRIBE allowed, so the consumer gets as far as Fetch, which READ's DENY refuses.
    describe = AclBinding(ResourceType.TOPIC, "secret", ResourcePatternType.LITERAL,
                          "User:ANONYMOUS", "*", AclOperation.DESCRIBE,
                          AclPermissionType.ALLOW)  # fmt: skip
    for future in admin.create_acls([deny, describe]).values():
        future.result(10)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "snoop",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    try:
        consumer.subscribe(["secret"])
        message = wait_until(lambda: consumer.poll(1.0), 30, "the consumer's error")
        assert message.error().code() == 29  # TOPIC_AUTHORIZATION_FAILED
    finally:
        consumer.close()

    def denial() -> list[dict[str, Any]]:
        return [
            e
            for e in read_json_topic(broker.bootstrap, AUDIT_TOPIC)
            if e["type"] == "io.contextplane.audit.authorization"
            and e["data"]["decision"] == "DENIED"
            and e["data"]["resource_name"] == "secret"
            and e["data"]["operation"] == "READ"
        ]

    event = wait_until(denial, 30, "the denial in the audit topic")[0]
    assert event["specversion"] == "1.0"
    assert event["datacontenttype"] == "application/json"
    assert event["subject"] == "topic:secret"
    assert event["source"].startswith("contextplane://")
    data = event["data"]
    assert data["principal"] == "User:ANONYMOUS"
    assert data["resource_type"] == "TOPIC"
    assert data["listener"] == "PLAINTEXT"
    assert data["result"] == "TOPIC_AUTHORIZATION_FAILED"
    assert data["acl"] == "DENY User:ANONYMOUS from * READ on TOPIC:LITERAL:secret"
    changes = [e["data"]["api"] for e in read_json_topic(broker.bootstrap, AUDIT_TOPIC)
               if e["type"] == "io.contextplane.audit.change"]  # fmt: skip
    assert "CreateTopics" in changes and "CreateAcls" in changes
    lines = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert event["id"] in {line["id"] for line in lines}

    # `contextplane audit events` finds the same records by what an operator asks.
    asked = audit_cli("events", broker.bootstrap, "--decision", "denied",
                      "--resource", "topic:secret", "--output", "json")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    found = [json.loads(line) for line in asked.stdout.splitlines()]
    assert event["id"] in {e["id"] for e in found}
    assert all(e["data"]["decision"] == "DENIED" for e in found)
    asked = audit_cli("events", broker.bootstrap, "--type", "change", "--output", "json")
    assert {"CreateTopics", "CreateAcls"} <= {
        json.loads(line)["data"]["api"] for line in asked.stdout.splitlines()
    }
    asked = audit_cli("events", broker.bootstrap, "--resource", "secret",
                      "--principal", "User:ANONYMOUS", "--limit", "1")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    header, *rows = asked.stdout.splitlines()
    assert header.split() == ["TIME", "TYPE", "PRINCIPAL", "ACTION", "RESOURCE", "DECISION",
                              "RESULT", "CLIENT"]  # fmt: skip
    assert len(rows) == 1 and "User:ANONYMOUS" in rows[0].split()
    asked = audit_cli("events", broker.bootstrap, "--principal", "User:nobody")
    assert asked.returncode == 0 and len(asked.stdout.splitlines()) == 1  # the header alone

    # The audit topic is read like any topic: a principal refused READ cannot.
    hide = AclBinding(ResourceType.TOPIC, AUDIT_TOPIC, ResourcePatternType.LITERAL,
                      "User:ANONYMOUS", "*", AclOperation.READ, AclPermissionType.DENY)  # fmt: skip
    for future in admin.create_acls([hide]).values():
        future.result(10)
    with pytest.raises(KafkaException) as refused:
        read_json_topic(broker.bootstrap, AUDIT_TOPIC)
    assert refused.value.args[0].code() == 29  # TOPIC_AUTHORIZATION_FAILED
    asked = audit_cli("events", broker.bootstrap, "--timeout", "10")
    assert asked.returncode == 2 and "TOPIC_AUTHORIZATION_FAILED" in asked.stderr, asked.stderr


def test_produce_to_the_internal_audit_topics_is_refused(
    start: Callable[..., InProcessBroker],
) -> None:
    broker = start()
    wire = Wire(broker.port)
    try:
        response = wire.request(3, 12, topics=None, allow_auto_topic_creation=False,
                                include_topic_authorized_operations=False)  # fmt: skip
        internal = {t.name for t in response.topics if t.is_internal}
        assert {AUDIT_TOPIC, RECEIPTS_TOPIC} <= internal
        from conformance.wire import encode_batch
        from conformance.wire import produce as produce_raw

        for topic in (AUDIT_TOPIC, RECEIPTS_TOPIC):
            refused = produce_raw(wire, topic, encode_batch([b"forged"]), partition=0)
            assert refused.error_code == 17  # INVALID_TOPIC_EXCEPTION, as __consumer_offsets
        # A client calling itself a broker, with no authorizer: no other broker is
        # registered here, so no broker's client id writes the audit trail.
        for claimed in ("broker-1", "broker-2"):
            with Wire(broker.port, claimed) as as_broker:
                forged = produce_raw(as_broker, AUDIT_TOPIC, encode_batch([b"forged"]))
            assert forged.error_code == 17, claimed
    finally:
        wire.close()


def test_the_audit_trail_cannot_be_deleted(start: Callable[..., InProcessBroker]) -> None:
    """DeleteTopics of the audit topics answers TOPIC_DELETION_DISABLED (as Kafka answers
    when deletion is off) and both stay: no client erases the record of what it did."""
    broker = start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.delete_topics([AUDIT_TOPIC, RECEIPTS_TOPIC], operation_timeout=10)
    for topic, future in futures.items():
        with pytest.raises(KafkaException) as refused:
            future.result(15)
        error = refused.value.args[0]
        assert error.name() == "TOPIC_DELETION_DISABLED", (topic, error)
    listed = admin.list_topics(timeout=10).topics
    assert AUDIT_TOPIC in listed and RECEIPTS_TOPIC in listed


def create_topics(bootstrap: str, names: list[str], timeout_s: float = 10) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=1) for n in names], request_timeout=timeout_s
    )
    for future in futures.values():
        future.result(timeout_s + 5)


# A flusher that does not run during the test: the buffer only fills.
STALLED_SINK = {"contextplane.audit.flush.interval.ms": "600000"}


def test_a_full_audit_buffer_fails_open_by_default(
    start: Callable[..., InProcessBroker],
) -> None:
    broker = start(**STALLED_SINK, **{"contextplane.audit.buffer.records": "2"})
    create_topics(broker.bootstrap, [f"t{i}" for i in range(5)])
    sink = broker.broker.audit_sink  # type: ignore[union-attr]
    assert sink is not None
    assert sink.dropped == 3  # five changes, two kept
    assert sink.refused == 0
    assert "audit buffer full (2 records)" in broker.log_tail(200)
    create_topics(broker.bootstrap, ["after"])  # requests go on
    assert sink.dropped == 4


def test_a_full_audit_buffer_fails_closed_when_set(
    start: Callable[..., InProcessBroker],
) -> None:
    broker = start(
        **STALLED_SINK,
        **{
            "contextplane.audit.buffer.records": "1",
            "contextplane.audit.overflow.policy": "fail-closed",
        },
    )
    create_topics(broker.bootstrap, ["first"])  # its record fills the buffer
    with pytest.raises(KafkaException):
        create_topics(broker.bootstrap, ["second"], timeout_s=3)
    sink = broker.broker.audit_sink  # type: ignore[union-attr]
    assert sink is not None and sink.refused >= 1
    assert "second" not in broker.broker.topics.topics()  # type: ignore[union-attr]
    broker.call(sink.flush())  # the sink catches up: requests are served again
    create_topics(broker.bootstrap, ["third"])


def test_fail_closed_refuses_a_request_whose_own_records_overflow_the_buffer(
    start: Callable[..., InProcessBroker],
) -> None:
    """A Produce whose own records overflow the buffer: its denials (one record for all
    30 denied topics) take the buffer's last place, and the audited write to `orders` in
    the same request must not land unrecorded."""
    from conformance import wire
    from tests.support.rawclient import RawClient

    broker = start(
        **STALLED_SINK,
        **AUTHORIZER,
        **{
            # CreateTopics and CreateAcls take two places, the Produce's denials the last.
            "contextplane.audit.buffer.records": "3",
            "contextplane.audit.overflow.policy": "fail-closed",
            "contextplane.audit.allowed.topics": "orders",
        },
    )
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("orders", 1)])["orders"].result(10)
    deny = AclBinding(
        ResourceType.TOPIC,
        "nope-",
        ResourcePatternType.PREFIXED,
        "User:ANONYMOUS",
        "*",
        AclOperation.WRITE,
        AclPermissionType.DENY,
    )
    for future in admin.create_acls([deny]).values():
        future.result(10)
    sink = broker.broker.audit_sink  # type: ignore[union-attr]
    assert sink is not None and sink.dropped == 0
    topics = [f"nope-{i}" for i in range(30)] + ["orders"]
    batch = wire.encode_batch([b"unrecorded"])
    with RawClient(broker.bootstrap) as client:
        client.send(
            0, 9, transactional_id=None, acks=-1, timeout=10000,
            topic_data=[
                {"name": t, "partition_data": [{"index": 0, "records": batch}]} for t in topics
            ],
        )  # fmt: skip
        assert client.closed_by_broker(10)
    assert sink.dropped > 0
    partition = broker.broker.storage.partitions[("orders", 0)]  # type: ignore[union-attr]
    assert partition.next_offset == 0, "the write landed with its audit record dropped"


def test_a_consumer_seeking_to_1000_offsets_gets_receipts_of_at_most_64_ranges(
    start: Callable[..., InProcessBroker],
) -> None:
    """A raw-wire consumer fetching 1,000 non-adjoining offsets (one batch each): one
    receipt per window, at most 64 ranges each, marked coarse once ranges were merged,
    and every offset returned is named by a receipt (over-reporting, never under)."""
    broker = start(**{"contextplane.audit.read.receipts.window.ms": "2000"})
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.num.messages": 1}
    )
    for i in range(2_100):
        producer.produce("seeks", value=f"m{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    returned: list[tuple[int, int]] = []
    with RawClient(broker.bootstrap, client_id="seeker") as client:
        offset = 0
        while len(returned) < 1_000:
            [partition] = fetch_partitions(client, "seeks", {0: offset}, partition_max_bytes=1)
            span = returned_range(offset, bytes(partition.records or b""))
            assert span is not None, f"nothing returned at {offset}"
            returned.append(span)
            offset = span[1] + 2  # skip one: the next read does not adjoin this one

    def receipts() -> list[dict[str, Any]]:
        found = [
            e["data"]
            for e in read_json_topic(broker.bootstrap, RECEIPTS_TOPIC)
            if e["data"].get("topic") == "seeks"
        ]
        ranges = [r for receipt in found for r in receipt.get("ranges", [])]
        covered = all(any(a <= low and high <= b for a, b in ranges) for low, high in returned)
        return found if covered else []

    found = wait_until(receipts, 30, "receipts covering every offset returned")
    assert len(found) < 100  # one per window, not one per seek
    assert all(len(receipt["ranges"]) <= 64 for receipt in found)
    assert any(receipt["coarse"] for receipt in found)
