"""Clients of a source and a target cluster for the mirror's tests: topics created,
records produced with keys, headers and timestamps, transactions, and a partition read
whole as a consumer sees it (creating, producing and reading through a secured listener
too, given its librdkafka security settings)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.cli import Run, contextplane
from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until

Record = tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes]], int]
Security = dict[str, str] | None  # librdkafka's security settings of a secured listener

COORDINATOR_NOT_READY = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


def create(
    bootstrap: str, topic: str, partitions: int, security: Security = None, **configs: str
) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap} | (security or {}))
    admin.create_topics([NewTopic(topic, partitions, 1, config=configs)])[topic].result(30)


def produce(
    bootstrap: str,
    topic: str,
    partition: int,
    count: int,
    start: int = 0,
    security: Security = None,
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5} | (security or {}))
    # Explicit and an hour old, within every retention the test sets.
    first_ms = int(time.time() * 1000) - 3_600_000
    for n in range(start, start + count):
        producer.produce(
            topic,
            key=None if n % 5 == 0 else f"k{n}".encode(),
            value=f"v{n}".encode() * (1 + n % 3),
            partition=partition,
            headers=[("n", str(n).encode()), ("h", b"x")] if n % 2 else None,
            timestamp=first_ms + n,
        )
    assert producer.flush(30) == 0


def transaction(
    bootstrap: str, topic: str, partition: int, values: list[bytes], commit: bool
) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex[:6]}"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for value in values:
        producer.produce(topic, value=value, partition=partition)
    producer.flush(30)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def read_all(
    bootstrap: str,
    topic: str,
    partition: int,
    isolation: str = "read_uncommitted",
    security: Security = None,
) -> list[Record]:
    """Every record of a partition from its log start to its end, as a consumer sees it."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,  # the end reported at once, not after a 500-ms empty fetch
        }
        | (security or {})
    )
    # The leader known before the assignment (else librdkafka retries the offset 500 ms on).
    consumer.list_topics(topic, timeout=30)
    consumer.assign([TopicPartition(topic, partition, -2)])  # OFFSET_BEGINNING
    seen: list[Record] = []
    idle = 0
    try:
        while idle < 60:  # a liveness bound: 30 s without a record
            message = consumer.poll(0.5)
            if message is None:
                idle += 1
                continue
            idle = 0
            if message.error() is not None:
                break  # end of the partition
            seen.append(
                (
                    message.partition(),
                    message.offset(),
                    message.key(),
                    message.value(),
                    list(message.headers() or []),
                    message.timestamp()[1],
                )
            )
    finally:
        consumer.close()
    return seen


def commit_part(
    bootstrap: str, group: str, topic: str, partition: int, count: int
) -> list[tuple[int, int]]:
    """`group` reads `count` records of one partition and commits after them."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.list_topics(topic, timeout=30)  # the leader known before the assignment
    consumer.assign([TopicPartition(topic, partition, -2)])
    seen: list[tuple[int, int]] = []
    try:
        while len(seen) < count:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                seen.append((message.partition(), message.offset()))
        # The source's group coordinator may still be loading: its errors are retriable.
        wait_until(lambda: committed(consumer, message), 30, "the source's commit")
    finally:
        consumer.close()
    return seen


def committed(consumer: Consumer, message: Any) -> bool:
    try:
        consumer.commit(message, asynchronous=False)
    except KafkaException as exc:
        if exc.args[0].code() not in COORDINATOR_NOT_READY:
            raise
        return False
    return True


@contextlib.contextmanager
def two_brokers(root: Path) -> Iterator[tuple[InProcessBroker, InProcessBroker]]:
    """A source and a target contextplane broker under `root`, stopped on leaving."""
    source = InProcessBroker(root / "source").start()
    target = InProcessBroker(root / "target").start()
    try:
        yield source, target
    finally:
        target.stop()
        source.stop()


def mirror_once(source: str, target: str, topics: str, timeout_s: float = 60.0) -> Run:
    """`contextplane mirror --once` of `topics` (comma-separated) from source to target."""
    return contextplane(
        *("mirror", "--source-bootstrap-server", source, "--bootstrap-server", target),
        *("--topics", topics, "--once"),
        timeout_s=timeout_s,
    )


def log_end(bootstrap: str, topic: str, partition: int = 0) -> int:
    """A partition's high watermark (its log end: control records count)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        watermarks = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        return int(watermarks[1])
    finally:
        consumer.close()


def start_mirror(
    source: str, target: str, *extra: str, preexec_fn: Callable[[], None] | None = None
) -> subprocess.Popen[str]:
    """`contextplane mirror` of the topic `clicks` from `source` into `target`, running
    until stopped, its summary a JSON document on stdout."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "contextplane.cli.launch",
            "mirror",
            "--source-bootstrap-server",
            source,
            "--bootstrap-server",
            target,
            "--topics",
            "clicks",
            "--output",
            "json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,
    )
