"""A group's committed offsets read by OffsetFetch sent through kafka-python
(`protocol_admin.py`), not by confluent-kafka: librdkafka (2.16, and its master still)
answers an OffsetFetch error that asks for a new coordinator (NOT_COORDINATOR,
COORDINATOR_NOT_AVAILABLE: what Apache Kafka answers while its group coordinator moves
or starts) by queuing an op to the client's consumer group handle, which an admin client
does not have: `rd_kafka_handle_OffsetFetch` dereferences NULL and the process dies of
SIGSEGV in librdkafka's main thread, with nothing printed. Here such an answer makes the
coordinator be found again and the fetch asked again, for at most ADMIN_TIMEOUT_S; every
other error is a CommandError naming Kafka's error (GROUP_AUTHORIZATION_FAILED, ...)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from contextplane.cli.kafka_client import ADMIN_TIMEOUT_S, CommandError
from contextplane.cli.protocol_admin import error_text
from contextplane.clock import SystemClock

T = TypeVar("T")
Partition = tuple[str, int]

# What a coordinator answers while it is not ready (loading, moving, just created).
COORDINATOR_NOT_READY = (
    "COORDINATOR_LOAD_IN_PROGRESS",
    "COORDINATOR_NOT_AVAILABLE",
    "NOT_COORDINATOR",
)
# kafka-python's failure to reach the broker it picked (one killed, still in Metadata):
# the next try picks another, as Kafka's AdminClient does, within the same bound.
UNREACHABLE = ("KafkaConnectionError",)
_COORDINATOR_RETRY_S = 0.5


@dataclass(frozen=True)
class Committed:
    """A committed offset (negative where the group has none) and the commit's metadata."""

    offset: int
    metadata: str | None


def coordinator_ready(call: Callable[[], T]) -> T:
    """`call`, asked again while the group coordinator is loading or moving (a cluster
    just started answers COORDINATOR_LOAD_IN_PROGRESS for a while: its CommandError
    names one of COORDINATOR_NOT_READY) or a broker it picked is not reachable, for at
    most ADMIN_TIMEOUT_S."""
    clock = SystemClock()
    deadline_ms = clock.monotonic_ms() + ADMIN_TIMEOUT_S * 1000
    while True:
        try:
            return call()
        except CommandError as exc:
            retriable = any(
                f": {name}" in str(exc) for name in (*COORDINATOR_NOT_READY, *UNREACHABLE)
            )
            if not retriable or clock.monotonic_ms() >= deadline_ms:
                raise
        time.sleep(_COORDINATOR_RETRY_S)


def committed(
    admin: Any, group: str, partitions: list[Partition] | None, what: str
) -> dict[Partition, Committed]:
    """`group`'s committed offsets of `partitions` (None: every partition it has committed
    offsets for), from the kafka-python KafkaAdminClient `admin` (`protocol_admin.connect`);
    CommandError starting with `what` where Kafka answers an error."""
    return coordinator_ready(functools.partial(_fetch, admin, group, partitions, what))


def _fetch(
    admin: Any, group: str, partitions: list[Partition] | None, what: str
) -> dict[Partition, Committed]:
    from kafka import TopicPartition
    from kafka.errors import KafkaError
    from kafka.protocol.metadata.find_coordinator import CoordinatorType

    asked = None if partitions is None else [TopicPartition(t, p) for t, p in partitions]
    try:
        fetched = admin.list_group_offsets({group: asked})[group]
    except KafkaError as exc:
        name = getattr(exc, "message", "")
        if name in COORDINATOR_NOT_READY or type(exc).__name__ in UNREACHABLE:
            # kafka-python keeps the coordinator it found; the next try asks anew.
            admin._manager.cluster._coordinators.pop((CoordinatorType.GROUP, group), None)
        raise CommandError(f"{what}: {error_text(type(exc), None)}") from None
    return {
        (tp.topic, tp.partition): Committed(found.offset, found.metadata or None)
        for tp, found in fetched.items()
    }


def connected(config: dict[str, str], call: Callable[[Any], T]) -> T:
    """`call` given a kafka-python admin client of the cluster `config` (librdkafka
    settings, bootstrap included) names, closed after."""
    from contextplane.cli.protocol_admin import connect_with

    admin = connect_with(config)
    try:
        return call(admin)
    finally:
        admin.close()
