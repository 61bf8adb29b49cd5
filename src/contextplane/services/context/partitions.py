"""Partitioned context instances (RFC 0006 §1, "Partitioned instances as built"): the
sources co-partitioned by entity id, which partition an entity lives in, and which
instance of the group owns a partition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import AdminClient

# A member's client id carries the URL its instance serves at, after this separator
# (the classic group protocol has no other field a librdkafka client can fill).
URL_SEPARATOR = "@"


def co_partitioned(counts: dict[str, int]) -> int:
    """The one partition count every source topic has; ValueError naming each topic and
    its count when they differ (an entity's records would land in partitions of
    different numbers, which no one instance owns together)."""
    distinct = set(counts.values())
    if len(distinct) != 1:
        named = ", ".join(f"{t} has {n}" for t, n in sorted(counts.items()))
        raise ValueError(
            f"partitioned instances need co-partitioned sources (one partition count): {named}"
        )
    return distinct.pop()


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (`Utils.murmur2`), as a signed 32-bit value."""
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    end = length - length % 4
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length % 4
    if tail == 3:
        h ^= data[end + 2] << 16
    if tail >= 2:
        h ^= data[end + 1] << 8
    if tail >= 1:
        h ^= data[end]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


def entity_partition(entity: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record keyed by the entity id
    (Java's and librdkafka's `murmur2_random` alike): where its records are, when the
    producers key them by it."""
    return (murmur2(entity.encode()) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class Owner:
    client_id: str
    host: str
    url: str | None  # from the client id, when the instance advertised one


def client_id(name: str, instance: str, url: str | None) -> str:
    base = f"{name}-sources-{instance}"
    return base if url is None else f"{base}{URL_SEPARATOR}{url}"


def owners(admin: AdminClient, group: str, timeout_s: float) -> dict[int, Owner]:
    """Each partition number the group's members are assigned, with its member."""
    described: Any = admin.describe_consumer_groups([group], request_timeout=timeout_s)[
        group
    ].result(timeout_s)
    found: dict[int, Owner] = {}
    for member in described.members:
        cid = str(member.client_id)
        url = cid.split(URL_SEPARATOR, 1)[1] if URL_SEPARATOR in cid else None
        owner = Owner(cid, str(member.host), url)
        assignment = member.assignment
        parts: list[Any] = [] if assignment is None else list(assignment.topic_partitions)
        for tp in parts:
            found[int(tp.partition)] = owner
    return found
