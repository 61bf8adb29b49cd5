"""The schema registry against a broker, with confluent-kafka's own clients: its
SchemaRegistryClient, and the Avro serializer and deserializer around a real produce and
fetch; a restarted registry rebuilds from `_schemas` and answers with the same ids."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from prometheus_client.parser import text_string_to_metric_families

from tests.support.inprocess import InProcessBroker
from tests.support.prometheus_queries import (
    alert_queries,
    check_queries,
    dashboard_queries,
    exported,
)
from tests.support.registry import RegistryProcess
from tests.support.wait import wait_until

USER_V1 = {
    "type": "record",
    "name": "User",
    "namespace": "acme",
    "fields": [{"name": "name", "type": "string"}, {"name": "age", "type": "int"}],
}
USER_V2 = {
    **USER_V1,
    "fields": [*USER_V1["fields"], {"name": "email", "type": ["null", "string"], "default": None}],
}
USER_REQUIRED_EMAIL = {
    **USER_V1,
    "fields": [*USER_V1["fields"], {"name": "email", "type": "string"}],
}


@pytest.fixture
def registry(broker: InProcessBroker, tmp_path: Path) -> Iterator[RegistryProcess]:
    running = RegistryProcess(broker.bootstrap, tmp_path / "registry.log").start()
    yield running
    running.stop()


def avro(document: dict[str, object]) -> Schema:
    return Schema(json.dumps(document), "AVRO")


def scrape(url: str) -> dict[tuple[str, str], float]:
    """(name, its one label's value or "") -> value, from a Prometheus text exposition;
    the registry's alert rules checked against it."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    rules = alert_queries("contextplane-schema-registry")
    check_queries(rules, exported(text), "the registry's alert rules")
    check_queries(dashboard_queries("registry"), exported(text), "the dashboard's registry panels")
    return {
        (sample.name, next(iter(sample.labels.values()), "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_client_registers_looks_up_checks_and_deletes(registry: RegistryProcess) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    first = client.register_schema("users-value", avro(USER_V1))
    assert (
        client.register_schema("users-value", Schema(json.dumps(USER_V1, indent=2), "AVRO"))
        == first
    )
    second = client.register_schema("users-value", avro(USER_V2))
    assert second != first
    assert client.get_subjects() == ["users-value"]
    assert client.get_versions("users-value") == [1, 2]
    latest = client.get_latest_version("users-value")
    assert (latest.schema_id, latest.version) == (second, 2)
    assert json.loads(latest.schema.schema_str) == USER_V2
    assert json.loads(client.get_schema(first).schema_str) == USER_V1
    assert client.lookup_schema("users-value", avro(USER_V1)).version == 1
    assert client.get_compatibility() == "BACKWARD"
    assert client.test_compatibility("users-value", avro(USER_REQUIRED_EMAIL)) is False

    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema("users-value", avro(USER_REQUIRED_EMAIL))
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    with pytest.raises(SchemaRegistryError) as missing:
        client.get_version("users-value", 9)
    assert missing.value.error_code == 40402
    with pytest.raises(SchemaRegistryError) as invalid:
        client.register_schema("users-value", Schema('{"type": "recrd"}', "AVRO"))
    assert invalid.value.error_code == 42201
    # The registry's own /metrics counts what it refused and what it holds.
    scraped = scrape(f"{registry.url}/metrics")
    assert scraped[("contextplane_schema_registry_rejected_total", "incompatible")] == 1
    assert scraped[("contextplane_schema_registry_rejected_total", "invalid_schema")] == 1
    assert scraped[("contextplane_schema_registry_errors_total", "40402")] == 1
    assert scraped[("contextplane_schema_registry_subjects", "")] == 1
    assert scraped[("contextplane_schema_registry_schemas", "AVRO")] == 2
    assert scraped[("process_resident_memory_bytes", "")] > 0

    client.set_compatibility("users-value", "NONE")
    assert client.get_compatibility("users-value") == "NONE"
    assert client.register_schema("users-value", avro(USER_REQUIRED_EMAIL)) > second
    assert client.delete_version("users-value", 3) == 3
    assert client.get_versions("users-value") == [1, 2]
    assert client.delete_subject("users-value") == [1, 2]
    assert client.get_subjects() == []
    assert client.delete_subject("users-value", permanent=True) == [1, 2, 3]
    with pytest.raises(SchemaRegistryError) as gone:
        client.get_schema(first + 100)
    assert gone.value.error_code == 40403


def test_avro_records_round_trip_through_the_broker(
    broker: InProcessBroker, registry: RegistryProcess
) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    serializer = AvroSerializer(client, json.dumps(USER_V1))
    context = SerializationContext("users", MessageField.VALUE)
    users = [{"name": "ada", "age": 36}, {"name": "alan", "age": 41}]
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for user in users:
        producer.produce("users", value=serializer(user, context))
    assert producer.flush(30) == 0
    schema_id = client.get_latest_version("users-value").schema_id

    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "readers",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe(["users"])
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry.url}))
    read: list[object] = []
    try:
        for _ in range(300):
            message = consumer.poll(0.1)
            if message is None or message.error():
                if len(read) == len(users):
                    break
                continue
            value = message.value()
            # Confluent's wire format: magic byte 0, then the schema id, big-endian.
            assert value[:5] == b"\x00" + schema_id.to_bytes(4, "big")
            read.append(deserializer(value, context))
    finally:
        consumer.close()
    assert read == users


def test_a_restarted_registry_rebuilds_from_schemas(
    broker: InProcessBroker, registry: RegistryProcess
) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    ids = [
        client.register_schema("a-value", avro(USER_V1)),
        client.register_schema("a-value", avro(USER_V2)),
    ]
    other = client.register_schema("b-value", avro(USER_V2))
    client.delete_version("a-value", 1)
    client.set_compatibility("b-value", "FULL")
    assert registry.stop() == 0

    registry.start()
    again = SchemaRegistryClient({"url": registry.url})
    assert again.get_versions("a-value") == [2]
    assert again.get_versions("a-value", deleted=True) == [1, 2]
    assert again.get_latest_version("b-value").schema_id == other == ids[1]
    assert json.loads(again.get_schema(ids[0]).schema_str) == USER_V1
    assert again.register_schema("a-value", avro(USER_V2)) == ids[1]
    assert again.get_compatibility("b-value") == "FULL"
    # A new schema takes the next id, not one already given.
    assert again.register_schema("c-value", avro(USER_REQUIRED_EMAIL)) == max(ids) + 1

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, "_schemas")
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["cleanup.policy"].value == "compact"


def test_a_subject_with_a_slash_through_the_client(registry: RegistryProcess) -> None:
    """The client URL-encodes the subject (`team%2Fusers-value`), as Confluent expects."""
    client = SchemaRegistryClient({"url": registry.url})
    schema_id = client.register_schema("team/users-value", avro(USER_V1))
    assert client.get_subjects() == ["team/users-value"]
    assert client.get_latest_version("team/users-value").schema_id == schema_id
    assert client.lookup_schema("team/users-value", avro(USER_V1)).version == 1


def test_garbage_another_client_writes_to_schemas_is_skipped_live_and_on_replay(
    broker: InProcessBroker, registry: RegistryProcess
) -> None:
    """Any Kafka client can produce to `_schemas`: what the registry cannot read is
    skipped, live and on replay, and it goes on reading and answering."""
    client = SchemaRegistryClient({"url": registry.url})
    first = client.register_schema("a-value", avro(USER_V1))
    key = json.dumps({"keytype": "SCHEMA", "subject": "a-value", "version": 2, "magic": 1})
    value = {"subject": "a-value", "version": 2, "schema": json.dumps(USER_V2)}
    # (A record without a key is not among them: the broker refuses it on a compacted
    # topic, as Kafka does.)
    garbage: list[tuple[bytes | None, bytes | None]] = [
        (key.encode(), json.dumps({**value, "id": 2**31}).encode()),  # no client decodes it
        (key.encode(), json.dumps(value)[:-1].encode() + b', "id": 1e999}'),
        (key.encode(), json.dumps({**value, "id": first}).encode()),  # another schema's id
        (b'{"keytype":"CONFIG","subject":null,"magic":0}', b'{"compatibilityLevel":"LAX"}'),
        (b'{"keytype":"MODE","subject":null,"magic":0}', b'{"mode":"WRITEONLY"}'),
        (b"\xff\xfe", b"\xff"),
        (b"[" * 100_000 + b"]" * 100_000, None),  # nested past Python's JSON parser
        # A good record right behind the garbage, most likely read in the same batch.
        (b'{"keytype":"CONFIG","subject":"b-value","magic":0}', b'{"compatibilityLevel":"FULL"}'),
    ]
    failures: list[object] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 100})
    for garbage_key, garbage_value in garbage:
        producer.produce(
            "_schemas",
            key=garbage_key,
            value=garbage_value,
            partition=0,
            on_delivery=lambda error, _: failures.append(error) if error else None,
        )
    assert producer.flush(30) == 0 and failures == []
    del producer  # its connection must not outlive the broker

    def answers(again: SchemaRegistryClient) -> None:
        assert again.get_versions("a-value") == [1, 2]
        assert again.get_compatibility() == "BACKWARD"
        assert again.get_compatibility("b-value") == "FULL"
        assert json.loads(again.get_schema(first).schema_str) == USER_V1
        with pytest.raises(SchemaRegistryError) as refused:  # BACKWARD still checks
            again.register_schema("a-value", avro(USER_REQUIRED_EMAIL))
        assert refused.value.error_code == 409

    # A write after the garbage is read back past it: the reader went on.
    assert client.register_schema("a-value", avro(USER_V2)) == first + 1
    answers(client)
    assert registry.stop() == 0
    registry.start()
    answers(SchemaRegistryClient({"url": registry.url}))


def test_a_write_while_the_broker_is_down_fails_and_the_next_one_succeeds(
    broker: InProcessBroker, tmp_path: Path
) -> None:
    registry = RegistryProcess(broker.bootstrap, tmp_path / "registry.log", kafka_timeout_s=3)
    registry.start()
    try:
        client = SchemaRegistryClient({"url": registry.url, "max.retries": 0, "timeout": 30})
        first = client.register_schema("a-value", avro(USER_V1))
        broker.stop()
        with pytest.raises(SchemaRegistryError) as failed:
            client.register_schema("b-value", avro(USER_V2))
        assert failed.value.error_code in (50001, 50002)
        assert client.get_versions("a-value") == [1]  # reads are served from the state
        broker.start()

        def registered() -> int | None:
            try:
                return client.register_schema("c-value", avro(USER_V2))
            except SchemaRegistryError as exc:  # 5xx until the clients have reconnected
                assert exc.http_status_code == 500, exc
                return None

        # The failed write may have landed after all; either way V2 has one id, the next.
        assert wait_until(registered, 60, "a write after the broker is back") == first + 1
        assert client.get_versions("c-value") == [1]
        assert client.get_versions("a-value") == [1]
    finally:
        assert registry.stop() == 0


def test_up_serves_the_registry_beside_the_broker(tmp_path: Path) -> None:
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "contextplane.cli.main", "up", "--data-dir", str(tmp_path / "d")]
            + ["--port", "0", "--registry-port", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def registry_port() -> int | None:
            assert process.poll() is None, log_path.read_text()
            found = re.search(r"schema registry ready on \S+:(\d+)", log_path.read_text())
            return int(found.group(1)) if found else None

        port = wait_until(registry_port, 60, "the registry beside the broker is ready")
        client = SchemaRegistryClient({"url": f"http://127.0.0.1:{port}"})
        schema_id = client.register_schema("users-value", avro(USER_V1))
        assert json.loads(client.get_schema(schema_id).schema_str) == USER_V1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log_path.read_text()


def test_up_gives_the_registry_the_init_timeout_it_is_set(tmp_path: Path) -> None:
    """`contextplane.registry.kafkastore.init.timeout.ms` bounds the registry's start
    beside the broker: at 1 ms `_schemas` cannot be ready, the registry stops naming the
    timeout it was given, and the broker goes on serving."""
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "contextplane.cli.main", "up", "--data-dir", str(tmp_path / "d")]
            + ["--port", "0", "--registry-port", "0"]
            + ["--set", "contextplane.registry.kafkastore.init.timeout.ms=1"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def stopped() -> bool:
            assert process.poll() is None, log_path.read_text()
            return "the schema registry stopped" in log_path.read_text()

        wait_until(stopped, 60, "the registry gives up")
        text = log_path.read_text()
        assert "init timeout of 0.001 s" in text, text
        assert "schema registry ready" not in text
        port = int(re.findall(r"listening on \S+:(\d+)", text)[0])
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        assert admin.list_topics(timeout=10).brokers, "the broker still serves"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log_path.read_text()


def test_an_unreachable_cluster_at_start_exits_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "contextplane.cli.main", "registry"]
        + ["--bootstrap", "127.0.0.1:1", "--init-timeout", "2", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    # One line that says what failed, not an empty reason: the topic, the start's bound
    # (`--init-timeout`, Confluent's kafkastore.init.timeout.ms) and the last Kafka error.
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("contextplane registry: ")]
    assert line.startswith(
        "contextplane registry: Operation timed out: creating _schemas on 127.0.0.1:1"
    ), result.stderr
    assert "within the init timeout of 2 s" in line, line
    assert "the last Kafka error: " in line, line
    assert "ready" not in result.stdout
