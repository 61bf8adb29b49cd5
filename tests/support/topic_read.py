"""Reading partitions to a given offset with a real consumer (confluent-kafka), at either
isolation level: what the transaction tests compare against what they wrote."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, TopicPartition

from tests.support.wait import wait_until

TIMEOUT_S = 60  # liveness bound of a read (a broker restart included)


def read_to(
    bootstrap: str,
    topic: str,
    until: dict[int, int],
    isolation: str = "read_committed",
    timeout_s: float = TIMEOUT_S,
) -> dict[int, list[tuple[int, bytes]]]:
    """The (offset, value) of every record each partition hands out below `until[p]`, read
    from offset 0. Control records and, read_committed, aborted records are skipped by
    the consumer but move its position, so a reader reaches `until` past them."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in until])
    records: dict[int, list[tuple[int, bytes]]] = {p: [] for p in until}

    positions: dict[int, int] = {}
    errors: list[str] = []

    def caught_up() -> bool:
        for message in consumer.consume(1000, 0.2):
            if message.error() is not None:
                errors.append(str(message.error()))
            else:
                records[message.partition()].append((message.offset(), message.value()))
        for tp in consumer.position([TopicPartition(topic, p) for p in until]):
            positions[tp.partition] = tp.offset
        return all(positions[p] >= end for p, end in until.items() if end)

    try:
        wait_until(caught_up, timeout_s, f"{isolation} read of {topic} reaches {until}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; at {positions}, errors {errors[-5:]}") from None
    finally:
        consumer.close()
    return records


def read_values(
    bootstrap: str, topic: str, until: int, isolation: str = "read_committed"
) -> list[bytes]:
    """The values of partition 0 below `until`, in offset order."""
    return [value for _, value in read_to(bootstrap, topic, {0: until}, isolation)[0]]


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's high watermark."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"ends-{uuid.uuid4().hex[:8]}"}
    )
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT_S)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()
