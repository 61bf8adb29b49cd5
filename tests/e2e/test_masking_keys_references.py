"""Masking keys and Protobuf schemas with references, with real clients: a broker with a
PLAINTEXT and a SASL/PLAIN listener, the registry as a process, policies written with
`contextplane mask add`. confluent-kafka's AvroSerializer writing keys (subject
`<topic>-key`) whose schema tags `email` PII: copilot's AvroDeserializer reads the key's
email redacted, a plain string key as produced, alice the original keys; with `--keys
clear` copilot gets the keys produced. ProtobufSerializer with a message importing another
.proto (registered as a reference): copilot reads the imported type's tagged field and
its own masked, alice the originals. A `--keys` mode that is not one is refused (exit 2)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.e2e.test_masking import SETTINGS, consume, mask, plaintext, user
from tests.support.inprocess import InProcessBroker
from tests.support.registry import RegistryProcess

KEY_SCHEMA = """{"type": "record", "name": "CustomerKey", "namespace": "crm", "fields": [
  {"name": "account", "type": "string"},
  {"name": "email", "type": "string", "confluent:tags": ["PII"]}]}"""
VALUE_SCHEMA = """{"type": "record", "name": "Order", "namespace": "crm", "fields": [
  {"name": "item", "type": "string"}]}"""
KEYS = [{"account": "acc-1", "email": "ada@example.com"}, {"account": "acc-2", "email": "b@x.org"}]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    running = InProcessBroker(tmp_path_factory.mktemp("maskkeys"), settings=SETTINGS).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def registry(
    broker: InProcessBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    log = tmp_path_factory.mktemp("registry") / "registry.log"
    running = RegistryProcess(plaintext(broker), log).start()
    yield running
    running.stop()


def create(broker: InProcessBroker, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": plaintext(broker)})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(20)


def add_policy(broker: InProcessBroker, name: str, topic: str, *extra: str) -> None:
    arguments = ["add", name, "--principal", "User:copilot", "--topic", topic, "--tag", "PII"]
    assert mask(broker, *arguments, *extra) == 0


def test_avro_keys_are_masked_for_copilot(
    broker: InProcessBroker, registry: RegistryProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = "orders-keyed"
    create(broker, topic)
    client = SchemaRegistryClient({"url": registry.url})
    key_context = SerializationContext(topic, MessageField.KEY)
    value_context = SerializationContext(topic, MessageField.VALUE)
    keys = AvroSerializer(client, KEY_SCHEMA)
    values = AvroSerializer(client, VALUE_SCHEMA)
    producer = Producer({"bootstrap.servers": plaintext(broker), "compression.type": "lz4"})
    produced_keys = [keys(k, key_context) for k in KEYS] + [b"plain-key"]
    for index, key in enumerate(produced_keys):
        producer.produce(topic, values({"item": f"item-{index}"}, value_context), key=key)
    assert producer.flush(20) == 0
    assert client.get_latest_version(f"{topic}-key").schema_id == int.from_bytes(
        produced_keys[0][1:5], "big"
    )
    add_policy(broker, "copilot-keys", topic)
    capsys.readouterr()

    read_keys = AvroDeserializer(client)
    read_values = AvroDeserializer(client)
    masked = consume(user(broker, "copilot"), topic, 3)
    assert [m.offset() for m in masked] == [0, 1, 2]
    assert [read_keys(m.key(), key_context) for m in masked[:2]] == [
        {"account": k["account"], "email": "****"} for k in KEYS
    ]
    assert masked[2].key() == b"plain-key"  # not schema-framed: sent as stored
    assert [read_values(m.value(), value_context)["item"] for m in masked] == [
        "item-0",
        "item-1",
        "item-2",
    ]
    clear = consume(user(broker, "alice"), topic, 3)
    assert [m.key() for m in clear] == produced_keys

    # A mode that is not one: refused, exit 2, the policy in force unchanged.
    arguments = ["add", "copilot-keys", "--principal", "User:copilot", "--topic", topic]
    assert mask(broker, *arguments, "--tag", "PII", "--keys", "all") == 2
    assert "keys 'all' is not one of masked, clear, fail-closed" in capsys.readouterr().err
    # `--keys clear`: the same policy leaves keys as produced.
    add_policy(broker, "copilot-keys", topic, "--keys", "clear")
    assert [m.key() for m in consume(user(broker, "copilot"), topic, 3)] == produced_keys


def customer_class() -> Any:
    """crm.Customer (crm/customer.proto) with `email` tagged PII and a `home` of type
    geo.Address, imported from geo/address.proto, whose `street` is tagged PII."""
    from confluent_kafka.schema_registry.confluent import meta_pb2
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    def tagged(field: Any) -> None:
        field.options.Extensions[meta_pb2.field_meta].tags.append("PII")

    address = descriptor_pb2.FileDescriptorProto(
        name="geo/address.proto",
        package="geo",
        syntax="proto3",
        dependency=["confluent/meta.proto"],
    )
    message = address.message_type.add(name="Address")
    tagged(message.field.add(name="street", number=1, type=9, label=1))
    message.field.add(name="city", number=2, type=9, label=1)
    customer = descriptor_pb2.FileDescriptorProto(
        name="crm/customer.proto",
        package="crm",
        syntax="proto3",
        dependency=["confluent/meta.proto", "geo/address.proto"],
    )
    message = customer.message_type.add(name="Customer")
    message.field.add(name="name", number=1, type=9, label=1)
    tagged(message.field.add(name="email", number=2, type=9, label=1))
    message.field.add(name="home", number=3, type=11, label=1, type_name=".geo.Address")
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(descriptor_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(meta_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(address)
    pool.Add(customer)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("crm.Customer"))


def test_protobuf_with_a_referenced_proto_is_masked_for_copilot(
    broker: InProcessBroker, registry: RegistryProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = "customers-proto-refs"
    create(broker, topic)
    customer = customer_class()
    client = SchemaRegistryClient({"url": registry.url})
    context = SerializationContext(topic, MessageField.VALUE)
    serializer = ProtobufSerializer(customer, client, {"use.deprecated.format": False})
    producer = Producer({"bootstrap.servers": plaintext(broker), "compression.type": "zstd"})
    people = [("Ada", "ada@example.com", "1 Main St"), ("Bob", "bob@example.org", "2 Side St")]
    for name, email, street in people:
        value = customer(name=name, email=email)
        value.home.street, value.home.city = street, "Leeds"
        producer.produce(topic, serializer(value, context), key=name.encode())
    assert producer.flush(20) == 0
    # The serializer registered the import as a reference of the value's schema.
    references = client.get_latest_version(f"{topic}-value").schema.references
    assert [r.name for r in references] == ["geo/address.proto"]
    add_policy(broker, "copilot-refs", topic, "--action", "keep-last-3")
    capsys.readouterr()

    deserializer = ProtobufDeserializer(customer, {"use.deprecated.format": False})
    masked = consume(user(broker, "copilot"), topic, 2)
    read = [deserializer(m.value(), context) for m in masked]
    assert [(r.name, r.email, r.home.street, r.home.city) for r in read] == [
        ("Ada", "************com", "****** St", "Leeds"),
        ("Bob", "************org", "****** St", "Leeds"),
    ]
    assert [m.key() for m in masked] == [b"Ada", b"Bob"]
    clear = [deserializer(m.value(), context) for m in consume(user(broker, "alice"), topic, 2)]
    assert [(r.email, r.home.street) for r in clear] == [(e, s) for _, e, s in people]
