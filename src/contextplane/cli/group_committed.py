"""A group's committed offsets read by a consumer of the group that never joins it,
not by the AdminClient's ListConsumerGroupOffsets: librdkafka (2.16, and its master
still) answers an OffsetFetch error that asks for a new coordinator (NOT_COORDINATOR,
COORDINATOR_NOT_AVAILABLE: what Apache Kafka answers while its group coordinator moves
or starts) by queuing an op to the client's consumer group handle, which an admin client
does not have: `rd_kafka_handle_OffsetFetch` dereferences NULL and the process dies of
SIGSEGV in librdkafka's main thread, with nothing printed. A consumer has that handle:
it finds the coordinator again and asks again."""

from __future__ import annotations

from typing import Any

from contextplane.cli.kafka_client import (
    ADMIN_TIMEOUT_S,
    CommandError,
    exception_text,
    kafka_error_text,
)


def committed(
    config: dict[str, Any], group: str, partitions: list[tuple[str, int]], what: str
) -> list[Any]:
    """`group`'s committed offsets of `partitions` (confluent-kafka TopicPartitions, offset
    negative where nothing is committed, with the commit's metadata); CommandError
    starting with `what` otherwise."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(config | {"group.id": group, "enable.auto.commit": False})
    try:
        asked = [TopicPartition(topic, partition) for topic, partition in partitions]
        fetched = consumer.committed(asked, timeout=ADMIN_TIMEOUT_S)
    except KafkaException as exc:
        raise CommandError(f"{what}: {exception_text(exc)}") from None
    finally:
        consumer.close()
    for tp in fetched:
        if tp.error is not None:
            raise CommandError(f"{what} ({tp.topic}-{tp.partition}): {kafka_error_text(tp.error)}")
    return list(fetched)
