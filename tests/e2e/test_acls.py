"""Kafka ACLs through real clients: confluent-kafka's admin ACL calls, a producer and a
consumer refused and then allowed, ACLs kept across a restart, denials audited, and
SECURITY_DISABLED without an authorizer. Every client is User:ANONYMOUS (PLAINTEXT)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicCollection
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    # ANONYMOUS may manage ACLs until an ACL names the cluster.
    "allow.everyone.if.no.acl.found": "true",
    "group.initial.rebalance.delay.ms": "0",
}
ANONYMOUS = "User:ANONYMOUS"
EVERY_ACL = AclBindingFilter(
    ResourceType.ANY,
    None,
    ResourcePatternType.ANY,
    None,
    None,
    AclOperation.ANY,
    AclPermissionType.ANY,
)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "broker", settings=AUTHORIZER).start()
    yield process
    process.stop()


def topic_acl(
    name: str,
    operation: AclOperation,
    principal: str = ANONYMOUS,
    permission: AclPermissionType = AclPermissionType.ALLOW,
    pattern: ResourcePatternType = ResourcePatternType.LITERAL,
    resource: ResourceType = ResourceType.TOPIC,
) -> AclBinding:
    return AclBinding(resource, name, pattern, principal, "*", operation, permission)


def create(admin: AdminClient, *acls: AclBinding) -> None:
    for future in admin.create_acls(list(acls)).values():
        future.result(10)


def produce_error(bootstrap: str, topic: str) -> KafkaError | None:
    """The delivery error of one record (None if it was written)."""
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10000})
    outcome: list[KafkaError | None] = []
    producer.produce(topic, b"value", on_delivery=lambda error, _: outcome.append(error))
    producer.flush(15)
    assert outcome, "no delivery report"
    return outcome[0]


def test_admin_creates_describes_and_deletes_acls_that_survive_restart(
    secured: BrokerProcess,
) -> None:
    admin = AdminClient({"bootstrap.servers": secured.bootstrap})
    read = topic_acl("orders", AclOperation.READ, "User:alice")
    deny = topic_acl(
        "pay", AclOperation.WRITE, "User:*", AclPermissionType.DENY, ResourcePatternType.PREFIXED
    )
    group = topic_acl("billing", AclOperation.ALL, resource=ResourceType.GROUP)
    create(admin, read, deny, group)
    assert set(admin.describe_acls(EVERY_ACL).result(10)) == {read, deny, group}
    matching = AclBindingFilter(
        ResourceType.TOPIC,
        "payments",
        ResourcePatternType.MATCH,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    assert admin.describe_acls(matching).result(10) == [deny]

    secured.restart()
    admin = AdminClient({"bootstrap.servers": secured.bootstrap})
    assert set(admin.describe_acls(EVERY_ACL).result(10)) == {read, deny, group}
    by_alice = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        "User:alice",
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    assert admin.delete_acls([by_alice])[by_alice].result(10) == [read]
    secured.restart()
    admin = AdminClient({"bootstrap.servers": secured.bootstrap})
    assert set(admin.describe_acls(EVERY_ACL).result(10)) == {deny, group}


def test_producer_and_consumer_refused_then_allowed(secured: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": secured.bootstrap})
    admin.create_topics([NewTopic("orders", 1)])["orders"].result(10)
    # An ACL for someone else closes the topic to ANONYMOUS: refused at Metadata.
    create(admin, topic_acl("orders", AclOperation.ALL, "User:alice"))
    error = produce_error(secured.bootstrap, "orders")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # DESCRIBE only: the producer finds the topic and is refused at Produce.
    create(admin, topic_acl("orders", AclOperation.DESCRIBE))
    error = produce_error(secured.bootstrap, "orders")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    create(admin, topic_acl("orders", AclOperation.WRITE))
    assert produce_error(secured.bootstrap, "orders") is None

    consumer = Consumer(
        {
            "bootstrap.servers": secured.bootstrap,
            "group.id": "readers",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe(["orders"])
        refused: list[int] = []
        consumed: list[bytes] = []

        def poll() -> bool:
            message = consumer.poll(0.5)
            if message is not None and message.error() is not None:
                refused.append(message.error().code())
            elif message is not None:
                consumed.append(message.value())
            return bool(refused)

        wait_until(poll, 20, "the consumer's authorization error")
        assert KafkaError.TOPIC_AUTHORIZATION_FAILED in refused
        create(admin, topic_acl("orders", AclOperation.READ))
        refused.clear()
        wait_until(lambda: poll() or bool(consumed), 20, "the record is consumed")
        assert not refused
        assert consumed == [b"value"]
    finally:
        consumer.close()

    log = secured.log_path.read_text() if secured.log_path else ""
    for api, operation in (("Metadata", "DESCRIBE"), ("Produce", "WRITE"), ("Fetch", "READ")):
        assert (
            f'audit {api} topic="orders" result=TOPIC_AUTHORIZATION_FAILED client_id="rdkafka"'
        ) in log
        assert f'principal="User:ANONYMOUS" operation="{operation}"' in log


def test_metadata_hides_topics_and_auto_creates_only_with_create(secured: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": secured.bootstrap})
    admin.create_topics([NewTopic("visible", 1), NewTopic("hidden", 1)])["hidden"].result(10)
    wait_until(lambda: "hidden" in admin.list_topics(timeout=10).topics, 20, "the topics")
    with RawClient(secured.bootstrap) as raw:
        listed = raw.request(3, 12, topics=None, allow_auto_topic_creation=False)
    hidden_id = next(t.topic_id for t in listed.topics if t.name == "hidden")
    create(admin, topic_acl("hidden", AclOperation.ALL, "User:alice"))
    topics = admin.list_topics(timeout=10).topics
    assert "visible" in topics and "hidden" not in topics
    # By id (v10+), with no name or the Java client's default "": refused alike, its
    # name not disclosed (Kafka answers the id, which is not secret).
    for name in (None, ""):
        with RawClient(secured.bootstrap) as raw:
            by_id = raw.request(
                3,
                12,
                topics=[{"name": name, "topic_id": hidden_id}],
                allow_auto_topic_creation=False,
            )
        assert [(t.error_code, t.name, t.topic_id, len(t.partitions)) for t in by_id.topics] == [
            (29, None, hidden_id, 0)
        ]
    # Auto-creation: an ACL on the cluster (librdkafka calls it BROKER) that grants
    # ANONYMOUS ALTER only: CREATE on the cluster is refused from now on.
    create(
        admin,
        topic_acl("kafka-cluster", AclOperation.ALTER, resource=ResourceType.BROKER),
        topic_acl("auto-", AclOperation.DESCRIBE, pattern=ResourcePatternType.PREFIXED),
    )
    assert produce_error(secured.bootstrap, "auto-refused") is not None
    assert "auto-refused" not in admin.list_topics(timeout=10).topics
    create(admin, topic_acl("auto-", AclOperation.ALL, pattern=ResourcePatternType.PREFIXED))
    assert produce_error(secured.bootstrap, "auto-made") is None


def test_without_authorizer_acl_apis_answer_security_disabled(
    shared_broker: BrokerProcess,
) -> None:
    admin = AdminClient({"bootstrap.servers": shared_broker.bootstrap})
    binding = topic_acl("orders", AclOperation.READ)
    with pytest.raises(KafkaException) as info:
        admin.create_acls([binding])[binding].result(10)
    assert info.value.args[0].code() == KafkaError.SECURITY_DISABLED
    with pytest.raises(KafkaException) as info:
        admin.delete_acls([EVERY_ACL])[EVERY_ACL].result(10)
    assert info.value.args[0].code() == KafkaError.SECURITY_DISABLED


def test_kafka_acls_tool_adds_lists_and_removes(secured: BrokerProcess) -> None:
    """Apache Kafka's own AclCommand (kafka-acls.sh) from the harness jars."""
    import shutil
    import subprocess

    from conformance.suites.librdkafka.suite import fetch_kafka_tools

    java = shutil.which("java")
    assert java is not None, "java is installed by harness/install.sh"
    libs = fetch_kafka_tools()

    def kafka_acls(*args: str) -> str:
        result = subprocess.run(
            [java, "-cp", f"{libs}/*", "org.apache.kafka.tools.AclCommand"]
            + ["--bootstrap-server", secured.bootstrap, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    kafka_acls(
        "--add", "--allow-principal", "User:alice", "--operation", "Read",
        "--topic", "orders", "--group", "billing",
    )  # fmt: skip
    kafka_acls(
        "--add", "--deny-principal", "User:bob", "--operation", "All",
        "--topic", "pay", "--resource-pattern-type", "prefixed",
    )  # fmt: skip
    listed = kafka_acls("--list")
    assert "ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)" in listed
    assert "ResourcePattern(resourceType=GROUP, name=billing, patternType=LITERAL)" in listed
    assert "(principal=User:bob, host=*, operation=ALL, permissionType=DENY)" in listed
    kafka_acls("--remove", "--force", "--topic", "orders")
    listed = kafka_acls("--list")
    assert "name=orders" not in listed and "name=billing" in listed and "name=pay" in listed


def test_describe_topics_and_cluster_report_authorized_operations(
    secured: BrokerProcess,
) -> None:
    """confluent-kafka's describe_topics / describe_cluster with
    include_authorized_operations (Metadata's and DescribeCluster's bit sets): the
    operations ANONYMOUS may perform, implied ones included, as Kafka computes them."""
    admin = AdminClient({"bootstrap.servers": secured.bootstrap})
    admin.create_topics([NewTopic("ops-topic", 1), NewTopic("ops-open", 1)])["ops-topic"].result(10)
    wait_until(lambda: "ops-open" in admin.list_topics(timeout=10).topics, 20, "the topics")
    create(
        admin,
        topic_acl("ops-topic", AclOperation.READ),
        topic_acl("ops-topic", AclOperation.ALTER_CONFIGS),
        topic_acl("kafka-cluster", AclOperation.ALTER, resource=ResourceType.BROKER),
    )

    def described() -> dict[str, set[AclOperation]]:
        futures = admin.describe_topics(
            TopicCollection(["ops-topic", "ops-open"]), include_authorized_operations=True
        )
        return {
            name: set(future.result(10).authorized_operations or ())
            for name, future in futures.items()
        }

    expected = {
        "ops-topic": {
            AclOperation.READ,
            AclOperation.DESCRIBE,
            AclOperation.ALTER_CONFIGS,
            AclOperation.DESCRIBE_CONFIGS,
        },
        # No ACL names it and allow.everyone.if.no.acl.found=true: every topic operation.
        "ops-open": {
            AclOperation.READ,
            AclOperation.WRITE,
            AclOperation.CREATE,
            AclOperation.DESCRIBE,
            AclOperation.DELETE,
            AclOperation.ALTER,
            AclOperation.DESCRIBE_CONFIGS,
            AclOperation.ALTER_CONFIGS,
        },
    }
    assert wait_until(lambda: described() == expected, 20, "the ACLs in force")
    # Metadata of all topics (v10) carries the same bit sets.
    with RawClient(secured.bootstrap) as client:
        every = client.request(
            3,
            10,
            topics=None,
            allow_auto_topic_creation=False,
            include_cluster_authorized_operations=False,
            include_topic_authorized_operations=True,
        ).topics
    bits = {t.name: int(t.topic_authorized_operations) for t in every}
    for name, operations in expected.items():
        assert bits[name] == sum(1 << int(op.value) for op in operations), name
    cluster = admin.describe_cluster(include_authorized_operations=True).result(10)
    assert set(cluster.authorized_operations or ()) == {AclOperation.ALTER, AclOperation.DESCRIBE}
    assert admin.describe_cluster().result(10).authorized_operations is None


def test_without_authorizer_every_operation_is_authorized(shared_broker: BrokerProcess) -> None:
    """Kafka with no authorizer reports every operation a resource type has."""
    admin = AdminClient({"bootstrap.servers": shared_broker.bootstrap})
    cluster = admin.describe_cluster(include_authorized_operations=True).result(10)
    assert set(cluster.authorized_operations or ()) == {
        AclOperation.CREATE,
        AclOperation.CLUSTER_ACTION,
        AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS,
        AclOperation.IDEMPOTENT_WRITE,
        AclOperation.ALTER,
        AclOperation.DESCRIBE,
    }
