"""Field-level encryption against a broker and the registry process, with
confluent-kafka's own AvroSerializer, AvroDeserializer and ENCRYPT rule executor and its
local KMS: the field tagged PII is stored encrypted, a reader with the KMS secret reads
it clear, one without it is refused; the KEK and the DEK are in the registry's DEK
registry, and still there after a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import (
    Rule,
    RuleKind,
    RuleMode,
    RuleParams,
    RuleSet,
    Schema,
    SchemaRegistryClient,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.rule_registry import RuleRegistry
from confluent_kafka.schema_registry.rules.encryption.dek_registry.dek_registry_client import (
    DekRegistryClient,
)
from confluent_kafka.schema_registry.rules.encryption.encrypt_executor import (
    FieldEncryptionExecutor,
)
from confluent_kafka.schema_registry.rules.encryption.localkms.local_driver import (
    LocalKmsDriver,
)
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.e2e.test_schema_registry_formats import read_all
from tests.support.inprocess import InProcessBroker
from tests.support.registry import RegistryProcess

LocalKmsDriver.register()

TOPIC = "patients"
SUBJECT = f"{TOPIC}-value"
KEK_NAME = "clinic-kek"
SECRET = "the local KMS's secret"
SCHEMA = {
    "type": "record",
    "name": "Patient",
    "namespace": "clinic",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "ssn", "type": "string", "confluent:tags": ["PII"]},
    ],
}
ENCRYPT_PII = Rule(
    "encryptPii",
    None,
    RuleKind.TRANSFORM,
    RuleMode.WRITEREAD,
    "ENCRYPT",
    ["PII"],
    RuleParams(
        {
            "encrypt.kek.name": KEK_NAME,
            "encrypt.kms.type": "local-kms",
            "encrypt.kms.key.id": "mykey",
        }
    ),
    None,
    None,
    None,
    False,
)
RECORD: dict[str, Any] = {"name": "ada", "ssn": "123-45-6789"}
CONTEXT = SerializationContext(TOPIC, MessageField.VALUE)


@pytest.fixture
def registry(broker: InProcessBroker, tmp_path: Path) -> Iterator[RegistryProcess]:
    running = RegistryProcess(broker.bootstrap, tmp_path / "registry.log").start()
    yield running
    running.stop()


def encryption_rules() -> RuleRegistry:
    """A rule registry of its own per serde: an executor keeps its first KMS secret."""
    rules = RuleRegistry()
    rules.register_executor(FieldEncryptionExecutor())
    return rules


def reader(url: str, rule_conf: dict[str, str] | None) -> AvroDeserializer:
    return AvroDeserializer(
        SchemaRegistryClient({"url": url}), rule_conf=rule_conf, rule_registry=encryption_rules()
    )


# Deserialize argv[2] (hex) against the registry at argv[1]; exit 3 when refused.
READER = """
import json, sys
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.rules.encryption.encrypt_executor import (
    FieldEncryptionExecutor,
)
from confluent_kafka.schema_registry.rules.encryption.localkms.local_driver import (
    LocalKmsDriver,
)
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

LocalKmsDriver.register()
FieldEncryptionExecutor.register()
read = AvroDeserializer(SchemaRegistryClient({"url": sys.argv[1]}))
try:
    record = read(bytes.fromhex(sys.argv[2]), SerializationContext(sys.argv[3], MessageField.VALUE))
except SerializationError as exc:
    print(f"refused: {exc!r} {exc.__cause__!r}")
    sys.exit(3)
print(json.dumps(record))
"""


def read_elsewhere(
    url: str, payload: bytes, secret: str | None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LOCAL_SECRET"}
    if secret is not None:
        env["LOCAL_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-c", READER, url, payload.hex(), TOPIC],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_pii_field_is_stored_encrypted_and_read_back_with_the_kms_secret(
    broker: InProcessBroker, registry: RegistryProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCAL_SECRET", raising=False)  # only rule.secret gives the key
    client = SchemaRegistryClient({"url": registry.url})
    rules = RuleSet(migration_rules=None, domain_rules=[ENCRYPT_PII])
    client.register_schema(SUBJECT, Schema(json.dumps(SCHEMA), "AVRO", [], None, rules))
    writer = AvroSerializer(
        client,
        None,
        conf={"auto.register.schemas": False, "use.latest.version": True},
        rule_conf={"secret": SECRET},
        rule_registry=encryption_rules(),
    )
    payload = writer(dict(RECORD), CONTEXT)  # the serializer rewrites the dict it is given
    assert payload is not None
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(TOPIC, payload)
    assert producer.flush(10) == 0
    del producer  # librdkafka would go on connecting to the broker after the test
    [stored] = read_all(broker.bootstrap, TOPIC, 1)

    # What the broker holds has the name clear and the SSN encrypted (Avro-read without
    # any rule: the ciphertext, base64 in the string field).
    assert b"123-45-6789" not in stored and b"ada" in stored
    plain = fastavro.schemaless_reader(BytesIO(stored[5:]), fastavro.parse_schema(SCHEMA))
    assert isinstance(plain, dict)
    assert plain["name"] == "ada" and plain["ssn"] != RECORD["ssn"]

    assert reader(registry.url, {"secret": SECRET})(stored, CONTEXT) == RECORD
    # A reader in a process of its own (tink keeps KMS clients per process): without the
    # secret it is refused; with it in LOCAL_SECRET, as the local KMS's docs say, clear.
    refused = read_elsewhere(registry.url, stored, secret=None)
    assert refused.returncode == 3, refused.stderr
    assert "failed to decrypt with all KEKs for clinic-kek" in refused.stdout
    clear = read_elsewhere(registry.url, stored, secret=SECRET)
    assert (clear.returncode, json.loads(clear.stdout)) == (0, RECORD), clear.stderr

    # The KEK the rule named and the DEK the serializer registered, wrapped by the KMS.
    keys = DekRegistryClient({"url": registry.url})
    kek = keys.get_kek(KEK_NAME)
    assert (kek.kms_type, kek.kms_key_id, kek.shared) == ("local-kms", "mykey", False)
    dek = keys.get_dek(KEK_NAME, SUBJECT)
    assert (dek.subject, dek.version, dek.algorithm) == (SUBJECT, 1, "AES256_GCM")
    assert dek.encrypted_key_material and dek.key_material is None

    # A restarted registry replays the keys: a new reader still decrypts the record.
    assert registry.stop() == 0
    registry.start()
    again = DekRegistryClient({"url": registry.url}).get_dek(KEK_NAME, SUBJECT)
    assert again.encrypted_key_material == dek.encrypted_key_material
    clear = read_elsewhere(registry.url, stored, secret=SECRET)
    assert (clear.returncode, json.loads(clear.stdout)) == (0, RECORD), clear.stderr
