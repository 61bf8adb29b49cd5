"""`contextplane topic ...` and `contextplane group ...` run as a user runs them, against a
broker process; what they print (tables and json) is checked against what confluent-kafka
reads back, and their failures against the documented exit status and message."""

from __future__ import annotations

import base64
import datetime
import json
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from tests.support.broker import free_port
from tests.support.cli import contextplane, one_error_line
from tests.support.cli_clusters import CLUSTER_KINDS, Cluster, started
from tests.support.wait import wait_until

# Topics only as the tests create them; a group's first join not held back 3 s; an
# authorizer that allows what no ACL covers, so that one DENY ACL makes a refusal.
SETTINGS = {
    "auto.create.topics.enable": "false",
    "group.initial.rebalance.delay.ms": "0",
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "true",
}


def deny(admin: AdminClient, topic: str, operation: AclOperation) -> None:
    """A DENY ACL on `topic` for everyone (the tests' clients are User:ANONYMOUS)."""
    binding = AclBinding(
        ResourceType.TOPIC,
        topic,
        ResourcePatternType.LITERAL,
        "User:*",
        "*",
        operation,
        AclPermissionType.DENY,
    )
    for future in admin.create_acls([binding]).values():
        future.result(30)


@pytest.fixture(scope="module", params=CLUSTER_KINDS)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    with started(request.param, tmp_path_factory.mktemp("cli-topic-group"), SETTINGS) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def admin(broker: Cluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def cli(broker: Cluster, *args: str) -> tuple[str, ...]:
    return (*args, "--bootstrap-server", broker.bootstrap)


def topic_configs(admin: AdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(30)
    return {
        name: entry.value
        for name, entry in entries.items()
        if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    }


def produce(broker: Cluster, topic: str, records: list[tuple[int, int]]) -> None:
    """(partition, timestamp ms) per record, values `v0`, `v1`, ..."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i, (partition, timestamp) in enumerate(records):
        producer.produce(topic, value=f"v{i}".encode(), partition=partition, timestamp=timestamp)
    assert producer.flush(30) == 0


def test_topic_list_shows_internal_topics_only_with_i(broker: Cluster, admin: AdminClient) -> None:
    # A committed offset: the cluster now holds __consumer_offsets.
    admin.create_topics([NewTopic("visible", 1, 1)])["visible"].result(30)
    committer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "lister"})

    def committed() -> bool:
        try:  # Kafka answers NOT_COORDINATOR while it creates __consumer_offsets
            committer.commit(offsets=[TopicPartition("visible", 0, 0)], asynchronous=False)
        except KafkaException:
            return False
        return True

    wait_until(committed, 60, "the first commit")
    committer.close()
    described = admin.describe_topics(TopicCollection(["__consumer_offsets"]))
    assert described["__consumer_offsets"].result(30).is_internal

    default = contextplane(*cli(broker, "topic", "list", "--output", "json")).json()["topics"]
    assert "visible" in [t["name"] for t in default]
    assert [t for t in default if t["internal"] or t["name"] == "__consumer_offsets"] == []
    table = contextplane(*cli(broker, "topic", "list")).rows()
    assert "visible" in [row[0] for row in table]
    assert "__consumer_offsets" not in [row[0] for row in table]

    everything = contextplane(*cli(broker, "topic", "list", "-i", "--output", "json")).json()
    offsets = [t for t in everything["topics"] if t["name"] == "__consumer_offsets"]
    assert len(offsets) == 1 and offsets[0]["internal"] is True
    assert [t for t in everything["topics"] if not t["internal"]] == default
    table = contextplane(*cli(broker, "topic", "list", "--internal")).rows()
    assert "__consumer_offsets" in [row[0] for row in table]


def test_topic_create_list_and_describe_show_what_the_cluster_holds(
    broker: Cluster, admin: AdminClient
) -> None:
    created = contextplane(
        *cli(broker, "topic", "create", "orders", "-p", "3", "-c", "retention.ms=3600000")
    )
    assert created.rows() == [
        ["TOPIC", "PARTITIONS", "REPLICAS", "STATUS"],
        ["orders", "3", "1", "OK"],
    ]
    assert topic_configs(admin, "orders") == {"retention.ms": "3600000"}
    defaults = contextplane(*cli(broker, "topic", "create", "plain", "--output", "json")).json()
    metadata = admin.list_topics(timeout=30)
    assert defaults == {
        "topic": "plain",
        "partitions": len(metadata.topics["plain"].partitions),  # the broker's default
        "replication_factor": 1,
        "configs": {},
    }
    again = one_error_line(contextplane(*cli(broker, "topic", "create", "orders")))
    assert again.startswith("contextplane topic create: topic 'orders': TOPIC_ALREADY_EXISTS")
    # A name or a partition count Kafka refuses: its error and its message.
    for args, refusal in [
        (
            ("bad name",),
            "TOPIC_EXCEPTION (Topic name is invalid: 'bad name' contains one or more "
            "characters other than ASCII alphanumerics, '.', '_' and '-')",
        ),
        (
            ("zero", "-p", "0"),
            "INVALID_PARTITIONS (Number of partitions was set to an invalid non-positive value.)",
        ),
    ]:
        refused = contextplane(*cli(broker, "topic", "create", *args))
        assert one_error_line(refused) == (
            f"contextplane topic create: topic {args[0]!r}: {refusal}"
        )

    listed = contextplane(*cli(broker, "topic", "list", "--output", "json")).json()
    assert listed["topics"] == [
        {
            "name": name,
            "partitions": len(topic.partitions),
            "replication_factor": 1,
            "internal": False,
        }
        for name, topic in sorted(metadata.topics.items())
        if not name.startswith("__")
    ]
    table = contextplane(*cli(broker, "topic", "list")).rows()
    assert table[0] == ["NAME", "PARTITIONS", "REPLICAS"]
    assert ["orders", "3", "1"] in table and ["plain", str(defaults["partitions"]), "1"] in table

    produce(broker, "orders", [(1, 1_000)] * 5 + [(2, 2_000)] * 2)
    described = contextplane(*cli(broker, "topic", "describe", "orders", "--output", "json"))
    document = described.json()
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "watermarks"})
    topic = admin.list_topics("orders", timeout=30).topics["orders"]
    assert document["name"] == "orders" and document["internal"] is False
    # The topic id in Kafka's form (URL-safe base64 of its 16 bytes), as kafka-topics.sh.
    topic_id = admin.describe_topics(TopicCollection(["orders"]))["orders"].result(30).topic_id
    raw = topic_id.get_most_significant_bits().to_bytes(8, "big", signed=True) + (
        topic_id.get_least_significant_bits().to_bytes(8, "big", signed=True)
    )
    assert document["id"] == base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert document["configs"] == {"retention.ms": "3600000"}
    assert [
        (p["partition"], p["leader"], p["replicas"], p["isr"]) for p in document["partitions"]
    ] == [
        (p.id, p.leader, p.replicas, p.isrs)
        for p in sorted(topic.partitions.values(), key=lambda p: p.id)
    ]
    watermarks = [
        consumer.get_watermark_offsets(TopicPartition("orders", p), timeout=30) for p in range(3)
    ]
    consumer.close()
    assert [(p["log_start_offset"], p["high_watermark"]) for p in document["partitions"]] == [
        tuple(w) for w in watermarks
    ]
    assert [w[1] for w in watermarks] == [0, 5, 2]
    sections = contextplane(*cli(broker, "topic", "describe", "orders")).out.split("\n\n")
    assert sections[1].splitlines() == ["CONFIG        VALUE", "retention.ms  3600000"]
    partition_rows = [line.split() for line in sections[2].splitlines()]
    assert partition_rows[0] == [
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "LOG-START-OFFSET",
        "HIGH-WATERMARK",
    ]
    assert partition_rows[1:] == [
        ["0", "1", "1", "1", "0", "0"],
        ["1", "1", "1", "1", "0", "5"],
        ["2", "1", "1", "1", "0", "2"],
    ]


def test_topic_alter_config_sets_and_deletes_and_names_what_is_refused(
    broker: Cluster, admin: AdminClient
) -> None:
    contextplane(*cli(broker, "topic", "create", "settings", "-p", "1", "-c", "retention.ms=1000"))
    changed = contextplane(
        *cli(
            broker,
            "topic",
            "alter-config",
            "settings",
            "--set",
            "cleanup.policy=compact",
            "--set",
            "max.message.bytes=2048",
            "--delete",
            "retention.ms",
            "--output",
            "json",
        )
    )
    assert changed.json() == {
        "topic": "settings",
        "set": {"cleanup.policy": "compact", "max.message.bytes": "2048"},
        "deleted": ["retention.ms"],
    }
    assert topic_configs(admin, "settings") == {
        "cleanup.policy": "compact",
        "max.message.bytes": "2048",
    }
    table = contextplane(
        *cli(broker, "topic", "alter-config", "settings", "--set", "retention.ms=5")
    )
    assert table.rows() == [
        ["CONFIG", "ACTION", "VALUE"],
        ["retention.ms", "set", "5"],
    ]
    assert topic_configs(admin, "settings")["retention.ms"] == "5"

    # A value the broker refuses: exit 1 with Kafka's error; nothing changed.
    bad = contextplane(*cli(broker, "topic", "alter-config", "settings", "--set", "retention.ms=x"))
    assert one_error_line(bad).startswith(
        "contextplane topic alter-config: topic 'settings': INVALID_CONFIG"
    )
    assert topic_configs(admin, "settings")["retention.ms"] == "5"
    # An argument that is not NAME=VALUE, or no change at all: exit 2.
    malformed = contextplane(*cli(broker, "topic", "alter-config", "settings", "--set", "x"))
    assert one_error_line(malformed, status=2) == (
        "contextplane topic alter-config: --set expects NAME=VALUE, got 'x'"
    )
    assert contextplane(*cli(broker, "topic", "alter-config", "settings")).status == 2
    unknown = contextplane(*cli(broker, "topic", "alter-config", "nope", "--set", "retention.ms=1"))
    assert "topic 'nope': UNKNOWN_TOPIC_OR_PART" in one_error_line(unknown)
    described = contextplane(*cli(broker, "topic", "describe", "nope"))
    assert one_error_line(described).startswith(
        "contextplane topic describe: topic 'nope': UNKNOWN_TOPIC_OR_PART"
    )


def test_topic_delete_deletes_what_exists_and_names_what_does_not(
    broker: Cluster, admin: AdminClient
) -> None:
    for name in ("gone1", "gone2"):
        contextplane(*cli(broker, "topic", "create", name, "-p", "1"))
    deleted = contextplane(
        *cli(broker, "topic", "delete", "gone1", "gone2", "missing", "--output", "json")
    )
    assert deleted.status == 1
    assert json.loads(deleted.out) == {
        "deleted": ["gone1", "gone2"],
        "failed": {"missing": "UNKNOWN_TOPIC_OR_PART (Broker: Unknown topic or partition)"},
    }
    assert one_error_line(deleted).startswith(
        "contextplane topic delete: topic 'missing': UNKNOWN_TOPIC_OR_PART"
    )
    names = set(admin.list_topics(timeout=30).topics)
    assert not {"gone1", "gone2"} & names


def test_an_unreachable_broker_and_bad_arguments_have_their_exit_status() -> None:
    nobody = f"127.0.0.1:{free_port()}"
    refused = contextplane("topic", "list", "--bootstrap-server", nobody)
    assert one_error_line(refused) == (
        f"contextplane topic list: cannot connect to {nobody}: connection refused "
        "(is a broker running there?)"
    )
    assert refused.out == ""  # librdkafka's own log lines are kept off both streams
    wrong = contextplane("topic", "list", "--bootstrap-server", nobody, "--output", "xml")
    assert wrong.status == 2 and "invalid choice: 'xml'" in wrong.err
    missing = contextplane(
        "group",
        "describe",
        "g",
        "--bootstrap-server",
        nobody,
        "--command-config",
        "/nonexistent/client.properties",
    )
    assert one_error_line(missing, status=2).startswith(
        "contextplane group describe: --command-config: [Errno 2]"
    )


def committed(admin: AdminClient, group: str) -> dict[tuple[str, int], int]:
    request = [ConsumerGroupTopicPartitions(group)]
    result = admin.list_consumer_group_offsets(request)[group].result(30)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}


def commit(broker: Cluster, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit `offsets` for `group`, again while the coordinator is not ready: a freshly
    started Kafka answers NOT_COORDINATOR until its offsets partition is loaded (a
    retriable error: librdkafka's synchronous commit hands it back)."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    retriable = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
    try:
        for attempt in range(20):
            try:
                consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                    asynchronous=False,
                )
                return
            except KafkaException as exc:
                if exc.args[0].code() not in retriable or attempt == 19:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()


def test_group_list_and_describe_show_committed_offsets_and_lag(
    broker: Cluster, admin: AdminClient
) -> None:
    contextplane(*cli(broker, "topic", "create", "lagging", "-p", "2"))
    produce(broker, "lagging", [(0, 1_000)] * 6 + [(1, 1_000)] * 4)
    commit(broker, "billing", {("lagging", 0): 2, ("lagging", 1): 4})

    groups = contextplane(*cli(broker, "group", "list", "--output", "json")).json()["groups"]
    assert {"group": "billing", "state": "Empty"} in groups
    listed = admin.list_consumer_groups().result(30).valid
    assert sorted(g["group"] for g in groups) == sorted(g.group_id for g in listed)

    document = contextplane(*cli(broker, "group", "describe", "billing", "--output", "json")).json()
    offsets = committed(admin, "billing")
    assert document["group"] == "billing" and document["state"] == "Empty"
    assert document["members"] == []
    assert [
        (p["topic"], p["partition"], p["committed_offset"], p["log_end_offset"], p["lag"])
        for p in document["partitions"]
    ] == [
        ("lagging", 0, offsets[("lagging", 0)], 6, 6 - offsets[("lagging", 0)]),
        ("lagging", 1, offsets[("lagging", 1)], 4, 4 - offsets[("lagging", 1)]),
    ]
    sections = contextplane(*cli(broker, "group", "describe", "billing")).out.split("\n\n")
    assert [line.split() for line in sections[0].splitlines()][1][:2] == ["billing", "Empty"]
    rows = [line.split() for line in sections[1].splitlines()]
    assert rows[0][:5] == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]
    assert [row[:5] for row in rows[1:]] == [
        ["lagging", "0", "2", "6", "4"],
        ["lagging", "1", "4", "4", "0"],
    ]
    absent = contextplane(*cli(broker, "group", "describe", "nobody"))
    assert one_error_line(absent) == "contextplane group describe: group 'nobody' does not exist"


def test_group_reset_offsets_is_a_dry_run_unless_executed(
    broker: Cluster, admin: AdminClient
) -> None:
    contextplane(*cli(broker, "topic", "create", "replay", "-p", "2"))
    base = 1_700_000_000_000
    produce(broker, "replay", [(0, base + i * 1000) for i in range(5)] + [(1, base)] * 3)
    commit(broker, "replayer", {("replay", 0): 5, ("replay", 1): 3})

    def reset(*how: str) -> dict[str, object]:
        return contextplane(
            *cli(broker, "group", "reset-offsets", "replayer", "--output", "json", *how)
        ).json()

    dry = reset("--topic", "replay", "--to-earliest")
    assert dry == {
        "group": "replayer",
        "executed": False,
        "offsets": [
            {"topic": "replay", "partition": 0, "offset": 0},
            {"topic": "replay", "partition": 1, "offset": 0},
        ],
    }
    assert committed(admin, "replayer") == {("replay", 0): 5, ("replay", 1): 3}
    table = contextplane(
        *cli(broker, "group", "reset-offsets", "replayer", "--topic", "replay", "--to-earliest")
    )
    assert table.rows()[1:] == [["replayer", "replay", "0", "0"], ["replayer", "replay", "1", "0"]]
    assert "dry run" in table.out

    reset("--topic", "replay:0", "--to-offset", "2", "--execute")
    assert committed(admin, "replayer") == {("replay", 0): 2, ("replay", 1): 3}
    # Past the log end: the log end, as Kafka's tool does.
    reset("--topic", "replay", "--to-offset", "99", "--execute")
    assert committed(admin, "replayer") == {("replay", 0): 5, ("replay", 1): 3}
    # The first record at or after 2.5 s past the base is offset 3 of partition 0; none
    # of partition 1 is that late, so it goes to its log end.
    at = reset("--topic", "replay", "--to-datetime", iso(base + 2500), "--execute")
    assert at["executed"] is True
    assert committed(admin, "replayer") == {("replay", 0): 3, ("replay", 1): 3}
    reset("--topic", "replay", "--to-earliest", "--execute")
    assert committed(admin, "replayer") == {("replay", 0): 0, ("replay", 1): 0}
    reset("--topic", "replay", "--to-latest", "--execute")
    assert committed(admin, "replayer") == {("replay", 0): 5, ("replay", 1): 3}

    unknown = contextplane(
        *cli(broker, "group", "reset-offsets", "replayer", "--topic", "nope", "--to-latest")
    )
    assert one_error_line(unknown).startswith(
        "contextplane group reset-offsets: topic 'nope' does not exist"
    )
    no_target = contextplane(*cli(broker, "group", "reset-offsets", "replayer", "--topic", "x"))
    assert no_target.status == 2 and "one of the arguments --to-earliest" in no_target.err
    bad_time = contextplane(
        *cli(
            broker,
            "group",
            "reset-offsets",
            "replayer",
            "--topic",
            "replay",
            "--to-datetime",
            "yesterday",
        )
    )
    assert "not an ISO 8601 time" in one_error_line(bad_time, status=2)


def test_a_group_with_members_is_neither_reset_nor_deleted(
    broker: Cluster, admin: AdminClient
) -> None:
    contextplane(*cli(broker, "topic", "create", "live", "-p", "1"))
    member = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "busy", "client.id": "worker-1"}
    )
    member.subscribe(["live"])

    def assigned() -> bool:
        member.poll(0.1)
        return bool(member.assignment())

    wait_until(assigned, 30, "the member has its partition")
    try:
        document = contextplane(*cli(broker, "group", "describe", "busy", "--output", "json"))
        described = document.json()
        assert described["state"] == "Stable"
        (only,) = described["members"]
        assert only["client_id"] == "worker-1" and only["assignment"] == [["live", 0]]
        assert described["partitions"] == [
            {
                "topic": "live",
                "partition": 0,
                "committed_offset": None,
                "log_end_offset": 0,
                "lag": None,
                "member_id": only["member_id"],
                "client_id": "worker-1",
                "host": only["host"],
            }
        ]
        refused = contextplane(
            *cli(
                broker,
                "group",
                "reset-offsets",
                "busy",
                "--topic",
                "live",
                "--to-earliest",
                "--execute",
            )
        )
        assert one_error_line(refused) == (
            "contextplane group reset-offsets: Assignments can only be reset if the group "
            "'busy' is inactive, but the current state is Stable."
        )
        kept = contextplane(*cli(broker, "group", "delete", "busy"))
        assert one_error_line(kept).startswith(
            "contextplane group delete: group 'busy': NON_EMPTY_GROUP"
        )
    finally:
        member.close()
    deleted = contextplane(*cli(broker, "group", "delete", "busy", "--output", "json"))
    assert deleted.json() == {"deleted": ["busy"]}
    assert "busy" not in {g.group_id for g in admin.list_consumer_groups().result(30).valid}
    gone = contextplane(*cli(broker, "group", "delete", "busy"))
    assert "GROUP_ID_NOT_FOUND" in one_error_line(gone)


def test_an_authorization_refusal_is_named_with_kafkas_error(
    broker: Cluster, admin: AdminClient
) -> None:
    contextplane(*cli(broker, "topic", "create", "secret", "-p", "1"))
    deny(admin, "secret", AclOperation.ALTER_CONFIGS)
    deny(admin, "secret", AclOperation.DESCRIBE)
    altered = contextplane(
        *cli(broker, "topic", "alter-config", "secret", "--set", "retention.ms=1")
    )
    assert one_error_line(altered).startswith(
        "contextplane topic alter-config: topic 'secret': TOPIC_AUTHORIZATION_FAILED"
    )
    described = contextplane(*cli(broker, "topic", "describe", "secret"))
    assert one_error_line(described).startswith(
        "contextplane topic describe: topic 'secret': TOPIC_AUTHORIZATION_FAILED"
    )
    # Kafka's rule: DELETE on the cluster, which nothing denies here, deletes any topic.
    assert contextplane(*cli(broker, "topic", "delete", "secret")).status == 0
