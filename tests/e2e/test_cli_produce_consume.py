"""`contextplane produce` and `contextplane consume` run as a user runs them, against a
broker process: what produce wrote is read back with confluent-kafka, what consume prints
is compared with what confluent-kafka wrote, refusals exit 1 with Kafka's error."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from contextplane.services.context.partitions import entity_partition
from tests.support.cli import contextplane, one_error_line, sigint_as_from_a_terminal
from tests.support.cli_clusters import CLUSTER_KINDS, Cluster, started

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
    with started(
        request.param, tmp_path_factory.mktemp("cli-produce-consume"), SETTINGS
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def admin(broker: Cluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create(admin: AdminClient, name: str, partitions: int, **configs: str) -> None:
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=configs)
    admin.create_topics([topic])[name].result(30)


def cli(broker: Cluster, *args: str) -> tuple[str, ...]:
    return (*args, "--bootstrap-server", broker.bootstrap)


def read_all(
    broker: Cluster, topic: str, count: int
) -> list[tuple[int, int, bytes | None, bytes, list[tuple[str, bytes]]]]:
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "check", "enable.auto.commit": False}
    )
    metadata = consumer.list_topics(topic, timeout=30).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
    found = []
    while len(found) < count:
        message = consumer.poll(30)
        assert message is not None and message.error() is None
        found.append(
            (
                message.partition(),
                message.offset(),
                message.key(),
                message.value(),
                list(message.headers() or []),
            )
        )
    consumer.close()
    return sorted(found)


def test_produce_writes_keys_values_and_headers_and_reports_offsets(
    broker: Cluster, admin: AdminClient
) -> None:
    create(admin, "lines", 3)
    lines = "user-1:signed up\nuser-2:paid: 10 EUR\r\nno key here\nuser-1:left\n"
    written = contextplane(
        *cli(
            broker,
            "produce",
            "lines",
            "--key-separator",
            ":",
            "-H",
            "source=cli",
            "-H",
            "v=2",
            "--output",
            "json",
        ),
        stdin=lines,
    )
    document = written.json()
    records = read_all(broker, "lines", 4)
    headers = [("source", b"cli"), ("v", b"2")]
    assert sorted(((key, value) for _, _, key, value, _ in records), key=repr) == sorted(
        [
            (b"user-1", b"signed up"),
            (b"user-2", b"paid: 10 EUR"),  # split at the first separator only
            (None, b"no key here"),
            (b"user-1", b"left"),
        ],
        key=repr,
    )
    assert all(h == headers for *_, h in records)
    # The same key, the same partition: the default partitioner's, in order.
    user1 = [(p, o, v) for p, o, k, v, _ in records if k == b"user-1"]
    assert user1[0][0] == user1[1][0] and [v for *_, v in user1] == [b"signed up", b"left"]
    by_partition: dict[int, list[int]] = {}
    for partition, offset, *_ in records:
        by_partition.setdefault(partition, []).append(offset)
    assert document == {
        "topic": "lines",
        "records": 4,
        "refused": 0,
        "partitions": [
            {
                "partition": p,
                "records": len(offsets),
                "first_offset": min(offsets),
                "last_offset": max(offsets),
            }
            for p, offsets in sorted(by_partition.items())
        ],
    }

    # A chosen partition and acks=1; the table reports the offsets written.
    table = contextplane(
        *cli(broker, "produce", "lines", "--partition", "2", "--acks", "1"), stdin="a\nb\n"
    )
    end = len(by_partition.get(2, []))
    assert table.rows() == [
        ["TOPIC", "PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"],
        ["lines", "2", "2", str(end), str(end + 1)],
    ]
    assert table.out.rstrip().endswith("2 of 2 records written")
    assert [(p, v) for p, _, _, v, _ in read_all(broker, "lines", 6) if v in (b"a", b"b")] == [
        (2, b"a"),
        (2, b"b"),
    ]


def test_produce_with_acks_0_reports_records_without_offsets(
    broker: Cluster, admin: AdminClient
) -> None:
    """With acks=0 the broker answers nothing: the records are counted, their offsets
    unknown ("-", JSON null), not a crash on the missing offset."""
    create(admin, "fire-and-forget", 1)
    # One record acknowledged first, so the partition is led: a record sent with acks=0
    # before then is lost (Kafka answers it nothing and closes the connection on
    # NOT_LEADER_OR_FOLLOWER), which a broker just given the topic may still answer.
    led = contextplane(*cli(broker, "produce", "fire-and-forget"), stdin="led\n")
    assert led.status == 0, led.err
    produced = cli(broker, "produce", "fire-and-forget", "--acks", "0")
    table = contextplane(*produced, stdin="a\nb\n")
    assert table.rows() == [
        ["TOPIC", "PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"],
        ["fire-and-forget", "0", "2", "-", "-"],
    ]
    document = contextplane(*produced, "--output", "json", stdin="c\n").json()
    assert document["partitions"] == [
        {"partition": 0, "records": 1, "first_offset": None, "last_offset": None}
    ]
    records = read_all(broker, "fire-and-forget", 4)
    assert [(offset, value) for _, offset, _, value, _ in records] == [
        (0, b"led"),
        (1, b"a"),
        (2, b"b"),
        (3, b"c"),
    ]


def test_produce_partitions_keyed_records_as_kafkas_producer_does(
    broker: Cluster, admin: AdminClient
) -> None:
    # librdkafka's default (CRC32) would put most of these keys elsewhere; the context
    # service's partitioned instances skip a record found outside its key's partition.
    create(admin, "keyed", 4)
    keys = [f"account-{n}" for n in range(24)]
    contextplane(
        *cli(broker, "produce", "keyed", "--key-separator", "|"),
        stdin="".join(f"{key}|v\n" for key in keys),
    )
    placed = {key.decode(): partition for partition, _, key, *_ in read_all(broker, "keyed", 24)}
    assert placed == {key: entity_partition(key, 4) for key in keys}
    assert len(set(placed.values())) == 4


def test_produce_fails_naming_the_error_when_a_record_is_refused(
    broker: Cluster, admin: AdminClient
) -> None:
    create(admin, "small", 1, **{"max.message.bytes": "200"})
    refused = contextplane(*cli(broker, "produce", "small"), stdin="x" * 500 + "\n")
    assert one_error_line(refused) == (
        "contextplane produce: topic 'small': MSG_SIZE_TOO_LARGE (Broker: Message size too large)"
    )
    assert refused.out.rstrip().endswith("0 of 1 records written")
    unknown = contextplane(*cli(broker, "produce", "absent"), stdin="x\n")
    assert one_error_line(unknown) == (
        "contextplane produce: topic 'absent': UNKNOWN_TOPIC_OR_PART "
        "(Broker: Unknown topic or partition)"
    )
    no_partition = contextplane(*cli(broker, "produce", "small", "--partition", "7"), stdin="x\n")
    assert one_error_line(no_partition) == "contextplane produce: topic 'small' has no partition 7"
    create(admin, "readonly", 1)
    deny(admin, "readonly", AclOperation.WRITE)
    forbidden = contextplane(*cli(broker, "produce", "readonly"), stdin="x\n")
    assert one_error_line(forbidden) == (
        "contextplane produce: topic 'readonly': TOPIC_AUTHORIZATION_FAILED "
        "(Broker: Topic authorization failed)"
    )
    header = contextplane(*cli(broker, "produce", "small", "-H", "novalue"), stdin="x\n")
    assert one_error_line(header, status=2) == (
        "contextplane produce: -H expects NAME=VALUE, got 'novalue'"
    )


def produce(broker: Cluster, topic: str, count: int, partition: int = 0) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(count):
        producer.produce(
            topic,
            key=f"k{i}".encode(),
            value=f"value {i}".encode(),
            partition=partition,
            headers=[("i", str(i).encode())],
            timestamp=1_700_000_000_000 + i,
        )
    assert producer.flush(30) == 0


def test_consume_prints_records_in_kcat_formats_and_json(
    broker: Cluster, admin: AdminClient
) -> None:
    create(admin, "events", 2)
    produce(broker, "events", 5, partition=1)
    shown = contextplane(
        *cli(
            broker,
            "consume",
            "events",
            "--from-beginning",
            "-n",
            "5",
            "--format",
            "%t %p %o %T %k=%v %h",
        )
    )
    assert shown.status == 0, shown.err
    assert shown.out.splitlines() == [
        f"events 1 {i} {1_700_000_000_000 + i} k{i}=value {i} i={i}" for i in range(5)
    ]
    assert shown.err.strip() == "Processed a total of 5 messages"
    documents = contextplane(
        *cli(broker, "consume", "events", "--offset", "3", "--timeout", "1", "--output", "json")
    )
    assert [json.loads(line) for line in documents.out.splitlines()] == [
        {
            "topic": "events",
            "partition": 1,
            "offset": i,
            "timestamp": 1_700_000_000_000 + i,
            "key": f"k{i}",
            "value": f"value {i}",
            "headers": [["i", str(i)]],
        }
        for i in (3, 4)
    ]
    # Without --from-beginning or --offset: only what arrives after it starts.
    idle = contextplane(*cli(broker, "consume", "events", "--timeout", "1"))
    assert idle.status == 0 and idle.out == ""
    create(admin, "unreadable", 1)
    deny(admin, "unreadable", AclOperation.READ)
    forbidden = contextplane(
        *cli(broker, "consume", "unreadable", "--from-beginning", "--timeout", "10")
    )
    assert one_error_line(forbidden).startswith(
        "contextplane consume: topic 'unreadable': TOPIC_AUTHORIZATION_FAILED"
    )
    unknown = contextplane(*cli(broker, "consume", "absent", "--timeout", "1"))
    assert one_error_line(unknown) == (
        "contextplane consume: topic 'absent': UNKNOWN_TOPIC_OR_PART "
        "(Broker: Unknown topic or partition)"
    )


def test_consume_offset_takes_kcats_forms(broker: Cluster, admin: AdminClient) -> None:
    create(admin, "tail", 2)
    produce(broker, "tail", 5, partition=0)
    produce(broker, "tail", 2, partition=1)

    def shown(*start: str) -> list[str]:
        run = contextplane(
            *cli(broker, "consume", "tail", *start, "--timeout", "1", "--format", "%p %o")
        )
        assert run.status == 0, run.err
        return sorted(run.out.splitlines())

    # -N: the last N offsets of each partition, from its start where it holds fewer.
    assert shown("-o", "-3") == ["0 2", "0 3", "0 4", "1 0", "1 1"]
    assert shown("-o", "-1") == ["0 4", "1 1"]
    assert shown("-o", "beginning") == [f"0 {i}" for i in range(5)] + ["1 0", "1 1"]
    assert shown("-o", "end") == []
    assert shown("-o", "4") == ["0 4"]
    assert shown("-o", "s@1700000000001", "-p", "1") == ["1 1"]
    for start, problem in (
        ("-0", "-0 is not a count of offsets from the end"),
        ("last", "'last': expected beginning, end, stored, N, -N (the last N offsets) or s@MS"),
        ("s@soon", "neither epoch milliseconds nor an ISO 8601 time"),
        ("9223372036854775808", "'9223372036854775808': expected beginning, end"),
    ):
        refused = contextplane(*cli(broker, "consume", "tail", "-o", start))
        assert refused.status == 2 and problem in refused.err, (start, refused.err)
    stored = contextplane(*cli(broker, "consume", "tail", "-o", "stored"))
    assert one_error_line(stored, status=2) == (
        "contextplane consume: -o stored reads the group's committed offsets: it needs -g GROUP"
    )
    grouped = contextplane(
        *cli(broker, "consume", "tail", "-g", "tailers", "-o", "-1", "-n", "2", "--format", "%p %o")
    )
    assert sorted(grouped.out.splitlines()) == ["0 4", "1 1"]
    # -o stored with -g: from the offsets the group just committed, so nothing is left.
    assert shown("-g", "tailers", "-o", "stored") == []
    # A log start moved past the tail: from the log start (kcat: OFFSET_OUT_OF_RANGE).
    for future in admin.delete_records([TopicPartition("tail", 0, 3)]).values():
        future.result(30)
    assert shown("-o", "-4") == ["0 3", "0 4", "1 0", "1 1"]


def test_consume_with_a_group_commits_what_it_printed(broker: Cluster, admin: AdminClient) -> None:
    create(admin, "jobs", 1)
    produce(broker, "jobs", 6)
    first = contextplane(
        *cli(broker, "consume", "jobs", "-g", "workers", "--from-beginning", "-n", "4")
    )
    assert first.out.splitlines() == [f"value {i}" for i in range(4)]
    request = [ConsumerGroupTopicPartitions("workers")]
    offsets = admin.list_consumer_group_offsets(request)["workers"].result(30)
    assert [(tp.topic, tp.partition, tp.offset) for tp in offsets.topic_partitions] == [
        ("jobs", 0, 4)
    ]
    rest = contextplane(*cli(broker, "consume", "jobs", "-g", "workers", "--timeout", "2"))
    assert rest.out.splitlines() == ["value 4", "value 5"]


def test_ctrl_c_mid_stream_reports_what_was_printed(broker: Cluster, admin: AdminClient) -> None:
    create(admin, "interrupted", 1)
    produce(broker, "interrupted", 3)
    consume = subprocess.Popen(
        [sys.executable, "-m", "contextplane.cli.launch"]
        + list(cli(broker, "consume", "interrupted", "--from-beginning")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=sigint_as_from_a_terminal,
    )
    try:
        assert consume.stdout is not None
        lines = [consume.stdout.readline() for _ in range(3)]
        assert lines == [f"value {i}\n".encode() for i in range(3)]
        consume.send_signal(signal.SIGINT)
        _, err = consume.communicate(timeout=30)
    finally:
        consume.kill()
    assert consume.returncode == 0, err
    assert err.decode().strip().splitlines()[-1] == "Processed a total of 3 messages"
