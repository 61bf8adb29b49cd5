"""CIDR hosts in ACLs through real clients (Kafka 4.4): a producer at 127.0.0.1 is allowed
by an ALLOW for 127.0.0.0/8 and refused once a DENY names 127.0.0.1/32; a block Kafka
cannot read is refused at CreateAcls with its error. Every client is User:ANONYMOUS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from tests.e2e.test_acls import AUTHORIZER, produce_error
from tests.support.broker import BrokerProcess

ANONYMOUS = "User:ANONYMOUS"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "broker", settings=AUTHORIZER).start()
    yield process
    process.stop()


def write_acl(
    host: str,
    principal: str = ANONYMOUS,
    permission: AclPermissionType = AclPermissionType.ALLOW,
) -> AclBinding:
    return AclBinding(
        ResourceType.TOPIC,
        "orders",
        ResourcePatternType.LITERAL,
        principal,
        host,
        AclOperation.WRITE,
        permission,
    )


def create(admin: AdminClient, acl: AclBinding) -> None:
    for future in admin.create_acls([acl]).values():
        future.result(10)


def test_a_cidr_allow_admits_the_client_and_a_narrower_deny_refuses_it(
    secured: BrokerProcess,
) -> None:
    admin = AdminClient({"bootstrap.servers": secured.bootstrap})
    admin.create_topics([NewTopic("orders", 1)])["orders"].result(10)
    # An ACL for someone else closes the topic to ANONYMOUS.
    create(admin, write_acl("*", principal="User:alice"))
    create(admin, write_acl("10.0.0.0/8"))  # a block the client is not in
    error = produce_error(secured.bootstrap, "orders")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    create(admin, write_acl("127.0.0.0/8"))
    assert produce_error(secured.bootstrap, "orders") is None

    create(admin, write_acl("127.0.0.1/32", permission=AclPermissionType.DENY))
    error = produce_error(secured.bootstrap, "orders")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_block_kafka_cannot_read_is_refused_at_create_acls(secured: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": secured.bootstrap})
    with pytest.raises(KafkaException) as refused:
        create(admin, write_acl("127.0.0.0/33"))
    error = refused.value.args[0]
    assert error.code() == KafkaError.INVALID_REQUEST
    assert "Invalid CIDR notation '127.0.0.0/33': Value [33] not in range [0,32]" in error.str()
