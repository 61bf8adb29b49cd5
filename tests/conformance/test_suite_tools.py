"""The Kafka tools librdkafka's tests run from KAFKA_PATH (as a trivup cluster provides them)
work against the broker the librdkafka suite starts, without running the suite: 0109, 0115
and 0119 deny or allow a topic with `kafka-acls.sh`, which needs the tool and an authorizer."""

from __future__ import annotations

import subprocess
from pathlib import Path

from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from conformance import run
from conformance.suites import broker_spec, load


def test_kafka_acls_sh_adds_an_acl_to_the_suite_broker(tmp_path: Path) -> None:
    librdkafka = load("librdkafka")
    kafka_path = librdkafka.kafka_cli(tmp_path / "work")
    assert kafka_path is not None, "Kafka's tools jars could not be fetched"
    spec = broker_spec(librdkafka, None)
    with run.contextplane_broker(spec, tmp_path / "keep") as (bootstrap, _):
        # The command line 0109_auto_create_topics runs (test_kafka_cmd in its test.c).
        deny = [
            str(kafka_path / "bin" / "kafka-acls.sh"),
            "--bootstrap-server", bootstrap,
            "--add", "--deny-principal", "User:*", "--operation", "All",
            "--deny-host", "*", "--topic", "denied-topic",
        ]  # fmt: skip
        subprocess.run(deny, check=True, timeout=120, capture_output=True)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        wanted = AclBindingFilter(
            ResourceType.TOPIC,
            "denied-topic",
            ResourcePatternType.LITERAL,
            None,
            None,
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        bindings = admin.describe_acls(wanted, request_timeout=20).result(timeout=30)
    assert [(b.principal, b.host, b.operation, b.permission_type) for b in bindings] == [
        ("User:*", "*", AclOperation.ALL, AclPermissionType.DENY)
    ]
