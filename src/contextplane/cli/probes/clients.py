"""Producing and reading back records within a probe's time, with what the cluster
answered kept as evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contextplane.cli.kafka_client import kafka_error_text
from contextplane.cli.probes.base import ProbeContext, ProbeFailure

# A probe reads back at most this many records (it wrote far fewer).
READ_MAX = 10_000


@dataclass(frozen=True)
class Record:
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp_ms: int | None = None  # CreateTime; the producer's clock when None
    partition: int = 0


@dataclass(frozen=True)
class Delivered:
    """What a delivery report or a fetched message says of one record."""

    record: Record
    partition: int
    offset: int
    timestamp: tuple[int, int]  # confluent-kafka's (type, ms)


def produce(
    ctx: ProbeContext, topic: str, records: list[Record], **config: object
) -> list[Delivered]:
    """`records` produced with acks=all (and `config`), each one's report; ProbeFailure
    with Kafka's error for the first refused, or when not all were acknowledged in time."""
    from confluent_kafka import Producer

    producer = Producer(ctx.client_config(**({"acks": "all"} | config)))
    reports: list[tuple[Record, Any, Any]] = []
    for record in records:
        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        producer.produce(
            topic,
            value=record.value,
            key=record.key,
            headers=headers or None,
            partition=record.partition,
            timestamp=record.timestamp_ms or 0,
            on_delivery=_reporter(reports, record),
        )
    left = producer.flush(ctx.remaining_s())
    for _, error, _ in reports:
        if error is not None:
            raise ProbeFailure(f"produce to {topic!r}: {kafka_error_text(error)}")
    if left:
        raise ProbeFailure(f"produce to {topic!r}: {left} records unacknowledged in time")
    return [
        Delivered(record, message.partition(), message.offset(), message.timestamp())
        for record, _, message in reports
    ]


def _reporter(reports: list[tuple[Record, Any, Any]], record: Record) -> Any:
    """The delivery callback of `record`: its report kept beside it."""

    def report(error: Any, message: Any) -> None:
        reports.append((record, error, message))

    return report


def read_back(ctx: ProbeContext, topic: str, count: int, **config: object) -> list[Any]:
    """The first `count` messages of `topic`'s partitions from their start, read by a
    consumer of no group (assigned partitions, nothing committed)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        ctx.client_config(
            **(
                {
                    "group.id": ctx.group("reader"),
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                }
                | config
            )
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=ctx.remaining_s())
        partitions = sorted(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        return poll(ctx, consumer, count)
    finally:
        consumer.close()


def poll(ctx: ProbeContext, consumer: Any, count: int) -> list[Any]:
    """`count` messages from `consumer` (ProbeFailure on a fetch error, or fewer in time)."""
    messages: list[Any] = []
    while len(messages) < min(count, READ_MAX):
        try:
            left = ctx.remaining_s()
        except ProbeFailure:
            raise ProbeFailure(f"read {len(messages)} of {count} records in time") from None
        message = consumer.poll(min(left, 1.0))
        if message is None:
            continue
        error = message.error()
        if error is not None:
            raise ProbeFailure(f"fetch: {kafka_error_text(error)}")
        messages.append(message)
    return messages
