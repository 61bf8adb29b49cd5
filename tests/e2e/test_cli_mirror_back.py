"""The rollback: `contextplane mirror` from a contextplane broker back into Apache Kafka
4.4 (the harness's reference broker), which cannot take batches at given offsets, so the
mirror copies records in transactions and translates consumer group offsets. Every
committed record arrives once, in order, with its key, value, headers and timestamp, and
no aborted one; a group's offset on Kafka points at the record it pointed at on
contextplane; a second run copies only what is new; a mirror killed with SIGKILL mid-copy
and run again loses and duplicates nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from harness import kafka_reference
from tests.support.cli import contextplane
from tests.support.inprocess import InProcessBroker
from tests.support.mirror import Record, commit_part, create, produce, read_all, transaction
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka_reference.KafkaHandle]:
    handle = kafka_reference.start(data_dir=tmp_path_factory.mktemp("kafka"), timeout=120)
    yield handle
    handle.stop()


@pytest.fixture
def source(tmp_path: Path) -> Iterator[InProcessBroker]:
    running = InProcessBroker(tmp_path / "source").start()
    yield running
    running.stop()


def mirror_back(source: InProcessBroker, kafka: kafka_reference.KafkaHandle, *args: str) -> Any:
    run = contextplane(
        "mirror",
        "--source-bootstrap-server",
        source.bootstrap,
        "--bootstrap-server",
        kafka.bootstrap,
        "--once",
        "--output",
        "json",
        *args,
        stdin="",
        timeout_s=120,
    )
    return run.json()


def contents(records: list[Record]) -> list[tuple[Any, ...]]:
    """What a record is apart from where it is: key, value, headers, timestamp."""
    return [(key, value, headers, timestamp) for _, _, key, value, headers, timestamp in records]


def test_rollback_copies_committed_records_and_translates_a_group(
    kafka: kafka_reference.KafkaHandle, source: InProcessBroker
) -> None:
    topic = f"orders-{uuid.uuid4().hex[:6]}"
    create(source.bootstrap, topic, 2)
    produce(source.bootstrap, topic, 0, 30)
    transaction(source.bootstrap, topic, 0, [b"kept-1", b"kept-2"], commit=True)
    transaction(source.bootstrap, topic, 0, [b"aborted-1", b"aborted-2"], commit=False)
    produce(source.bootstrap, topic, 0, 5, start=30)
    produce(source.bootstrap, topic, 1, 40)
    # Partition 0's commit falls on the first transaction's marker (its next record is past
    # the aborted ones), partition 1's inside a run of records.
    group = f"billing-{uuid.uuid4().hex[:6]}"
    commit_part(source.bootstrap, group, topic, 0, 32)
    commit_part(source.bootstrap, group, topic, 1, 10)

    summary = mirror_back(source, kafka, "--topics", topic, "--group-offsets", "--groups", group)

    assert summary["mode"] == "copy"
    assert [(p["partition"], p["copied"], p["lag"]) for p in summary["partitions"]] == [
        (0, 37, 0),
        (1, 40, 0),
    ]
    for partition in (0, 1):
        committed = read_all(source.bootstrap, topic, partition, "read_committed")
        copied = read_all(kafka.bootstrap, topic, partition, "read_committed")
        assert contents(copied) == contents(committed)
        everything = [r[3] for r in read_all(kafka.bootstrap, topic, partition)]
        assert b"aborted-1" not in everything and len(everything) == len(committed)
    source_at = {(topic, 0): 32, (topic, 1): 10}
    target_at = group_offsets(kafka.bootstrap, group, topic)
    assert summary["groups"][group] == {
        f"{topic}:{p}": {"source": source_at[(topic, p)], "target": target_at[(topic, p)]}
        for p in (0, 1)
    }
    for partition in (0, 1):
        key = (topic, partition)
        assert next_record(kafka.bootstrap, topic, partition, target_at[key]) == next_record(
            source.bootstrap, topic, partition, source_at[key]
        )

    # A second run copies only what was produced since.
    produce(source.bootstrap, topic, 1, 5, start=40)
    again = mirror_back(source, kafka, "--topics", topic)
    assert [(p["partition"], p["copied"]) for p in again["partitions"]] == [(0, 0), (1, 5)]
    assert contents(read_all(kafka.bootstrap, topic, 1, "read_committed")) == contents(
        read_all(source.bootstrap, topic, 1, "read_committed")
    )


def group_offsets(bootstrap: str, group: str, topic: str) -> dict[tuple[str, int], int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    asked = ConsumerGroupTopicPartitions(group, partitions)
    fetched = admin.list_consumer_group_offsets([asked])[group].result(30)
    return {(tp.topic, tp.partition): tp.offset for tp in fetched.topic_partitions}


def next_record(bootstrap: str, topic: str, partition: int, offset: int) -> tuple[Any, ...]:
    """The record a consumer positioned at `offset` reads first (by content)."""
    ahead = [r for r in read_all(bootstrap, topic, partition, "read_committed") if r[1] >= offset]
    return contents(ahead[:1])[0]


def test_a_mirror_killed_mid_copy_resumes_without_loss_or_duplicates(
    kafka: kafka_reference.KafkaHandle, source: InProcessBroker
) -> None:
    topic = f"events-{uuid.uuid4().hex[:6]}"
    create(source.bootstrap, topic, 1)
    produce(source.bootstrap, topic, 0, 30_000)
    running = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "contextplane.cli.launch",
            "mirror",
            "--source-bootstrap-server",
            source.bootstrap,
            "--bootstrap-server",
            kafka.bootstrap,
            "--topics",
            topic,
            "--mode",
            "copy",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # The first round's records are on Kafka, its transaction maybe still open.
        wait_until(lambda: log_end(kafka.bootstrap, topic) > 0, 60, "the mirror's first records")
    finally:
        running.send_signal(signal.SIGKILL)
        running.wait(30)
    produce(source.bootstrap, topic, 0, 100, start=30_000)

    summary = mirror_back(source, kafka, "--topics", topic, "--mode", "copy")

    committed = read_all(source.bootstrap, topic, 0, "read_committed")
    assert len(committed) == 30_100
    assert contents(read_all(kafka.bootstrap, topic, 0, "read_committed")) == contents(committed)
    assert summary["partitions"][0]["copied_to"] == 30_100


def log_end(bootstrap: str, topic: str) -> int:
    """The partition's log end on Kafka (records of open transactions included)."""
    from confluent_kafka import Consumer, KafkaError, KafkaException

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError._UNKNOWN_PARTITION:
            raise
        return 0  # the mirror has not created the topic yet
    finally:
        consumer.close()
