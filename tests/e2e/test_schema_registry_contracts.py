"""Data contracts against a broker, with confluent-kafka's own serializers and rule
executors: `use.latest.with.metadata` picks the version by its metadata, a CEL domain
rule refuses a record that breaks its condition, a CEL_FIELD transform rewrites the field
tagged PII before it is produced; the contract survives a registry restart."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import (
    Metadata,
    MetadataProperties,
    Rule,
    RuleKind,
    RuleMode,
    RuleSet,
    Schema,
    SchemaRegistryClient,
    ServerConfig,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.common.serde import RuleConditionError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.schema_registry.rules.cel.cel_executor import CelExecutor
from confluent_kafka.schema_registry.rules.cel.cel_field_executor import CelFieldExecutor
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from tests.e2e.test_schema_registry_formats import read_all
from tests.support.inprocess import InProcessBroker
from tests.support.registry import RegistryProcess

CelExecutor.register()
CelFieldExecutor.register()

TOPIC = "customers"
SUBJECT = f"{TOPIC}-value"
V1 = {
    "type": "record",
    "name": "Customer",
    "namespace": "shop",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "age", "type": "int"},
        {"name": "ssn", "type": "string", "confluent:tags": ["PII"]},
    ],
}
V2 = {**V1, "fields": [*V1["fields"], {"name": "email", "type": "string", "default": ""}]}


def write_rule(name: str, kind: RuleKind, rule_type: str, expr: str, tags: list[str]) -> Rule:
    return Rule(name, None, kind, RuleMode.WRITE, rule_type, tags, None, expr, None, None, False)


RULES = RuleSet(
    migration_rules=None,
    domain_rules=[
        write_rule("checkAge", RuleKind.CONDITION, "CEL", "message.age >= 0", []),
        write_rule(
            "redactPii",
            RuleKind.TRANSFORM,
            "CEL_FIELD",
            "typeName == 'STRING' ; 'redacted'",
            ["PII"],
        ),
    ],
)
OWNER = Metadata(None, MetadataProperties({"owner": "payments"}), None)


def major(version: str) -> Metadata:
    return Metadata(None, MetadataProperties({"application.major.version": version}), None)


@pytest.fixture
def registry(broker: InProcessBroker, tmp_path: Path) -> Iterator[RegistryProcess]:
    running = RegistryProcess(broker.bootstrap, tmp_path / "registry.log").start()
    yield running
    running.stop()


def serializer(client: SchemaRegistryClient, version: str) -> AvroSerializer:
    return AvroSerializer(
        client,
        None,
        conf={
            "auto.register.schemas": False,
            "use.latest.with.metadata": {"application.major.version": version},
        },
    )


def schema_id_of(payload: bytes) -> int:
    magic, schema_id = struct.unpack(">bI", payload[:5])
    assert magic == 0
    return int(schema_id)


CONTEXT = SerializationContext(TOPIC, MessageField.VALUE)
RECORD: dict[str, Any] = {"name": "ada", "age": 36, "ssn": "123-45-6789"}


def test_serializers_follow_the_contract(
    broker: InProcessBroker, registry: RegistryProcess
) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    first = client.register_schema(SUBJECT, Schema(json.dumps(V1), "AVRO", [], major("1"), RULES))
    second = client.register_schema(SUBJECT, Schema(json.dumps(V2), "AVRO", [], major("2")))
    assert first != second
    # What the client reads back is what it registered (the rule set is inherited by
    # version 2, which gave none: Confluent's registration takes the previous one's).
    latest = client.get_latest_with_metadata(SUBJECT, {"application.major.version": "1"})
    assert (latest.version, latest.schema_id) == (1, first)
    assert latest.schema.rule_set is not None
    assert [r.name for r in latest.schema.rule_set.domain_rules] == ["checkAge", "redactPii"]
    v2 = client.get_version(SUBJECT, 2)
    assert v2.schema.metadata.properties.properties == {"application.major.version": "2"}
    assert [r.name for r in v2.schema.rule_set.domain_rules] == ["checkAge", "redactPii"]

    # use.latest.with.metadata: the version is chosen by its metadata, not by being latest.
    for version, expected in (("1", first), ("2", second)):
        payload = serializer(client, version)(RECORD, CONTEXT)
        assert payload is not None and schema_id_of(payload) == expected

    # The CONDITION rule refuses a record that breaks it, in the serializer.
    with pytest.raises(SerializationError) as refused:
        serializer(client, "1")({**RECORD, "age": -1}, CONTEXT)
    assert isinstance(refused.value.__cause__, RuleConditionError)
    assert str(refused.value.__cause__) == "Rule expr failed: message.age >= 0"

    # The CEL_FIELD transform rewrote the PII field, and only it, before the produce.
    payload = serializer(client, "1")(RECORD, CONTEXT)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(TOPIC, payload)
    assert producer.flush(10) == 0
    del producer  # librdkafka would go on connecting to the broker after the test
    [value] = read_all(broker.bootstrap, TOPIC, 1)
    plain_reader = AvroDeserializer(SchemaRegistryClient({"url": registry.url}))
    assert plain_reader(value, CONTEXT) == {**RECORD, "ssn": "redacted"}


def test_a_restarted_registry_serves_the_same_contract(registry: RegistryProcess) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    client.set_config(SUBJECT, ServerConfig(default_metadata=OWNER, default_rule_set=RULES))
    schema_id = client.register_schema(SUBJECT, Schema(json.dumps(V1), "AVRO", [], major("1")))
    before = client.get_version(SUBJECT, 1)
    assert before.schema.metadata is not None
    assert before.schema.metadata.properties.properties == {
        "application.major.version": "1",
        "owner": "payments",
    }
    assert registry.stop() == 0
    registry.start()
    again = SchemaRegistryClient({"url": registry.url})
    after = again.get_version(SUBJECT, 1)
    assert (after.schema_id, after.schema.metadata, after.schema.rule_set) == (
        schema_id,
        before.schema.metadata,
        before.schema.rule_set,
    )
    config = again.get_config(SUBJECT)
    assert config.default_metadata.properties.properties == {"owner": "payments"}
    rules = config.default_rule_set.domain_rules
    assert [(r.name, r.expr, r.tags or []) for r in rules] == [
        (r.name, r.expr, r.tags) for r in RULES.domain_rules
    ]
    # The same registration again is the same id, nothing new.
    same = again.register_schema(SUBJECT, Schema(json.dumps(V1), "AVRO", [], major("1")))
    assert same == schema_id and again.get_versions(SUBJECT) == [1]


JSON_CUSTOMER = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Customer",
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "ssn": {"type": "string", "confluent:tags": ["PII"]},
    },
    "required": ["name", "age", "ssn"],
}


def test_json_schema_serializers_follow_the_contract(registry: RegistryProcess) -> None:
    """The same contract on a JSON Schema: its `confluent:tags` kept in the stored text,
    so the client's CEL_FIELD rule finds the PII property."""
    client = SchemaRegistryClient({"url": registry.url})
    subject = "customers-json-value"
    schema = Schema(json.dumps(JSON_CUSTOMER), "JSON", [], major("1"), RULES)
    schema_id = client.register_schema(subject, schema)
    stored = json.loads(client.get_schema(schema_id).schema_str)
    assert stored["properties"]["ssn"]["confluent:tags"] == ["PII"]
    serializer = JSONSerializer(
        None,
        client,
        conf={
            "auto.register.schemas": False,
            "use.latest.with.metadata": {"application.major.version": "1"},
        },
    )
    context = SerializationContext("customers-json", MessageField.VALUE)
    payload = serializer(RECORD, context)
    assert payload is not None and schema_id_of(payload) == schema_id
    assert JSONDeserializer(None, schema_registry_client=client)(payload, context) == {
        **RECORD,
        "ssn": "redacted",
    }
    with pytest.raises(SerializationError) as refused:
        serializer({**RECORD, "age": -1}, context)
    assert isinstance(refused.value.__cause__, RuleConditionError)


def customer_class() -> Any:
    """shop.Customer built at run time, its `ssn` tagged PII in the field's options."""
    from confluent_kafka.schema_registry.confluent import meta_pb2
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file = descriptor_pb2.FileDescriptorProto(
        name="shop/customer.proto",
        package="shop",
        syntax="proto3",
        dependency=["confluent/meta.proto"],
    )
    message = file.message_type.add(name="Customer")
    message.field.add(name="name", number=1, type=9, label=1)
    message.field.add(name="age", number=2, type=5, label=1)
    ssn = message.field.add(name="ssn", number=3, type=9, label=1)
    ssn.options.Extensions[meta_pb2.field_meta].tags.append("PII")
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(descriptor_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(meta_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Customer"))


def test_protobuf_serializers_follow_the_contract(registry: RegistryProcess) -> None:
    """ProtobufSerializer with `use.latest.with.metadata` reads the version as a base64
    descriptor (`format=serialized`) and runs its rules on it: the field tag must survive
    the registry's .proto text."""
    client = SchemaRegistryClient({"url": registry.url})
    subject = "customers-proto-value"
    customer = customer_class()
    descriptor = base64.b64encode(customer.DESCRIPTOR.file.serialized_pb).decode()
    schema_id = client.register_schema(
        subject, Schema(descriptor, "PROTOBUF", [], major("1"), RULES)
    )
    stored = client.get_schema(schema_id).schema_str
    assert '(confluent.field_meta) = { tags: ["PII"] }' in stored
    conf = {
        "use.deprecated.format": False,
        "auto.register.schemas": False,
        "use.latest.with.metadata": {"application.major.version": "1"},
    }
    serializer = ProtobufSerializer(customer, client, conf)
    context = SerializationContext("customers-proto", MessageField.VALUE)
    payload = serializer(customer(**RECORD), context)
    assert payload is not None and schema_id_of(payload) == schema_id
    read = ProtobufDeserializer(customer, {"use.deprecated.format": False})(payload, context)
    assert (read.name, read.age, read.ssn) == ("ada", 36, "redacted")
    with pytest.raises(SerializationError) as refused:
        serializer(customer(**{**RECORD, "age": -1}), context)
    assert isinstance(refused.value.__cause__, RuleConditionError)
