"""The schema catalog and the masking policies on every broker of a cluster (RFC 0005,
"Catalogs in a cluster as built"): two broker processes on one PostgreSQL and one
file:// object store, topics of four partitions so each broker leads some, the registry as
a process on broker 1.

- a schema registered through the registry validates produces on both brokers at once
  (the partition led by the broker that does not lead `_schemas` included), and an id
  never given is refused on both;
- a masking policy written with `contextplane mask add` masks a consumer fetching from
  both brokers right after the command returned (a policy covering the folded topics
  themselves masks nothing of them);
- kill -9 of the policy topic's leader: the survivor never sends a record in clear to
  the masked principal (it fails closed while the leader is unreachable), and once it
  leads the policy topic it serves every record masked;
- a cluster whose listeners all need a SASL login: the internal consumer logs in with
  `contextplane.internal.client.config`, and copilot's policy masks its reads from both.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from contextplane.cli.main import main as cli
from contextplane.security.masking_policy import MASKING_TOPIC
from tests.support.broker import BrokerProcess
from tests.support.postgres import PostgresServer
from tests.support.registry import RegistryProcess
from tests.support.wait import wait_until

SESSION_MS = 1_500
PARTITIONS = 4
ALL = list(range(PARTITIONS))
SCHEMA = json.dumps(
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Customer",
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "email": {"type": "string", "confluent:tags": ["PII"]},
        },
        "required": ["name", "email"],
    }
)


def broker(data_dir: Path, node_id: int, url: str, objects: str, **extra: str) -> BrokerProcess:
    return BrokerProcess(
        data_dir,
        metadata_url=url,
        object_store=objects,
        settings={
            "node.id": str(node_id),
            "broker.heartbeat.interval.ms": "300",
            "broker.session.timeout.ms": str(SESSION_MS),
            **extra,
        },
    )


def stored(url: str, topic: str) -> dict[int, dict[str, int]]:
    """partition -> its row: leader, target, wal_dirty."""
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT partition, leader_node, target_node, wal_dirty FROM partitions WHERE topic=%s",
            (topic,),
        ).fetchall()
    return {r[0]: {"leader": r[1], "target": r[2], "dirty": r[3]} for r in rows}


def led(url: str, topic: str) -> bool:
    rows = stored(url, topic)
    return bool(rows) and all(r["leader"] == r["target"] != -1 for r in rows.values())


def create(
    client: dict[str, str], url: str, topic: str, config: dict[str, str] | None = None
) -> None:
    """PARTITIONS partitions, some led by each broker."""
    admin = AdminClient(client)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1, config=config or {})])[topic].result(30)
    wait_until(lambda: led(url, topic), 15, f"{topic} led where targeted")
    assert {r["leader"] for r in stored(url, topic).values()} == {1, 2}


def produce(
    client: dict[str, str], topic: str, partition: int, value: bytes, key: bytes | None = None
) -> KafkaError | None:
    """The delivery error of one record (None: acknowledged)."""
    outcome: list[KafkaError | None] = []
    producer = Producer(client | {"acks": "all", "retries": 0})
    producer.produce(
        topic, value, key=key, partition=partition, on_delivery=lambda e, _: outcome.append(e)
    )
    assert producer.flush(30) == 0
    return outcome[0]


def consume(client: dict[str, str], topic: str, partitions: list[int], count: int) -> list[Any]:
    """`count` records of the partitions, read from their leaders (every error fails the
    test: librdkafka surfaces none for a retriable fetch error)."""
    consumer = Consumer(
        client
        | {
            "group.id": f"g-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "check.crcs": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    messages: list[Any] = []
    deadline = time.monotonic() + 60
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


def email_of(value: bytes) -> str:
    assert value[:1] == b"\x00"
    return str(json.loads(value[5:])["email"])


def test_schemas_and_masking_policies_are_known_on_every_broker(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    brokers = {
        1: broker(tmp_path / "one", 1, url, objects).start(),
        2: broker(tmp_path / "two", 2, url, objects).start(),
    }
    registry = RegistryProcess(brokers[1].bootstrap, tmp_path / "registry.log")
    try:
        one = {"bootstrap.servers": brokers[1].bootstrap}
        admin = AdminClient(one)
        wait_until(lambda: len(admin.list_topics(timeout=10).brokers) == 2, 15, "both listed")
        # `_schemas` created as the registry creates it, and led, before the registry
        # starts (a registry that creates it itself: test_cluster_registry_start.py).
        schemas = NewTopic("_schemas", 1, 1, config={"cleanup.policy": "compact"})
        admin.create_topics([schemas])["_schemas"].result(30)
        wait_until(lambda: led(url, "_schemas"), 15, "_schemas led")
        registry.start()
        create(one, url, "checked", {"confluent.value.schema.validation": "true"})
        create(one, url, "people")

        # Validation: the id just given is accepted on both brokers at once, whichever
        # leads `_schemas`; an id never given is refused on both.
        serializer = JSONSerializer(SCHEMA, SchemaRegistryClient({"url": registry.url}))
        good = serializer(
            {"name": "Ada", "email": "ada@example.com"},
            SerializationContext("checked", MessageField.VALUE),
        )
        unknown = b"\x00" + struct.pack(">I", 9_999) + b"{}"
        for partition in ALL:
            assert produce(one, "checked", partition, good) is None
            refused = produce(one, "checked", partition, unknown)
            assert refused is not None and refused.code() == KafkaError.INVALID_RECORD, refused

        # Masking: people's records on both partitions, then a policy; the very next
        # fetches from both brokers are masked.
        people = SerializationContext("people", MessageField.VALUE)
        for partition in ALL:
            for index in range(3):
                person = {"name": f"p{index}", "email": f"p{index}-{partition}@example.com"}
                assert produce(one, "people", partition, serializer(person, people)) is None
        assert {email_of(m.value()) for m in consume(one, "people", ALL, 3 * PARTITIONS)} == {
            f"p{i}-{p}@example.com" for i in range(3) for p in ALL
        }
        add = ["mask", "add", "pii", "--principal", "User:ANONYMOUS", "--topic", "people"]
        assert cli([*add, "--tag", "PII", "--bootstrap-server", brokers[1].bootstrap]) == 0
        # A policy whose pattern covers the two folded topics for the principal the
        # brokers read them as: they are never masked (their values would read as
        # tombstones on the other broker, and the policy above would be lost there).
        meta = ["mask", "add", "meta", "--principal", "User:ANONYMOUS", "--topic", "_*"]
        assert cli([*meta, "--tag", "PII", "--bootstrap-server", brokers[1].bootstrap]) == 0
        wait_until(lambda: led(url, MASKING_TOPIC), 15, "the policy topic led")
        # Created by the command, compacted (its Metadata request no longer auto-creates it).
        resource = ConfigResource("topic", MASKING_TOPIC)
        described = admin.describe_configs([resource])[resource].result(20)
        assert described["cleanup.policy"].value == "compact"
        assert {email_of(m.value()) for m in consume(one, "people", ALL, 3 * PARTITIONS)} == {
            "****"
        }

        # kill -9 of the policy topic's leader (once what both hold is in objects, so its
        # partitions are taken over): the survivor never sends a record in clear.
        for topic in (MASKING_TOPIC, "people", "_schemas"):
            wait_until(
                lambda t=topic: all(r["dirty"] == 0 for r in stored(url, t).values()),  # type: ignore[misc]
                15,
                f"{topic} uploaded",
            )
        leader = stored(url, MASKING_TOPIC)[0]["leader"]
        survivor = brokers[3 - leader]
        registry.stop()
        brokers[leader].kill9()
        own = [p for p, r in stored(url, "people").items() if r["leader"] == 3 - leader]
        read = consume({"bootstrap.servers": survivor.bootstrap}, "people", own, 3 * len(own))
        assert {email_of(m.value()) for m in read} == {"****"}
        wait_until(
            lambda: all(r["leader"] == 3 - leader for r in stored(url, MASKING_TOPIC).values()),
            30,
            "the survivor leads the policy topic",
        )
        read = consume({"bootstrap.servers": survivor.bootstrap}, "people", ALL, 3 * PARTITIONS)
        assert {email_of(m.value()) for m in read} == {"****"}
    finally:
        registry.stop()
        for running in brokers.values():
            running.stop()


def sasl_user(bootstrap: str, name: str) -> dict[str, str]:
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": name,
        "sasl.password": f"{name}-secret",
    }


def test_brokers_whose_listeners_need_a_login_read_the_catalogs_with_their_own(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """SASL/PLAIN listeners only, so the internal consumer logs in with the properties
    file `contextplane.internal.client.config` names: a policy for copilot, written
    through broker 1, masks copilot's reads from both brokers; admin reads in clear."""
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    users = " ".join(f'user_{n}="{n}-secret"' for n in ("broker", "admin", "copilot"))
    module = "org.apache.kafka.common.security.plain.PlainLoginModule required"
    internal = tmp_path / "internal.properties"
    internal.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        f'sasl.jaas.config={module} username="broker" password="broker-secret";\n'
    )
    command = tmp_path / "admin.properties"
    command.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        f'sasl.jaas.config={module} username="admin" password="admin-secret";\n'
    )
    secured = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": f"{module} {users};",
        "contextplane.internal.client.config": str(internal),
    }
    brokers = [
        broker(tmp_path / "one", 1, url, objects, **secured).start(),
        broker(tmp_path / "two", 2, url, objects, **secured).start(),
    ]
    try:
        admin_client = sasl_user(brokers[0].bootstrap, "admin")
        admin = AdminClient(admin_client)
        wait_until(lambda: len(admin.list_topics(timeout=10).brokers) == 2, 15, "both listed")
        schemas = NewTopic("_schemas", 1, 1, config={"cleanup.policy": "compact"})
        admin.create_topics([schemas])["_schemas"].result(30)
        create(admin_client, url, "people")
        # The schema as a registry writes it to `_schemas` (id 1, `email` tagged PII).
        key = json.dumps({"keytype": "SCHEMA", "subject": "people-value", "version": 1, "magic": 1})
        value = {"subject": "people-value", "version": 1, "id": 1, "schemaType": "JSON"}
        record = json.dumps(value | {"schema": SCHEMA}).encode()
        assert produce(admin_client, "_schemas", 0, record, key.encode()) is None
        wire = b"\x00" + struct.pack(">I", 1)
        for partition in ALL:
            person = {"name": "Ada", "email": f"ada-{partition}@example.com"}
            assert (
                produce(admin_client, "people", partition, wire + json.dumps(person).encode())
                is None
            )
        add = ["mask", "add", "pii", "--principal", "User:copilot", "--topic", "people"]
        where = ["--bootstrap-server", brokers[0].bootstrap, "--command-config", str(command)]
        assert cli([*add, "--tag", "PII", *where]) == 0
        copilot = sasl_user(brokers[0].bootstrap, "copilot")
        assert {email_of(m.value()) for m in consume(copilot, "people", ALL, PARTITIONS)} == {
            "****"
        }
        assert {email_of(m.value()) for m in consume(admin_client, "people", ALL, PARTITIONS)} == {
            f"ada-{p}@example.com" for p in ALL
        }
    finally:
        for running in brokers:
            running.stop()
