"""`contextplane registry` alone against Apache Kafka (the reference harness) with a
SASL_PLAINTEXT listener, SASL/PLAIN users and the StandardAuthorizer: the registry's own
connection logs in as User:registry (`--command-config`, PLAIN, so Basic passwords are
checked by PLAIN logins too), subjects are Kafka's own TOPIC ACLs named `:subject:...`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from harness import kafka_reference
from tests.support.registry import RegistryProcess

pytestmark = pytest.mark.slow

USERS = ("admin", "registry", "alice", "bob")
PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
ORDER = json.dumps({"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]})


def _login(user: str) -> dict[str, str]:
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": f"{user}-secret",
    }


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka_reference.KafkaHandle]:
    users = " ".join(f'user_{u}="{u}-secret"' for u in USERS)
    handle = kafka_reference.start(
        data_dir=tmp_path_factory.mktemp("kafka"),
        timeout=120,
        heap="512m",
        client_protocol="SASL_PLAINTEXT",
        extra_props={
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                f'{PLAIN} required username="admin" password="admin-secret" {users};'
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin;User:registry",
        },
    )
    yield handle
    handle.stop()


def test_basic_logins_and_subject_acls_of_apache_kafka(
    kafka: kafka_reference.KafkaHandle, tmp_path: Path
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap, **_login("admin")})
    grant = [
        AclBinding(
            ResourceType.TOPIC,
            ":subject:orders-",
            ResourcePatternType.PREFIXED,
            "User:alice",
            "*",
            operation,
            AclPermissionType.ALLOW,
        )  # fmt: skip
        for operation in (AclOperation.READ, AclOperation.WRITE)
    ]
    for future in admin.create_acls(grant).values():
        future.result(30)
    command_config = tmp_path / "registry.properties"
    command_config.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        f'sasl.jaas.config={PLAIN} required username="registry" password="registry-secret";\n'
    )
    registry = RegistryProcess(
        kafka.bootstrap,
        tmp_path / "registry.log",
        extra_args=(
            "--command-config", str(command_config), "--replication-factor", "1",
            "--set", "contextplane.registry.authentication.method=BASIC",
        ),
    ).start()  # fmt: skip
    try:

        def client(user: str, password: str) -> SchemaRegistryClient:
            return SchemaRegistryClient(
                {"url": registry.url, "basic.auth.user.info": f"{user}:{password}"}
            )

        alice = client("alice", "alice-secret")
        schema_id = alice.register_schema("orders-value", Schema(ORDER, "AVRO"))
        assert alice.get_latest_version("orders-value").schema_id == schema_id
        with pytest.raises(SchemaRegistryError) as wrong:
            client("alice", "not-hers").get_subjects()
        assert wrong.value.http_status_code == 401
        with pytest.raises(SchemaRegistryError) as refused:
            client("bob", "bob-secret").register_schema("orders-value", Schema(ORDER, "AVRO"))
        assert (refused.value.http_status_code, refused.value.error_code) == (403, 40301)
    finally:
        assert registry.stop() == 0, registry.log_tail()
