"""`contextplane mirror` from Apache Kafka 4.4 (the harness's reference broker) into a
contextplane broker: what a consumer of the target reads is what a consumer of the
source reads, offset for offset (keys, values, headers, timestamps, a log start moved by
DeleteRecords, committed and aborted transactions at either isolation level); a topic
config set on the source is set on the target; a consumer group moves from the source to
the target and goes on without losing or repeating a record; a mirror killed mid-way,
or whose progress record is older than what it appended, resumes without a duplicate;
Apache Kafka given as the target of `--mode offsets` is refused before anything is
created on it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    ResourcePatternType,
    ResourceType,
)

from contextplane.cli.mirror_state import STATE_TOPIC
from harness import kafka_reference
from tests.support.cli import contextplane, one_error_line
from tests.support.inprocess import InProcessBroker
from tests.support.mirror import commit_part, create, produce, read_all, transaction
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka_reference.KafkaHandle]:
    handle = kafka_reference.start(data_dir=tmp_path_factory.mktemp("kafka"), timeout=120)
    yield handle
    handle.stop()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[InProcessBroker]:
    # The group that moves over joins at once rather than after Kafka's 3-s initial delay.
    running = InProcessBroker(
        tmp_path / "target", settings={"group.initial.rebalance.delay.ms": "0"}
    ).start()
    yield running
    running.stop()


def mirror(kafka: kafka_reference.KafkaHandle, target: InProcessBroker, *args: str) -> Any:
    run = contextplane(
        "mirror",
        "--source-bootstrap-server",
        kafka.bootstrap,
        "--bootstrap-server",
        target.bootstrap,
        "--once",
        "--output",
        "json",
        *args,
        timeout_s=80,
    )
    return run.json()


def test_offsets_records_configs_and_a_group_move_over(
    kafka: kafka_reference.KafkaHandle, target: InProcessBroker
) -> None:
    topic = f"orders-{uuid.uuid4().hex[:6]}"
    create(kafka.bootstrap, topic, 2, **{"retention.ms": "86400000"})
    produce(kafka.bootstrap, topic, 0, 30)
    transaction(kafka.bootstrap, topic, 0, [b"kept-1", b"kept-2"], commit=True)
    transaction(kafka.bootstrap, topic, 0, [b"aborted-1", b"aborted-2"], commit=False)
    produce(kafka.bootstrap, topic, 0, 5, start=30)
    produce(kafka.bootstrap, topic, 1, 40)
    source_admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    deleted = source_admin.delete_records([TopicPartition(topic, 1, 12)])
    list(deleted.values())[0].result(30)
    # A group that read part of each partition on the source.
    group = f"billing-{uuid.uuid4().hex[:6]}"
    before = commit_part(kafka.bootstrap, group, topic, 0, 10)
    before += commit_part(kafka.bootstrap, group, topic, 1, 10)

    summary = mirror(kafka, target, "--topics", topic, "--group-offsets", "--groups", group)

    assert [(p["partition"], p["lag"]) for p in summary["partitions"]] == [(0, 0), (1, 0)]
    for partition in (0, 1):
        for isolation in ("read_uncommitted", "read_committed"):
            source = read_all(kafka.bootstrap, topic, partition, isolation)
            assert source, (partition, isolation)
            assert read_all(target.bootstrap, topic, partition, isolation) == source
    assert read_all(target.bootstrap, topic, 1)[0][1] == 12  # the log start came over
    committed = [r[3] for r in read_all(target.bootstrap, topic, 0, "read_committed")]
    assert b"kept-1" in committed and b"aborted-1" not in committed
    target_admin = AdminClient({"bootstrap.servers": target.bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = target_admin.describe_configs([resource])[resource].result(30)
    assert configs["retention.ms"].value == "86400000"
    assert set(summary["groups"][group]) == {f"{topic}:0", f"{topic}:1"}

    # The group goes on on the target: together with what it read on the source, every
    # record once.
    everything = sorted(
        (r[0], r[1]) for p in (0, 1) for r in read_all(kafka.bootstrap, topic, p, "read_committed")
    )
    after = consume_group(target.bootstrap, group, topic, len(everything) - len(before))
    assert sorted(before + after) == everything, (before, after, everything)


def consume_group(bootstrap: str, group: str, topic: str, expected: int) -> list[tuple[int, int]]:
    """The records `group` reads (committing each), as (partition, offset): until
    `expected` arrived (or 60 s passed), then whatever else arrives within a second, so
    that a record read twice or one too many shows."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + 60
    extra_until: float | None = None
    try:
        while time.monotonic() < (extra_until or deadline):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                seen.append((message.partition(), message.offset()))
                consumer.commit(message, asynchronous=False)
            if extra_until is None and len(seen) >= expected:
                extra_until = time.monotonic() + 1.0
    finally:
        consumer.close()
    return seen


def test_resumes_after_a_kill_and_a_stale_progress_record(
    kafka: kafka_reference.KafkaHandle, target: InProcessBroker
) -> None:
    topic = f"events-{uuid.uuid4().hex[:6]}"
    create(kafka.bootstrap, topic, 1)
    produce(kafka.bootstrap, topic, 0, 30_000)
    running = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "contextplane.cli.launch",
            "mirror",
            "--source-bootstrap-server",
            kafka.bootstrap,
            "--bootstrap-server",
            target.bootstrap,
            "--topics",
            topic,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: high_watermark(target.bootstrap, topic) > 0, 60, "the mirror's first appends"
        )
    finally:
        running.send_signal(signal.SIGKILL)
        running.wait(30)
    produce(kafka.bootstrap, topic, 0, 100, start=30_000)
    mirror(kafka, target, "--topics", topic)
    source = read_all(kafka.bootstrap, topic, 0)
    assert len(source) == 30_100
    assert read_all(target.bootstrap, topic, 0) == source

    # Progress stored as if the last appends had not been recorded: they are sent again,
    # acknowledged, and not written twice.
    stale = Producer({"bootstrap.servers": target.bootstrap})
    stale.produce(STATE_TOPIC, key=json.dumps([topic, 0]).encode(), value=b'{"next": 0}')
    assert stale.flush(30) == 0
    summary = mirror(kafka, target, "--topics", topic)
    assert summary["partitions"][0]["mirrored_end"] == 30_100
    assert high_watermark(target.bootstrap, topic) == 30_100
    assert read_all(target.bootstrap, topic, 0) == source


def high_watermark(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError._UNKNOWN_PARTITION:
            raise
        return 0  # the mirror has not created the topic yet
    finally:
        consumer.close()


def test_a_target_without_alter_on_the_cluster_refuses_the_appends(
    kafka: kafka_reference.KafkaHandle, tmp_path: Path
) -> None:
    settings = {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "true",
    }
    secured = InProcessBroker(tmp_path / "secured", settings=settings).start()
    try:
        deny = AclBinding(
            ResourceType.BROKER,
            "kafka-cluster",
            ResourcePatternType.LITERAL,
            "User:ANONYMOUS",
            "*",
            AclOperation.ALTER,
            AclPermissionType.DENY,
        )
        admin = AdminClient({"bootstrap.servers": secured.bootstrap})
        admin.create_acls([deny])[deny].result(30)
        topic = f"refused-{uuid.uuid4().hex[:6]}"
        create(kafka.bootstrap, topic, 1)
        produce(kafka.bootstrap, topic, 0, 3)
        run = contextplane(
            "mirror",
            "--source-bootstrap-server",
            kafka.bootstrap,
            "--bootstrap-server",
            secured.bootstrap,
            "--topics",
            topic,
            "--once",
            timeout_s=80,
        )
        assert one_error_line(run) == (
            f"contextplane mirror: mirror append to {topic}-0 on the target: "
            "CLUSTER_AUTHORIZATION_FAILED"
        )
        assert high_watermark(secured.bootstrap, topic) == 0
    finally:
        secured.stop()


def test_a_target_topic_with_records_no_mirror_wrote_is_refused(
    kafka: kafka_reference.KafkaHandle, target: InProcessBroker
) -> None:
    """Its batches would otherwise pass for the source's (a batch below the log end is
    acknowledged as mirrored already)."""
    topic = f"taken-{uuid.uuid4().hex[:6]}"
    create(kafka.bootstrap, topic, 1)
    produce(kafka.bootstrap, topic, 0, 3)
    create(target.bootstrap, topic, 1)
    produce(target.bootstrap, topic, 0, 2)
    run = contextplane(
        "mirror",
        "--source-bootstrap-server",
        kafka.bootstrap,
        "--bootstrap-server",
        target.bootstrap,
        "--topics",
        topic,
        "--once",
        timeout_s=80,
    )
    assert one_error_line(run) == (
        f"contextplane mirror: {topic}-0 holds 2 offsets on the target that this mirror did "
        "not write: mirror into a new or empty topic"
    )


def test_apache_kafka_as_the_target_of_mode_offsets_is_refused_before_anything_is_created(
    kafka: kafka_reference.KafkaHandle, tmp_path: Path
) -> None:
    """(Without `--mode offsets` the mirror copies into it: test_cli_mirror_back.py.)"""
    source = InProcessBroker(tmp_path / "source").start()
    try:
        topic = f"wrong-way-{uuid.uuid4().hex[:6]}"
        create(source.bootstrap, topic, 1)
        produce(source.bootstrap, topic, 0, 3)
        run = contextplane(
            "mirror",
            "--source-bootstrap-server",
            source.bootstrap,
            "--bootstrap-server",
            kafka.bootstrap,
            "--topics",
            topic,
            "--mode",
            "offsets",
            "--once",
            timeout_s=80,
        )
    finally:
        source.stop()
    assert one_error_line(run, status=2) == (
        f"contextplane mirror: the target ({kafka.bootstrap}) is not contextplane: it does "
        "not serve MirrorAppend, which --mode offsets writes with; give a contextplane "
        "cluster as --bootstrap-server, or --mode copy"
    )
    on_kafka = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=30).topics
    assert topic not in on_kafka and STATE_TOPIC not in on_kafka
