"""Topic and config administration through confluent-kafka's AdminClient."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from tests.support.inprocess import InProcessBroker


@pytest.fixture
def admin(shared_broker: InProcessBroker) -> AdminClient:
    return AdminClient({"bootstrap.servers": shared_broker.bootstrap})


def error_name(future) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(KafkaException) as info:
        future.result(10)
    return info.value.args[0].name()


def describe(admin: AdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(10)
    return {name: entry.value for name, entry in entries.items()}


def test_create_with_exact_partitions_and_configs(admin: AdminClient) -> None:
    admin.create_topics([NewTopic("admin-a", 5, config={"retention.ms": "12345"})])[
        "admin-a"
    ].result(10)
    metadata = admin.list_topics("admin-a", timeout=10)
    assert len(metadata.topics["admin-a"].partitions) == 5
    configs = describe(admin, "admin-a")
    assert configs["retention.ms"] == "12345"
    assert configs["cleanup.policy"] == "delete"


def test_validate_only_creates_nothing(admin: AdminClient) -> None:
    admin.create_topics([NewTopic("admin-dry", 2)], validate_only=True)["admin-dry"].result(10)
    assert "admin-dry" not in admin.list_topics(timeout=10).topics


def test_create_errors(admin: AdminClient) -> None:
    admin.create_topics([NewTopic("admin-twice", 1)])["admin-twice"].result(10)
    assert error_name(admin.create_topics([NewTopic("admin-twice", 1)])["admin-twice"]) == (
        "TOPIC_ALREADY_EXISTS"
    )
    assert error_name(admin.create_topics([NewTopic("admin-rf", 1, 3)])["admin-rf"]) == (
        "INVALID_REPLICATION_FACTOR"
    )
    bad = NewTopic("admin-cfg", 1, config={"retention.ms": "soon"})
    assert error_name(admin.create_topics([bad])["admin-cfg"]) == "INVALID_CONFIG"


def test_create_partitions(admin: AdminClient) -> None:
    admin.create_topics([NewTopic("admin-grow", 2)])["admin-grow"].result(10)
    admin.create_partitions([NewPartitions("admin-grow", 6)])["admin-grow"].result(10)
    assert len(admin.list_topics("admin-grow", timeout=10).topics["admin-grow"].partitions) == 6
    shrink = admin.create_partitions([NewPartitions("admin-grow", 3)])["admin-grow"]
    assert error_name(shrink) == "INVALID_PARTITIONS"
    missing = admin.create_partitions([NewPartitions("admin-none", 3)])["admin-none"]
    assert error_name(missing) == "UNKNOWN_TOPIC_OR_PART"


def test_delete_topic_removes_data(admin: AdminClient, shared_broker: InProcessBroker) -> None:
    admin.create_topics([NewTopic("admin-gone", 1)])["admin-gone"].result(10)
    producer = Producer({"bootstrap.servers": shared_broker.bootstrap, "acks": "all"})
    producer.produce("admin-gone", value=b"x")
    assert producer.flush(10) == 0
    admin.delete_topics(["admin-gone"])["admin-gone"].result(10)
    assert "admin-gone" not in admin.list_topics(timeout=10).topics
    assert error_name(admin.delete_topics(["admin-gone"])["admin-gone"]) == (
        "UNKNOWN_TOPIC_OR_PART"
    )


def test_alter_and_incremental_alter_configs(admin: AdminClient) -> None:
    admin.create_topics([NewTopic("admin-cfgs", 1)])["admin-cfgs"].result(10)
    resource = ConfigResource(
        ResourceType.TOPIC,
        "admin-cfgs",
        incremental_configs=[
            ConfigEntry("retention.bytes", "1000000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(10)
    assert describe(admin, "admin-cfgs")["retention.bytes"] == "1000000"
    delete = ConfigResource(
        ResourceType.TOPIC,
        "admin-cfgs",
        incremental_configs=[
            ConfigEntry("retention.bytes", None, incremental_operation=AlterConfigOpType.DELETE)
        ],
    )
    admin.incremental_alter_configs([delete])[delete].result(10)
    assert describe(admin, "admin-cfgs")["retention.bytes"] == "-1"
    bad = ConfigResource(
        ResourceType.TOPIC,
        "admin-cfgs",
        incremental_configs=[
            ConfigEntry("nonsense.key", "1", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    with pytest.raises(KafkaException):
        admin.incremental_alter_configs([bad])[bad].result(10)


def test_describe_cluster_and_broker_configs(
    admin: AdminClient, shared_broker: InProcessBroker
) -> None:
    cluster = admin.describe_cluster().result(10)
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, "127.0.0.1", shared_broker.port)]
    assert cluster.controller.id == 1
    resource = ConfigResource(ResourceType.BROKER, "1")
    entries = admin.describe_configs([resource])[resource].result(10)
    assert entries["num.partitions"].value == "1"


def test_delete_records_moves_low_watermark(
    admin: AdminClient, shared_broker: InProcessBroker
) -> None:
    admin.create_topics([NewTopic("admin-trunc", 1)])["admin-trunc"].result(10)
    producer = Producer({"bootstrap.servers": shared_broker.bootstrap, "acks": "all"})
    for i in range(10):
        producer.produce("admin-trunc", value=str(i).encode())
    assert producer.flush(10) == 0
    result = admin.delete_records([TopicPartition("admin-trunc", 0, 4)])
    deleted = list(result.values())[0].result(10)
    assert deleted.low_watermark == 4


def test_deleting_a_topic_drops_its_committed_offsets(
    admin: AdminClient, shared_broker: InProcessBroker
) -> None:
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions

    admin.create_topics([NewTopic("admin-reborn", 1)])["admin-reborn"].result(10)
    consumer = Consumer({"bootstrap.servers": shared_broker.bootstrap, "group.id": "reborn-g"})
    consumer.commit(offsets=[TopicPartition("admin-reborn", 0, 42)], asynchronous=False)
    consumer.close()
    admin.delete_topics(["admin-reborn"])["admin-reborn"].result(10)
    admin.create_topics([NewTopic("admin-reborn", 1)])["admin-reborn"].result(10)
    request = ConsumerGroupTopicPartitions("reborn-g", [TopicPartition("admin-reborn", 0)])
    result = admin.list_consumer_group_offsets([request])["reborn-g"].result(10)
    assert [tp.offset for tp in result.topic_partitions] == [-1001]  # OFFSET_INVALID: none


def test_incremental_append_starts_from_the_default(admin: AdminClient) -> None:
    admin.create_topics([NewTopic("admin-append", 1)])["admin-append"].result(10)
    resource = ConfigResource(
        ResourceType.TOPIC,
        "admin-append",
        incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(10)
    assert describe(admin, "admin-append")["cleanup.policy"] == "delete,compact"


def incremental(
    admin: AdminClient, topic: str, *changes: tuple[str, str, AlterConfigOpType]
) -> None:
    entries = [ConfigEntry(n, v, incremental_operation=op) for n, v, op in changes]
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    admin.incremental_alter_configs([resource])[resource].result(10)


def test_subtracting_the_last_list_item_leaves_an_empty_list(admin: AdminClient) -> None:
    """Kafka 4.4 accepts a LIST config emptied by SUBTRACT and describes it as ''."""
    admin.create_topics([NewTopic("admin-empty-list", 1)])["admin-empty-list"].result(10)
    incremental(admin, "admin-empty-list", ("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT))
    assert describe(admin, "admin-empty-list")["cleanup.policy"] == ""
    incremental(admin, "admin-empty-list", ("cleanup.policy", "compact", AlterConfigOpType.APPEND))
    assert describe(admin, "admin-empty-list")["cleanup.policy"] == "compact"
    # SET normalises as Kafka does: items trimmed, repeats dropped; "" is the empty list.
    incremental(
        admin, "admin-empty-list", ("cleanup.policy", " delete, delete", AlterConfigOpType.SET)
    )
    assert describe(admin, "admin-empty-list")["cleanup.policy"] == "delete"
    incremental(admin, "admin-empty-list", ("cleanup.policy", "", AlterConfigOpType.SET))
    assert describe(admin, "admin-empty-list")["cleanup.policy"] == ""


def test_list_operations_refused_as_kafka_refuses_them(admin: AdminClient) -> None:
    admin.create_topics([NewTopic("admin-list-errors", 1)])["admin-list-errors"].result(10)

    def refused(*changes: tuple[str, str, AlterConfigOpType]) -> str:
        entries = [ConfigEntry(n, v, incremental_operation=op) for n, v, op in changes]
        resource = ConfigResource(
            ResourceType.TOPIC, "admin-list-errors", incremental_configs=entries
        )
        return error_name(admin.incremental_alter_configs([resource])[resource])

    assert refused(("retention.ms", "5", AlterConfigOpType.SUBTRACT)) == "INVALID_CONFIG"
    assert refused(("cleanup.policy", "delete,", AlterConfigOpType.SET)) == "INVALID_CONFIG"
    assert refused(("cleanup.policy", "", AlterConfigOpType.APPEND)) == "INVALID_CONFIG"
    assert refused(("cleanup.policy", "foo", AlterConfigOpType.APPEND)) == "INVALID_CONFIG"
    assert describe(admin, "admin-list-errors")["cleanup.policy"] == "delete"


def test_topic_created_with_an_empty_cleanup_policy(admin: AdminClient) -> None:
    topic = NewTopic("admin-no-policy", 1, config={"cleanup.policy": ""})
    admin.create_topics([topic])["admin-no-policy"].result(10)
    assert describe(admin, "admin-no-policy")["cleanup.policy"] == ""
