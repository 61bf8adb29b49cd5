"""Broker-side schema id validation with real clients: a broker, `contextplane registry`
as a process writing `_schemas` through it, confluent-kafka's serializers producing to
validating topics, and raw batches for what no serializer would send. A refused batch
answers INVALID_RECORD with a record error per offending record and appends nothing."""

from __future__ import annotations

import json
import re
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    record_subject_name_strategy,
    topic_record_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from conformance import wire
from conformance.wire import Rec
from contextplane.console.metrics import BrokerMetrics
from contextplane.protocol.error_codes import ErrorCode
from tests.hostile.support import consume_values
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.registry import RegistryProcess
from tests.support.wait import wait_until

VALIDATING = {"confluent.value.schema.validation": "true"}
ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}],
}
ORDER_V2 = dict(ORDER, fields=[*ORDER["fields"], {"name": "note", "type": "string", "default": ""}])
CUSTOMER = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Customer",
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
}


@pytest.fixture
def registry(broker: InProcessBroker, tmp_path: Path) -> Iterator[RegistryProcess]:
    running = RegistryProcess(broker.bootstrap, tmp_path / "registry.log").start()
    yield running
    running.stop()


@pytest.fixture
def client(broker: InProcessBroker) -> Iterator[RawClient]:
    with RawClient(broker.bootstrap) as raw:
        yield raw


def create(client: RawClient, topic: str, configs: dict[str, str]) -> None:
    result = wire.create_topics(client, [{"name": topic, "configs": configs}])
    assert result.topics[0].error_code == 0, result
    assert wire.wait_for_topic(client, topic, 1)


def prefixed(schema_id: int, body: bytes = b"payload") -> bytes:
    return struct.pack(">bI", 0, schema_id) + body


def produce(client: RawClient, topic: str, records: list[Rec], compression: str = "none") -> Any:
    return wire.produce(client, topic, wire.encode_batch(records, compression=compression))


def refused(part: Any) -> list[tuple[int, str]]:
    """The record errors of a refused batch (which must be INVALID_RECORD)."""
    assert part.error_code == ErrorCode.invalid_record, part
    assert part.base_offset == -1
    return [(e.batch_index, e.batch_index_error_message) for e in part.record_errors]


def end_offset(client: RawClient, topic: str) -> int:
    return int(wire.list_offsets(client, topic, -1).offset)  # LATEST


def rejections(broker: InProcessBroker) -> dict[tuple[str, str], int]:
    """contextplane_schema_validation_rejected_total's series, as /metrics writes them."""
    assert broker.broker is not None
    services = broker.broker.pipeline.services
    text = broker.call(BrokerMetrics(services).exposition()).decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("contextplane_schema_validation_rejected_total{"):
            labels, count = line.split("} ")
            topic = labels.split('topic="')[1].split('"')[0]
            reason = labels.split('reason="')[1].split('"')[0]
            found[(topic, reason)] = int(float(count))
    return found


def test_serialized_records_pass_and_unregistered_ones_are_refused(
    broker: InProcessBroker, registry: RegistryProcess, client: RawClient
) -> None:
    create(client, "orders", VALIDATING)
    registry_client = SchemaRegistryClient({"url": registry.url})
    serializer = AvroSerializer(registry_client, json.dumps(ORDER))
    context = SerializationContext("orders", MessageField.VALUE)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    # The serializer registers the schema as it serializes: the id is a moment old.
    first = serializer({"id": "o-1"}, context)
    producer.produce("orders", value=first)
    producer.produce("orders", value=serializer({"id": "o-2"}, context))
    assert producer.flush(30) == 0
    order_id = registry_client.get_latest_version("orders-value").schema_id

    other_id = registry_client.register_schema(
        "payments-value", Schema(json.dumps(dict(ORDER, name="Payment")), "AVRO")
    )
    assert other_id != order_id
    part = produce(
        client,
        "orders",
        [
            Rec(prefixed(order_id)),
            Rec(b"no prefix at all"),
            Rec(prefixed(9999)),
            Rec(prefixed(other_id)),
            Rec(None, key=b"tombstone"),  # a null value passes
            # confluent-kafka 2.x's header_schema_id_serializer: a GUID, which the
            # registry does not give.
            Rec(b"avro", headers=[("__value_schema_id", b"\x01" + bytes(16))]),
        ],
    )
    assert refused(part) == [
        (1, "Record has no schema id"),
        (2, "Schema id 9999 is not registered for subject orders-value"),
        (3, f"Schema id {other_id} is not registered for subject orders-value"),
        (5, "Record names its schema by a GUID header; schema GUIDs are not supported"),
    ]
    assert part.error_message.startswith(
        "One or more records have been rejected due to 4 record errors in total"
    )
    assert "Schema id 9999 is not registered for subject orders-value" in part.error_message

    # A soft-deleted version's id is no longer live under the subject.
    v2 = registry_client.register_schema("orders-value", Schema(json.dumps(ORDER_V2), "AVRO"))
    assert produce(client, "orders", [Rec(prefixed(v2))]).error_code == 0
    registry_client.delete_version("orders-value", 2)
    assert refused(produce(client, "orders", [Rec(prefixed(v2))])) == [
        (0, f"Schema id {v2} is not registered for subject orders-value")
    ]
    # Compressed batches are read within the bounds validation applies.
    for codec in ("gzip", "lz4", "zstd", "snappy"):
        batch = [Rec(prefixed(order_id)), Rec(prefixed(order_id)), Rec(b"x" * 100)]
        assert refused(produce(client, "orders", batch, codec)) == [(2, "Record has no schema id")]
    assert produce(client, "orders", [Rec(prefixed(order_id))], "zstd").error_code == 0

    # librdkafka fails the delivery with INVALID_RECORD.
    results: list[Any] = []
    producer.produce("orders", value=b"raw", on_delivery=lambda e, _m: results.append(e))
    producer.flush(30)
    assert [e.code() for e in results] == [KafkaError.INVALID_RECORD]

    # Nothing of a refused batch was appended, not even its good records.
    assert end_offset(client, "orders") == 4
    values = consume_values(broker.bootstrap, "orders", 4)
    assert values == [first, values[1], prefixed(v2), prefixed(order_id)]
    assert rejections(broker) == {
        ("orders", "no_schema_id"): 2 + 4 + 1,
        ("orders", "not_registered"): 2 + 1,
    }


def test_a_schema_registered_just_before_the_produce_is_accepted(
    broker: InProcessBroker, registry: RegistryProcess, client: RawClient
) -> None:
    create(client, "fresh", VALIDATING)
    registry_client = SchemaRegistryClient({"url": registry.url})
    for version in range(1, 6):
        schema = dict(ORDER, fields=[{"name": f"f{version}", "type": "int", "default": 0}])
        schema_id = registry_client.register_schema("fresh-value", Schema(json.dumps(schema)))
        part = produce(client, "fresh", [Rec(prefixed(schema_id))])
        assert part.error_code == 0, part


def test_json_records_under_the_record_name_strategy(
    broker: InProcessBroker, registry: RegistryProcess, client: RawClient
) -> None:
    create(
        client,
        "customers",
        {
            **VALIDATING,
            "confluent.value.subject.name.strategy": (
                "io.confluent.kafka.serializers.subject.RecordNameStrategy"
            ),
        },
    )
    registry_client = SchemaRegistryClient({"url": registry.url})
    serializer = JSONSerializer(
        json.dumps(CUSTOMER),
        registry_client,
        conf={"subject.name.strategy": record_subject_name_strategy},
    )
    context = SerializationContext("customers", MessageField.VALUE)
    value = serializer({"name": "ada"}, context)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    producer.produce("customers", value=value)
    assert producer.flush(30) == 0
    customer_id = registry_client.get_latest_version("Customer").schema_id

    # Under TopicNameStrategy's subject, not the record's: refused.
    topic_id = registry_client.register_schema(
        "customers-value", Schema(json.dumps(dict(CUSTOMER, title="Shopper")), "JSON")
    )
    assert refused(
        produce(client, "customers", [Rec(prefixed(customer_id)), Rec(prefixed(topic_id))])
    ) == [(1, f"Schema id {topic_id} is not registered for subject Shopper")]
    assert refused(produce(client, "customers", [Rec(prefixed(4242))])) == [
        (0, "Schema id 4242 is not registered")
    ]
    assert end_offset(client, "customers") == 1
    assert consume_values(broker.bootstrap, "customers", 1) == [value]


def ledger_classes() -> tuple[Any, Any]:
    """acme.Order and acme.Refund, two messages of one .proto built at run time."""
    descriptor = descriptor_pb2.FileDescriptorProto(
        name="acme/ledger.proto", package="acme", syntax="proto3"
    )
    for name in ("Order", "Refund"):
        message = descriptor.message_type.add(name=name)
        message.field.add(name="id", number=1, type=3, label=1)  # int64
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor)
    return tuple(
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"acme.{name}"))
        for name in ("Order", "Refund")
    )


def test_protobuf_messages_under_the_topic_record_name_strategy(
    broker: InProcessBroker, registry: RegistryProcess, client: RawClient
) -> None:
    create(
        client,
        "ledger",
        {**VALIDATING, "confluent.value.subject.name.strategy": "TopicRecordNameStrategy"},
    )
    registry_client = SchemaRegistryClient({"url": registry.url})
    context = SerializationContext("ledger", MessageField.VALUE)
    conf = {
        "use.deprecated.format": False,
        "subject.name.strategy": topic_record_subject_name_strategy,
    }
    order, refund = ledger_classes()
    # The second message of the file: its payload names it by its index path [1].
    values = [
        ProtobufSerializer(order, registry_client, conf)(order(id=1), context),
        ProtobufSerializer(refund, registry_client, conf)(refund(id=2), context),
    ]
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for value in values:
        producer.produce("ledger", value=value)
    assert producer.flush(30) == 0
    assert sorted(registry_client.get_subjects()) == ["ledger-acme.Order", "ledger-acme.Refund"]
    schema_id = registry_client.get_latest_version("ledger-acme.Refund").schema_id
    # A second version only under acme.Order's subject: the path decides the subject.
    wider = registry_client.register_schema(
        "ledger-acme.Order",
        Schema(
            'syntax = "proto3"; package acme; message Order { int64 id = 1; string note = 2; }'
            " message Refund { int64 id = 1; }",
            "PROTOBUF",
        ),
    )
    assert wider != schema_id
    assert produce(client, "ledger", [Rec(prefixed(wider, b"\x00"))]).error_code == 0
    assert refused(produce(client, "ledger", [Rec(prefixed(wider, b"\x02\x02"))])) == [
        (0, f"Schema id {wider} is not registered for subject ledger-acme.Refund")
    ]
    # A path to a third message names no record of the schema.
    assert refused(produce(client, "ledger", [Rec(prefixed(schema_id, b"\x02\x04"))])) == [
        (0, f"Schema id {schema_id} names no record for TopicRecordNameStrategy")
    ]
    # Indexes that do not read name no message either (they once fell back to the first):
    # none at all, cut short, a varint that never ends, 2^31 of them declared.
    for path in (b"", b"\x04\x02", b"\xff" * 8, b"\x80\x80\x80\x80\x10"):
        assert refused(produce(client, "ledger", [Rec(prefixed(wider, path))])) == [
            (0, f"Schema id {wider} names no record for TopicRecordNameStrategy")
        ], path
    assert consume_values(broker.bootstrap, "ledger", 3) == [*values, prefixed(wider, b"\x00")]


def test_keys_are_validated_on_their_own(
    broker: InProcessBroker, registry: RegistryProcess, client: RawClient
) -> None:
    create(client, "keyed", {"confluent.key.schema.validation": "true"})
    registry_client = SchemaRegistryClient({"url": registry.url})
    key_id = registry_client.register_schema("keyed-key", Schema('"string"', "AVRO"))
    value_id = registry_client.register_schema("keyed-value", Schema('"long"', "AVRO"))
    part = produce(
        client,
        "keyed",
        [
            Rec(b"any value", key=prefixed(key_id)),
            Rec(b"a null key passes"),
            Rec(b"v", key=prefixed(value_id)),
            Rec(b"v", key=b"plain"),
        ],
    )
    assert refused(part) == [
        (2, f"Schema id {value_id} is not registered for subject keyed-key"),
        (3, "Record has no schema id"),
    ]
    good = [Rec(b"any value", key=prefixed(key_id)), Rec(b"a null key passes")]
    assert produce(client, "keyed", good).error_code == 0
    assert end_offset(client, "keyed") == 2


def test_the_setting_takes_effect_when_altered_and_is_described(
    broker: InProcessBroker, registry: RegistryProcess, client: RawClient
) -> None:
    create(client, "plain", {})
    assert produce(client, "plain", [Rec(b"not serialized")]).error_code == 0

    name = "confluent.value.schema.validation"
    set_on = wire.incremental_alter_configs(client, "plain", [(name, 0, "true")])
    assert set_on.error_code == 0, set_on
    assert refused(produce(client, "plain", [Rec(b"not serialized")])) == [
        (0, "Record has no schema id")
    ]
    described = wire.describe_configs(client, wire.TOPIC_RESOURCE, "plain", [name])
    (entry,) = described.configs
    assert (entry.name, entry.value, entry.config_source) == (name, "true", 1)  # TOPIC_CONFIG

    # AlterConfigs replaces the topic's configs: validation is off again.
    assert wire.alter_configs(client, "plain", {name: "false"}).error_code == 0
    assert produce(client, "plain", [Rec(b"not serialized")]).error_code == 0
    assert wire.alter_configs(client, "plain", {}).error_code == 0
    described = wire.describe_configs(client, wire.TOPIC_RESOURCE, "plain")
    shown = {c.name: (c.value, c.config_source) for c in described.configs}
    assert shown[name] == ("false", 5)  # DEFAULT_CONFIG
    assert shown["confluent.value.subject.name.strategy"] == (
        "io.confluent.kafka.serializers.subject.TopicNameStrategy",
        5,
    )
    refusal = wire.incremental_alter_configs(
        client, "plain", [("confluent.key.subject.name.strategy", 0, "Mine")]
    )
    assert refusal.error_code == ErrorCode.invalid_config
    assert end_offset(client, "plain") == 2
    assert consume_values(broker.bootstrap, "plain", 2) == [b"not serialized"] * 2


def test_large_and_expanding_batches_are_judged_in_the_pool(
    broker: InProcessBroker, registry: RegistryProcess, client: RawClient
) -> None:
    create(client, "bulk", VALIDATING)
    registry_client = SchemaRegistryClient({"url": registry.url})
    schema_id = registry_client.register_schema("bulk-value", Schema(json.dumps(ORDER)))
    # 3,000 records: past the records read inline; compressed, 3 MB decompressed: past the
    # bytes decompressed inline too.
    for codec, size in (("none", 200), ("zstd", 1000)):
        good = Rec(prefixed(schema_id, b"v" * size))
        records = [good] * 3000
        records[2999] = Rec(b"v" * size)
        assert refused(produce(client, "bulk", records, codec)) == [
            (2999, "Record has no schema id")
        ]
        assert produce(client, "bulk", [good] * 3000, codec).error_code == 0
    assert end_offset(client, "bulk") == 6000


def test_validation_with_the_registry_in_the_brokers_process(tmp_path: Path) -> None:
    """`contextplane up --registry-port`: the registry writes `_schemas` from inside the
    broker's process, through its listener, and the broker validates against it."""
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "contextplane.cli.main", "up", "--data-dir", str(tmp_path / "d")]
            + ["--port", "0", "--registry-port", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def ports() -> tuple[int, int] | None:
            assert process.poll() is None, log_path.read_text()
            text = log_path.read_text()
            broker = re.search(r"broker listening on \S+:(\d+)", text)
            registry = re.search(r"schema registry ready on \S+:(\d+)", text)
            return (int(broker.group(1)), int(registry.group(1))) if broker and registry else None

        broker_port, registry_port = wait_until(ports, 60, "the broker and its registry")
        registry_client = SchemaRegistryClient({"url": f"http://127.0.0.1:{registry_port}"})
        with RawClient(f"127.0.0.1:{broker_port}") as client:
            create(client, "events", VALIDATING)
            schema_id = registry_client.register_schema("events-value", Schema(json.dumps(ORDER)))
            assert produce(client, "events", [Rec(prefixed(schema_id))]).error_code == 0
            assert refused(produce(client, "events", [Rec(prefixed(schema_id + 1))])) == [
                (0, f"Schema id {schema_id + 1} is not registered for subject events-value")
            ]
            assert end_offset(client, "events") == 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log_path.read_text()


def test_past_its_bound_the_catalog_refuses_rather_than_guess(
    broker: InProcessBroker, registry: RegistryProcess, client: RawClient
) -> None:
    assert broker.broker is not None
    broker.broker.pipeline.services.schemas.ids_max = 2
    create(client, "bounded", VALIDATING)
    registry_client = SchemaRegistryClient({"url": registry.url})
    first = registry_client.register_schema("bounded-value", Schema('"string"', "AVRO"))
    assert produce(client, "bounded", [Rec(prefixed(first))]).error_code == 0
    registry_client.register_schema("other-value", Schema('"long"', "AVRO"))
    registry_client.register_schema("third-value", Schema('"int"', "AVRO"))
    message = "Schema validation is unavailable: _schemas holds more than 2 schema ids"
    assert refused(produce(client, "bounded", [Rec(prefixed(first))])) == [(0, message)]
    assert rejections(broker) == {("bounded", "unavailable"): 1}
    # Topics without validation go on as before.
    create(client, "free", {})
    assert produce(client, "free", [Rec(b"anything")]).error_code == 0
