"""The schema-validation dead-letter topic with real clients: a broker, the registry as a
process, confluent-kafka producing and consuming. A batch refused on a topic that names a
dead-letter topic is appended there with its records' keys, values, headers and
timestamps plus three headers saying where it came from and why; the producer is
answered success (offset -1) once it is durable there, and the original INVALID_RECORD
when it cannot be written or the batch is idempotent."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conformance import wire
from conformance.wire import Rec
from contextplane.console.metrics import BrokerMetrics
from contextplane.protocol.error_codes import ErrorCode
from tests.e2e.test_schema_validation import (
    ORDER,
    VALIDATING,
    create,
    end_offset,
    prefixed,
    produce,
    refused,
    rejections,
)
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.registry import RegistryProcess

DLQ = "contextplane.schema.validation.dlq.topic"
STAMP = 1_700_000_123_000


@pytest.fixture
def registry(broker: InProcessBroker, tmp_path: Path) -> Iterator[RegistryProcess]:
    running = RegistryProcess(broker.bootstrap, tmp_path / "registry.log").start()
    yield running
    running.stop()


@pytest.fixture
def client(broker: InProcessBroker) -> Iterator[RawClient]:
    with RawClient(broker.bootstrap) as raw:
        yield raw


def consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list[Any]:
    """Messages of partition 0 from offset 0 as librdkafka reads them."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"dlq-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    found: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                found.append(message)
    finally:
        consumer.close()
    return found


def dead_letter_counts(broker: InProcessBroker) -> dict[tuple[str, str], int]:
    """contextplane_schema_validation_dead_lettered_total's series on /metrics."""
    assert broker.broker is not None
    text = broker.call(BrokerMetrics(broker.broker.pipeline.services).exposition()).decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("contextplane_schema_validation_dead_lettered_total{"):
            labels, count = line.split("} ")
            topic = labels.split('topic="')[1].split('"')[0]
            outcome = labels.split('outcome="')[1].split('"')[0]
            found[(topic, outcome)] = int(float(count))
    return found


def test_a_refused_batch_lands_in_the_dead_letter_topic_and_the_producer_succeeds(
    broker: InProcessBroker, registry: RegistryProcess, client: RawClient
) -> None:
    create(client, "orders-dlq", {})
    create(client, "orders", {**VALIDATING, DLQ: "orders-dlq"})
    registry_client = SchemaRegistryClient({"url": registry.url})
    serializer = AvroSerializer(registry_client, json.dumps(ORDER))
    context = SerializationContext("orders", MessageField.VALUE)
    valid = serializer({"id": "o-1"}, context)
    order_id = registry_client.get_latest_version("orders-value").schema_id

    # confluent-kafka (not idempotent by default): both deliveries succeed.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    reports: list[tuple[Any, int]] = []

    def delivered(error: Any, message: Any) -> None:
        reports.append((error, message.offset()))

    producer.produce("orders", value=valid, on_delivery=delivered)
    producer.flush(30)
    producer.produce(
        "orders",
        key=b"k-1",
        value=b"not avro",
        headers=[("trace", b"t-1")],
        timestamp=STAMP,
        on_delivery=delivered,
    )
    assert producer.flush(30) == 0
    assert reports[0] == (None, 0)
    assert reports[1] == (None, None)  # delivered, at no offset of "orders"

    # A raw lz4 batch with a good, a bad and a tombstone record: answered success with
    # offset -1, the whole batch in the dead-letter topic (Kafka batches are atomic).
    part = produce(
        client,
        "orders",
        [
            Rec(prefixed(order_id), key=b"k-2", timestamp=STAMP + 1),
            Rec(prefixed(9999), key=b"k-3", headers=[("h", None)], timestamp=STAMP + 2),
            Rec(None, key=b"k-4", timestamp=STAMP + 3),
        ],
        "lz4",
    )
    assert (part.error_code, part.base_offset, list(part.record_errors)) == (0, -1, [])

    # Only the valid record reached the topic.
    assert end_offset(client, "orders") == 1
    assert [m.value() for m in consume(broker.bootstrap, "orders", 1)] == [valid]

    # The batch keeps its codec and loses its producer id.
    fetched = wire.decode_batches(wire.fetch_one(client, "orders-dlq", 1).records)
    assert [(b.codec, b.producer_id, b.base_offset) for b in fetched] == [("lz4", -1, 1)]
    dead = consume(broker.bootstrap, "orders-dlq", 4)
    assert [(m.key(), m.value(), m.timestamp()[1]) for m in dead] == [
        (b"k-1", b"not avro", STAMP),
        (b"k-2", prefixed(order_id), STAMP + 1),
        (b"k-3", prefixed(9999), STAMP + 2),
        (b"k-4", None, STAMP + 3),
    ]
    where = [
        ("__contextplane.dlq.topic", b"orders"),
        ("__contextplane.dlq.partition", b"0"),
    ]
    assert [m.headers() for m in dead] == [
        [("trace", b"t-1"), *where, ("__contextplane.dlq.reason", b"Record has no schema id")],
        [*where, ("__contextplane.dlq.reason", b"Another record of its batch was refused")],
        [
            ("h", None),
            *where,
            (
                "__contextplane.dlq.reason",
                b"Schema id 9999 is not registered for subject orders-value",
            ),
        ],
        [*where, ("__contextplane.dlq.reason", b"Another record of its batch was refused")],
    ]
    # Refusals are counted as before, and each batch's routing beside them.
    assert rejections(broker) == {
        ("orders", "no_schema_id"): 1,
        ("orders", "not_registered"): 1,
    }
    assert dead_letter_counts(broker) == {("orders", "routed"): 2}


def test_an_idempotent_batch_is_copied_and_still_refused(
    broker: InProcessBroker, registry: RegistryProcess, client: RawClient
) -> None:
    """The producer's sequence cannot skip a batch the partition never took: the refusal
    stands, so its next batch (the same sequence) is accepted."""
    create(client, "ledger-dlq", {})
    create(client, "ledger", {**VALIDATING, DLQ: "ledger-dlq"})
    registry_client = SchemaRegistryClient({"url": registry.url})
    serializer = AvroSerializer(registry_client, json.dumps(ORDER))
    valid = serializer({"id": "l-1"}, SerializationContext("ledger", MessageField.VALUE))
    init = wire.init_producer_id(client)
    assert init.error_code == 0, init
    ids = {"producer_id": init.producer_id, "producer_epoch": init.producer_epoch}

    bad = wire.encode_batch([Rec(b"raw", key=b"k")], base_sequence=0, **ids)
    part = wire.produce(client, "ledger", bad)
    assert refused(part) == [(0, "Record has no schema id")]
    good = wire.encode_batch([Rec(valid)], base_sequence=0, **ids)
    assert wire.produce(client, "ledger", good).error_code == 0

    (copy,) = consume(broker.bootstrap, "ledger-dlq", 1)
    assert (copy.key(), copy.value()) == (b"k", b"raw")
    assert dict(copy.headers())["__contextplane.dlq.reason"] == b"Record has no schema id"
    assert dead_letter_counts(broker) == {("ledger", "copied"): 1}
    assert end_offset(client, "ledger") == 1


def test_a_dead_letter_topic_that_cannot_take_the_batch_leaves_the_refusal(
    broker: InProcessBroker, registry: RegistryProcess, client: RawClient
) -> None:
    create(client, "pay", {**VALIDATING, DLQ: "pay-dlq"})  # pay-dlq does not exist
    assert refused(produce(client, "pay", [Rec(b"raw")])) == [(0, "Record has no schema id")]

    # The dead-letter batch (with its headers) is larger than the topic takes.
    create(client, "pay-dlq", {"max.message.bytes": "120"})
    assert refused(produce(client, "pay", [Rec(b"x" * 40)])) == [(0, "Record has no schema id")]
    # A record that fits is routed.
    assert wire.alter_configs(client, "pay-dlq", {"max.message.bytes": "1000"}).error_code == 0
    part = produce(client, "pay", [Rec(b"x" * 40)])
    assert (part.error_code, part.base_offset) == (0, -1)
    # Decompressed past 100 (message.max.decompression.ratio) times that: not read whole.
    bomb = [Rec(b"x" * 200_000)]
    assert refused(produce(client, "pay", bomb, "zstd")) == [(0, "Record has no schema id")]

    # acks=0: a refusal closes the connection, a routed batch does not.
    assert wire.produce(client, "pay", wire.encode_batch([Rec(b"y")]), acks=0) is None
    assert end_offset(client, "pay-dlq") == 2
    assert end_offset(client, "pay") == 0
    assert dead_letter_counts(broker) == {("pay", "failed"): 3, ("pay", "routed"): 2}


def test_the_dead_letter_config_is_validated_and_described(
    broker: InProcessBroker, client: RawClient
) -> None:
    def creating(name: str, value: str) -> Any:
        result = wire.create_topics(client, [{"name": name, "configs": {DLQ: value}}])
        return result.topics[0]

    itself = creating("loop", "loop")
    assert itself.error_code == ErrorCode.invalid_config
    assert itself.error_message == f"{DLQ}: loop cannot be its own dead-letter topic"
    illegal = creating("t1", "no spaces")
    assert illegal.error_code == ErrorCode.invalid_config
    assert illegal.error_message.startswith(
        f"{DLQ}: Topic name is invalid: 'no spaces' contains one or more characters"
    )
    internal = creating("t1", "__consumer_offsets")
    assert internal.error_code == ErrorCode.invalid_config
    assert internal.error_message == (
        f"{DLQ}: __consumer_offsets is an internal topic, written only by the broker"
    )
    too_long = creating("t1", "x" * 250)
    assert too_long.error_code == ErrorCode.invalid_config
    assert "is longer than the max allowed length 249" in too_long.error_message
    assert "loop" not in {t.name for t in wire.metadata(client, None).topics}

    create(client, "events", {})
    set_to_self = wire.incremental_alter_configs(client, "events", [(DLQ, 0, "events")])
    assert set_to_self.error_code == ErrorCode.invalid_config
    assert "cannot be its own dead-letter topic" in set_to_self.error_message
    assert wire.alter_configs(client, "events", {DLQ: "events"}).error_code == (
        ErrorCode.invalid_config
    )
    set_on = wire.incremental_alter_configs(client, "events", [(DLQ, 0, "events-dlq")])
    assert set_on.error_code == 0, set_on
    (entry,) = wire.describe_configs(client, wire.TOPIC_RESOURCE, "events", [DLQ]).configs
    assert (entry.name, entry.value, entry.config_source) == (DLQ, "events-dlq", 1)
    assert wire.alter_configs(client, "events", {}).error_code == 0
    (entry,) = wire.describe_configs(client, wire.TOPIC_RESOURCE, "events", [DLQ]).configs
    assert (entry.value, entry.config_source) == ("", 5)  # DEFAULT_CONFIG
