"""JSON Schema, Protobuf and references against a broker, with confluent-kafka's own
clients: the JSON serializer and deserializer around a real produce and fetch, with a
`$ref` to a schema of another subject carried as a reference; the Protobuf serializer and
deserializer the same way; an Avro record whose type lives in another subject; the 42206
refusal to delete what is referenced; a restarted registry rebuilding them from
`_schemas`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import (
    Schema,
    SchemaReference,
    SchemaRegistryClient,
    SchemaRegistryError,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from tests.support.inprocess import InProcessBroker
from tests.support.registry import RegistryProcess

ADDRESS = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
    "required": ["street"],
}
CUSTOMER = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Customer",
    "type": "object",
    "properties": {"name": {"type": "string"}, "home": {"$ref": "address.json"}},
    "required": ["name", "home"],
}
ADDRESS_REFERENCE = SchemaReference("address.json", "address", 1)


@pytest.fixture
def registry(broker: InProcessBroker, tmp_path: Path) -> Iterator[RegistryProcess]:
    running = RegistryProcess(broker.bootstrap, tmp_path / "registry.log").start()
    yield running
    running.stop()


def customer_schema() -> Schema:
    return Schema(json.dumps(CUSTOMER), "JSON", [ADDRESS_REFERENCE])


def read_all(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "readers", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    read: list[bytes] = []
    try:
        for _ in range(300):
            message = consumer.poll(0.1)
            if message is not None and not message.error():
                read.append(message.value())
            if len(read) == count:
                break
    finally:
        consumer.close()
    return read


def test_json_records_with_a_referenced_schema_round_trip_through_the_broker(
    broker: InProcessBroker, registry: RegistryProcess
) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    address_id = client.register_schema("address", Schema(json.dumps(ADDRESS), "JSON"))
    serializer = JSONSerializer(customer_schema(), client)
    context = SerializationContext("customers", MessageField.VALUE)
    customers: list[dict[str, Any]] = [
        {"name": "ada", "home": {"street": "1 Analytical Way", "city": "London"}},
        {"name": "alan", "home": {"street": "2 Bletchley Park"}},
    ]
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for customer in customers:
        producer.produce("customers", value=serializer(customer, context))
    assert producer.flush(30) == 0
    # The serializer validated against the schema and its reference: a customer whose
    # address lacks the street the referenced schema requires is refused.
    with pytest.raises(Exception, match="street"):
        serializer({"name": "bad", "home": {"city": "nowhere"}}, context)

    latest = client.get_latest_version("customers-value")
    assert latest.schema.schema_type == "JSON"
    assert [(r.name, r.subject, r.version) for r in latest.schema.references] == [
        ("address.json", "address", 1)
    ]
    assert client.get_referenced_by("address", 1) == [latest.schema_id]

    values = read_all(broker.bootstrap, "customers", len(customers))
    assert all(v[:5] == b"\x00" + latest.schema_id.to_bytes(4, "big") for v in values)
    deserializer = JSONDeserializer(
        None, schema_registry_client=SchemaRegistryClient({"url": registry.url})
    )
    assert [deserializer(value, context) for value in values] == customers

    with pytest.raises(SchemaRegistryError) as refused:
        client.delete_version("address", 1)
    assert (refused.value.http_status_code, refused.value.error_code) == (422, 42206)
    assert client.get_schema(address_id).schema_type == "JSON"


def test_a_restarted_registry_rebuilds_json_schemas_and_references(
    registry: RegistryProcess,
) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    address_id = client.register_schema("address", Schema(json.dumps(ADDRESS), "JSON"))
    customer_id = client.register_schema("customers-value", customer_schema())
    client.set_compatibility("customers-value", "FULL")
    assert registry.stop() == 0

    registry.start()
    again = SchemaRegistryClient({"url": registry.url})
    assert again.register_schema("customers-value", customer_schema()) == customer_id
    assert again.get_referenced_by("address", 1) == [customer_id]
    looked_up = again.lookup_schema("customers-value", customer_schema())
    assert (looked_up.schema_id, looked_up.version) == (customer_id, 1)
    assert again.get_schema(address_id).schema_str == json.dumps(ADDRESS, separators=(",", ":"))
    # FULL: a new optional property in an open model is refused (Confluent's rule).
    wider = {**CUSTOMER, "properties": {**CUSTOMER["properties"], "vip": {"type": "boolean"}}}
    assert not again.test_compatibility(
        "customers-value", Schema(json.dumps(wider), "JSON", [ADDRESS_REFERENCE])
    )


def order_class(extra_field: bool = False) -> Any:
    """A Protobuf message class built at run time (no generated code): acme.Order."""
    descriptor = descriptor_pb2.FileDescriptorProto(
        name="acme/order.proto", package="acme", syntax="proto3"
    )
    order = descriptor.message_type.add(name="Order")
    order.field.add(name="id", number=1, type=3, label=1)  # int64
    order.field.add(name="note", number=2, type=9, label=1)
    if extra_field:
        order.field.add(name="lines", number=3, type=5, label=3)  # repeated int32
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("acme.Order"))


def test_protobuf_records_round_trip_through_the_broker(
    broker: InProcessBroker, registry: RegistryProcess
) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    order = order_class()
    serializer = ProtobufSerializer(order, client, {"use.deprecated.format": False})
    context = SerializationContext("orders", MessageField.VALUE)
    orders = [order(id=1, note="first"), order(id=2, note="second")]
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for each in orders:
        producer.produce("orders", value=serializer(each, context))
    assert producer.flush(30) == 0

    latest = client.get_latest_version("orders-value")
    assert latest.schema.schema_type == "PROTOBUF"
    # Stored as .proto text, though the serializer sent a base64 descriptor.
    assert "message Order" in latest.schema.schema_str
    values = read_all(broker.bootstrap, "orders", len(orders))
    assert all(v[:5] == b"\x00" + latest.schema_id.to_bytes(4, "big") for v in values)
    deserializer = ProtobufDeserializer(order, {"use.deprecated.format": False})
    assert [deserializer(value, context) for value in values] == orders

    # A compatible change (a field added) registers a second version; changing a field
    # to another wire group is refused.
    wider = order_class(extra_field=True)
    ProtobufSerializer(wider, client, {"use.deprecated.format": False})(wider(id=3), context)
    assert client.get_versions("orders-value") == [1, 2]
    changed = latest.schema.schema_str.replace("int64 id", "string id")
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema("orders-value", Schema(changed, "PROTOBUF"))
    assert refused.value.error_code == 409


AVRO_ADDRESS = {
    "type": "record",
    "name": "Address",
    "namespace": "acme",
    "fields": [{"name": "street", "type": "string"}],
}
AVRO_USER = {
    "type": "record",
    "name": "User",
    "namespace": "acme",
    "fields": [{"name": "name", "type": "string"}, {"name": "home", "type": "acme.Address"}],
}


def test_avro_records_with_a_referenced_type_round_trip_through_the_broker(
    broker: InProcessBroker, registry: RegistryProcess
) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    client.register_schema("address", Schema(json.dumps(AVRO_ADDRESS), "AVRO"))
    user = Schema(json.dumps(AVRO_USER), "AVRO", [SchemaReference("acme.Address", "address", 1)])
    serializer = AvroSerializer(client, user)
    context = SerializationContext("users", MessageField.VALUE)
    users = [{"name": "ada", "home": {"street": "1 Analytical Way"}}]
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for each in users:
        producer.produce("users", value=serializer(each, context))
    assert producer.flush(30) == 0
    latest = client.get_latest_version("users-value")
    assert [(r.name, r.subject, r.version) for r in latest.schema.references] == [
        ("acme.Address", "address", 1)
    ]
    values = read_all(broker.bootstrap, "users", len(users))
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry.url}))
    assert [deserializer(value, context) for value in values] == users
