"""Masking per consumer with real clients: a broker with a PLAINTEXT and a SASL/PLAIN
listener, the registry as a process, confluent-kafka's JSONSerializer writing records whose
schema tags `email` PII, a policy written with `contextplane mask add`: copilot's
consumer (with CRC checks) and its JSONDeserializer get `email` masked and everything else
unchanged, alice gets the bytes produced; lz4 and zstd batches too; a value without the
wire format comes back null for copilot; Avro and Protobuf through confluent-kafka's
serializers and deserializers;
`hash` with the broker's key; an audit record per masked fetch; deleting the policy
restores clear reads; writing a policy needs WRITE on the policy topic."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from contextplane.cli.main import main as cli
from contextplane.console.metrics import BrokerMetrics
from contextplane.security.masking_policy import MASKING_TOPIC
from tests.support.audit_topics import AUDIT_TOPIC, read_json_topic
from tests.support.inprocess import InProcessBroker
from tests.support.registry import RegistryProcess
from tests.support.wait import wait_until

HMAC_KEY = "masking-test-key"
PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'user_copilot="copilot-secret" user_alice="alice-secret";'
)
SETTINGS = {
    "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
    "sasl.enabled.mechanisms": "PLAIN",
    "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
    "contextplane.masking.hmac.key": HMAC_KEY,
    "group.initial.rebalance.delay.ms": "0",
}
SCHEMA = json.dumps(
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Customer",
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "email": {"type": "string", "confluent:tags": ["PII"]},
            "tier": {"type": "string"},
        },
        "required": ["name", "email"],
    }
)
PEOPLE = [
    {"name": "Ada", "email": "ada@example.com", "tier": "gold"},
    {"name": "Bob", "email": "bob@example.org", "tier": "silver"},
]
TIMESTAMPS = [1_700_000_000_123, 1_700_000_000_456]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    running = InProcessBroker(tmp_path_factory.mktemp("masking"), settings=SETTINGS).start()
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


def plaintext(broker: InProcessBroker) -> str:
    return f"127.0.0.1:{broker.listener_port('PLAINTEXT')}"


def user(broker: InProcessBroker, name: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": f"127.0.0.1:{broker.listener_port('SASL_PLAINTEXT')}",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": name,
        "sasl.password": f"{name}-secret",
    }


def produce_people(
    broker: InProcessBroker, registry: RegistryProcess, topic: str, codec: str
) -> list[bytes]:
    """PEOPLE (and a value without the wire format) written by confluent-kafka in one
    batch of `codec`; the values as produced."""
    admin = AdminClient({"bootstrap.servers": plaintext(broker)})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(20)
    serializer = JSONSerializer(SCHEMA, SchemaRegistryClient({"url": registry.url}))
    context = SerializationContext(topic, MessageField.VALUE)
    values = [serializer(person, context) for person in PEOPLE] + [b'{"email": "raw@x.y"}']
    producer = Producer(
        {"bootstrap.servers": plaintext(broker), "compression.type": codec, "linger.ms": 50}
    )
    for index, value in enumerate(values):
        producer.produce(
            topic,
            value,
            key=f"key-{index}".encode(),
            headers=[("trace", f"t-{index}".encode())],
            timestamp=TIMESTAMPS[index % 2] + index,
        )
    assert producer.flush(20) == 0
    return values


def consume(config: dict[str, Any], topic: str, count: int) -> list[Any]:
    consumer = Consumer(
        config
        | {"group.id": f"g-{time.monotonic_ns()}", "check.crcs": True, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            messages.append(message)
    finally:
        consumer.close()
    assert len(messages) == count, f"{len(messages)} of {count} records consumed"
    return messages


def mask(broker: InProcessBroker, *args: str) -> int:
    return cli(["mask", *args, "--bootstrap-server", plaintext(broker), "--output", "json"])


def masked_counts(broker: InProcessBroker) -> dict[tuple[str, str], int]:
    assert broker.broker is not None
    text = broker.call(BrokerMetrics(broker.broker.pipeline.services).exposition()).decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("contextplane_masked_records_total{"):
            labels, count = line.split("} ")
            topic = labels.split('topic="')[1].split('"')[0]
            action = labels.split('action="')[1].split('"')[0]
            found[(topic, action)] = int(float(count))
    return found


@pytest.mark.parametrize("codec", ["none", "lz4", "zstd"])
def test_copilot_reads_email_redacted_and_alice_reads_the_original(
    broker: InProcessBroker,
    registry: RegistryProcess,
    codec: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = f"customers-{codec}"
    values = produce_people(broker, registry, topic, codec)
    assert (
        mask(
            broker,
            "add",
            f"copilot-{codec}",
            "--principal",
            "User:copilot",
            "--topic",
            topic,
            "--tag",
            "PII",
        )
        == 0
    )
    capsys.readouterr()

    clear = consume(user(broker, "alice"), topic, 3)
    assert [m.value() for m in clear] == values

    masked = consume(user(broker, "copilot"), topic, 3)
    deserializer = JSONDeserializer(
        None, schema_registry_client=SchemaRegistryClient({"url": registry.url})
    )
    context = SerializationContext(topic, MessageField.VALUE)
    assert [deserializer(m.value(), context) for m in masked[:2]] == [
        {**person, "email": "****"} for person in PEOPLE
    ]
    assert [m.value()[:5] for m in masked[:2]] == [v[:5] for v in values[:2]]
    assert masked[2].value() is None  # not the wire format: fail closed
    for got, original in zip(masked, clear, strict=True):
        assert got.key() == original.key()
        assert got.headers() == original.headers()
        assert got.timestamp() == original.timestamp()
        assert got.offset() == original.offset()
    assert masked_counts(broker)[(topic, "redact")] >= 2
    assert masked_counts(broker)[(topic, "fail_closed")] >= 1

    def audited() -> dict[str, Any] | None:
        for event in read_json_topic(plaintext(broker), AUDIT_TOPIC):
            data = event["data"]
            if data.get("api") == "Fetch" and data.get("resource_name") == topic:
                return dict(data)
        return None

    record = wait_until(audited, 30, "the masked fetch's audit record")
    assert record["principal"] == "User:copilot"
    assert record["policies"] == f"copilot-{codec}"
    assert record["masked"] == "fail_closed=1,redact=2"
    assert (record["partition"], record["first_offset"], record["last_offset"]) == (0, 0, 2)


def test_hash_list_and_delete(
    broker: InProcessBroker, registry: RegistryProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = "customers-hashed"
    values = produce_people(broker, registry, topic, "lz4")
    assert (
        mask(
            broker,
            "add",
            "copilot-hash",
            "--principal",
            "User:copilot",
            "--topic",
            "customers-h*",
            "--tag",
            "PII",
            "--action",
            "hash",
        )
        == 0
    )
    capsys.readouterr()
    assert mask(broker, "list") == 0
    listed = json.loads(capsys.readouterr().out)["policies"]
    assert {
        "name": "copilot-hash",
        "principal": "User:copilot",
        "topic": "customers-h*",
        "tags": ["PII"],
        "action": "hash",
        "keys": "masked",
    } in listed

    masked = consume(user(broker, "copilot"), topic, 3)
    first = json.loads(masked[0].value()[5:])
    assert first == {
        **PEOPLE[0],
        "email": hmac.new(HMAC_KEY.encode(), b"ada@example.com", hashlib.sha256).hexdigest(),
    }

    assert mask(broker, "delete", "copilot-hash") == 0
    assert mask(broker, "delete", "copilot-hash") == 1  # no such policy any more
    assert "no masking policy named 'copilot-hash'" in capsys.readouterr().err
    assert [m.value() for m in consume(user(broker, "copilot"), topic, 3)] == values


def test_refused_policies(broker: InProcessBroker, capsys: pytest.CaptureFixture[str]) -> None:
    assert mask(broker, "add", "p", "--principal", "copilot", "--topic", "t", "--tag", "PII") == 2
    assert (
        mask(
            broker,
            "add",
            "p",
            "--principal",
            "User:c",
            "--topic",
            "t",
            "--tag",
            "PII",
            "--action",
            "shred",
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "is not TYPE:NAME" in err and "'shred' is not one of" in err
    assert MASKING_TOPIC.startswith("__")


AVRO = json.dumps(
    {
        "type": "record",
        "name": "Customer",
        "namespace": "crm",
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "email", "type": "string", "confluent:tags": ["PII"]},
        ],
    }
)


def test_avro_values_are_masked_for_copilot(
    broker: InProcessBroker, registry: RegistryProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = "customers-avro"
    admin = AdminClient({"bootstrap.servers": plaintext(broker)})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(20)
    client = SchemaRegistryClient({"url": registry.url})
    context = SerializationContext(topic, MessageField.VALUE)
    serializer = AvroSerializer(client, AVRO)
    producer = Producer({"bootstrap.servers": plaintext(broker), "compression.type": "zstd"})
    for person in PEOPLE:
        producer.produce(
            topic, serializer({"name": person["name"], "email": person["email"]}, context)
        )
    assert producer.flush(20) == 0
    assert (
        mask(
            broker,
            "add",
            "copilot-avro",
            "--principal",
            "User:copilot",
            "--topic",
            topic,
            "--tag",
            "PII",
        )
        == 0
    )
    capsys.readouterr()

    deserializer = AvroDeserializer(client)
    masked = consume(user(broker, "copilot"), topic, 2)
    assert [deserializer(m.value(), context) for m in masked] == [
        {"name": p["name"], "email": "****"} for p in PEOPLE
    ]
    clear = consume(user(broker, "alice"), topic, 2)
    assert [deserializer(m.value(), context)["email"] for m in clear] == [
        p["email"] for p in PEOPLE
    ]


def test_writing_a_policy_needs_write_on_the_policy_topic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'user_admin="admin-secret" user_copilot="copilot-secret";'
    )
    settings = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin",
    }
    secured = InProcessBroker(tmp_path / "broker", settings=settings).start()
    try:
        logins = {}
        for name in ("admin", "copilot"):
            logins[name] = tmp_path / f"{name}.properties"
            logins[name].write_text(
                "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule "
                f'required username="{name}" password="{name}-secret";\n'
            )

        def add(name: str) -> int:
            return cli(
                ["mask", "add", f"by-{name}", "--principal", "User:copilot", "--topic", "t"]
                + ["--tag", "PII", "--bootstrap-server", secured.bootstrap]
                + ["--command-config", str(logins[name])]
            )

        assert add("copilot") == 1  # may not create the policy topic
        assert "TOPIC_AUTHORIZATION_FAILED" in capsys.readouterr().err
        assert add("admin") == 0
        assert add("copilot") == 1  # may not write it either
        assert "TOPIC_AUTHORIZATION_FAILED" in capsys.readouterr().err
    finally:
        secured.stop()


def contact_class() -> Any:
    """crm.Contact built at run time: `email` (a string) and `age` (an int) tagged PII."""
    from confluent_kafka.schema_registry.confluent import meta_pb2
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file = descriptor_pb2.FileDescriptorProto(
        name="crm/contact.proto",
        package="crm",
        syntax="proto3",
        dependency=["confluent/meta.proto"],
    )
    message = file.message_type.add(name="Contact")
    message.field.add(name="name", number=1, type=9, label=1)
    email = message.field.add(name="email", number=2, type=9, label=1)
    email.options.Extensions[meta_pb2.field_meta].tags.append("PII")
    age = message.field.add(name="age", number=3, type=5, label=1)
    age.options.Extensions[meta_pb2.field_meta].tags.append("PII")
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(descriptor_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(meta_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("crm.Contact"))


def test_protobuf_values_are_masked_for_copilot(
    broker: InProcessBroker, registry: RegistryProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = "contacts-proto"
    admin = AdminClient({"bootstrap.servers": plaintext(broker)})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(20)
    contact = contact_class()
    client = SchemaRegistryClient({"url": registry.url})
    context = SerializationContext(topic, MessageField.VALUE)
    serializer = ProtobufSerializer(contact, client, {"use.deprecated.format": False})
    producer = Producer({"bootstrap.servers": plaintext(broker), "compression.type": "lz4"})
    for person in PEOPLE:
        producer.produce(
            topic, serializer(contact(name=person["name"], email=person["email"], age=36), context)
        )
    assert producer.flush(20) == 0
    assert (
        mask(
            broker,
            "add",
            "copilot-proto",
            "--principal",
            "User:copilot",
            "--topic",
            topic,
            "--tag",
            "PII",
            "--action",
            "keep-last-4",
        )
        == 0
    )
    capsys.readouterr()

    deserializer = ProtobufDeserializer(contact, {"use.deprecated.format": False})
    masked = [deserializer(m.value(), context) for m in consume(user(broker, "copilot"), topic, 2)]
    assert [(m.name, m.email, m.age) for m in masked] == [
        ("Ada", "***********.com", 0),  # an int cannot keep its last digits: cleared
        ("Bob", "***********.org", 0),
    ]
    clear = [deserializer(m.value(), context) for m in consume(user(broker, "alice"), topic, 2)]
    assert [(m.email, m.age) for m in clear] == [(p["email"], 36) for p in PEOPLE]
