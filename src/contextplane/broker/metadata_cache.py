"""Encoded Metadata topic entries, per API version.

With many partitions the topic entries are nearly the whole Metadata response, and
building and encoding them per request kept every other connection waiting. An entry is
made from the topic's name, id, partition count and the leadership of its partitions
(this broker's, or another live broker's as the metadata store said), so it is kept until
one of those changes (the topic table's, the leadership's and the registry's generations
say when something may have); the list of every topic is re-joined whenever one changes.
A leadership change (a claim for a new topic, a partition fenced away, a leader's broker
gone) re-encodes only the topics whose leadership differs: comparing each cached topic's
leaders costs a dictionary lookup per partition, encoding it anew tens of microseconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from contextplane.broker.internal_topics import is_internal
from contextplane.broker.leaders import Leaders
from contextplane.broker.topics import TopicManager
from contextplane.broker.zone_proxy import ZoneProxies
from contextplane.cluster.registry import Registry
from contextplane.metadata.records import TopicRecord
from contextplane.protocol.codec import encode_entity
from contextplane.protocol.error_codes import ErrorCode
from contextplane.storage.engine import StorageEngine

if TYPE_CHECKING:
    from contextplane.cluster.zone_router import Unreachable

_OPERATIONS_NOT_REQUESTED = -(2**31)
# A partition's (leader, epoch, replica, read replicas), as its entry was encoded.
Leadership = tuple[int, int, int, tuple[int, ...]]


class MetadataCache:
    def __init__(
        self,
        topics: TopicManager,
        log: StorageEngine,
        node_id: int,
        registry: Registry,
        leaders: Leaders,
        rack: str | None = None,
        unreachable: Unreachable | None = None,
    ) -> None:
        self._topics = topics
        self._unreachable = unreachable  # leaders the zone writes' proxy cannot reach
        self._log = log
        self._node_id = node_id
        self._rack = rack  # broker.rack
        self._registry = registry
        self._leaders = leaders
        # (version, zone, name) -> the entry; zone "" for every client, else the entry a
        # client of that zone gets with the zone writes' proxy (`partition_entries`).
        self._entries: dict[tuple[int, str, str], tuple[tuple[bytes, int], bytes]] = {}
        # Each cached topic's leadership when its entries were encoded.
        self._leadership: dict[str, tuple[Leadership, ...]] = {}
        self._leaderless: dict[str, int] = {}  # each cached topic's partitions without one
        self._all: dict[tuple[int, str], tuple[bytes, int, dict[int, int]]] = {}
        self._generation: tuple[int, int, int, int] = (-1, -1, -1, -1)

    def topic(
        self, version: int, build: Callable[..., Any], record: TopicRecord, zone: str = ""
    ) -> bytes:
        """One topic's encoded entry; `build(topics=[...])` makes this version's response."""
        self._sync()
        if not self._holds(version, zone, record):
            self._encode(version, zone, build, [record])
        return self._entries[(version, zone, record.name)][1]

    def topic_with_operations(
        self,
        version: int,
        build: Callable[..., Any],
        record: TopicRecord,
        operations: int,
        zone: str = "",
    ) -> bytes:
        """One topic's entry with its authorized-operations bit set (not cached: the
        bits are the principal's)."""
        entry = dict(self._topic_entry(record, zone), topic_authorized_operations=operations)
        return encode_entity(build(topics=[entry]).topics[0])

    def all_topics(
        self, version: int, build: Callable[..., Any], zone: str = ""
    ) -> tuple[bytes, int, dict[int, int]]:
        """Every topic's entry, joined, how many there are, and their error codes
        (code -> occurrences, Kafka's errorCounts() of them)."""
        self._sync()
        cached = self._all.get((version, zone))
        if cached is None:
            records = list(self._topics.topics().values())
            missing = [r for r in records if not self._holds(version, zone, r)]
            if missing:
                self._encode(version, zone, build, missing)
            blob = b"".join(self._entries[(version, zone, r.name)][1] for r in records)
            errors: dict[int, int] = {}
            for record in records:
                self.count_errors(record, errors)
            cached = self._all[(version, zone)] = (blob, len(records), errors)
        return cached

    def count_errors(self, record: TopicRecord, errors: dict[int, int]) -> None:
        """Add a topic entry's error codes to `errors`: the topic's (NONE) and each
        partition's (LEADER_NOT_AVAILABLE without a live leader), as `_topic_entry`."""
        leaderless = self._leaderless.get(record.name)
        if leaderless is None:  # not cached (an entry with authorized operations)
            leaderless = sum(
                1
                for index in range(record.partitions)
                if self._leaders.of(record.name, index)[0] == -1
            )
        none = 1 + record.partitions - leaderless
        errors[ErrorCode.none] = errors.get(ErrorCode.none, 0) + none
        if leaderless:
            code = ErrorCode.leader_not_available
            errors[code] = errors.get(code, 0) + leaderless

    def _sync(self) -> None:
        generation = (
            self._topics.generation,
            self._log.leadership.generation,
            self._registry.generation,
            self._unreachable_generation(),
        )
        if generation == self._generation:
            return
        leadership_changed = generation[1:] != self._generation[1:]
        brokers_changed = generation[2:] != self._generation[2:]
        self._generation = generation
        self._all.clear()
        current = self._topics.topics()
        changed: set[str] = set()
        if leadership_changed:
            for name, leadership in self._leadership.items():
                record = current.get(name)
                if record is None or self._leadership_of(record) != leadership:
                    changed.add(name)
        for key, (identity, _) in list(self._entries.items()):
            record = current.get(key[2])
            stale = record is None or key[2] in changed or _identity(record) != identity
            if stale or (key[1] and brokers_changed):  # (a zone's brokers may have changed)
                del self._entries[key]
        cached = {name for _, _, name in self._entries}
        for name in [n for n in self._leadership if n not in cached]:
            del self._leadership[name]
            self._leaderless.pop(name, None)

    def _unreachable_generation(self) -> int:
        if self._unreachable is None:
            return 0
        self._unreachable.nodes()  # drops the lapsed ones (a new generation)
        return self._unreachable.generation

    def _holds(self, version: int, zone: str, record: TopicRecord) -> bool:
        cached = self._entries.get((version, zone, record.name))
        return cached is not None and cached[0] == _identity(record)

    def _encode(
        self, version: int, zone: str, build: Callable[..., Any], records: list[TopicRecord]
    ) -> None:
        built = build(topics=[self._topic_entry(r, zone) for r in records]).topics
        for record, entity in zip(records, built, strict=True):
            encoded = encode_entity(entity)
            self._entries[(version, zone, record.name)] = (_identity(record), encoded)
            leadership = self._leadership[record.name] = self._leadership_of(record)
            self._leaderless[record.name] = sum(1 for lead, *_ in leadership if lead == -1)

    def _leadership_of(self, record: TopicRecord) -> tuple[Leadership, ...]:
        """Each of the topic's partitions' (leader, epoch, replica, read replicas); leader
        -1: no live leader (its epoch the stored one)."""
        leaders = self._leaders
        return tuple(
            (
                *leaders.listed(record.name, index),
                leaders.replica(record.name, index),
                leaders.read_replicas(record.name, index),
            )
            for index in range(record.partitions)
        )

    def partition_entries(
        self, record: TopicRecord, start: int, end: int, zone: str = ""
    ) -> list[dict[str, Any]]:
        """The Metadata partition entries of the topic's partitions `start` to `end`
        (exclusive): what DescribeTopicPartitions answers too. For a client of `zone`
        (the zone writes' proxy, RFC 0004 §7), a partition led in another zone is listed
        as led, at its leader's epoch, by the broker of the client's zone that serves it
        (`zone_proxy`)."""
        leaders = self._leaders
        partitions = []
        proxies = None
        if zone:
            unreachable = frozenset() if self._unreachable is None else self._unreachable.nodes()
            proxies = ZoneProxies(self._registry, self._node_id, self._rack, zone, unreachable)
        for index in range(start, end):
            leader, epoch = leaders.listed(record.name, index)
            proxy = -1 if proxies is None else proxies.of(record.name, index, leader)
            if proxy != -1:
                partitions.append(_entry(index, proxy, epoch, [proxy], [proxy], []))
                continue
            # One replica (RF=1): where the partition is, even on a broker that is gone.
            replica = leaders.replica(record.name, index)
            # Brokers of other racks serving it from objects (KIP-392), with the selector.
            readers = list(leaders.read_replicas(record.name, index))
            isr = [leader, *readers] if leader != -1 else []
            offline = [replica] if leaders.is_offline(replica) else []
            partitions.append(_entry(index, leader, epoch, [replica, *readers], isr, offline))
        return partitions

    def _topic_entry(self, record: TopicRecord, zone: str = "") -> dict[str, Any]:
        partitions = self.partition_entries(record, 0, record.partitions, zone)
        return {
            "error_code": ErrorCode.none,
            "name": record.name,
            "topic_id": uuid.UUID(bytes=record.topic_id),
            "is_internal": is_internal(record.name),
            "partitions": partitions,
            "topic_authorized_operations": _OPERATIONS_NOT_REQUESTED,
        }


def _identity(record: TopicRecord) -> tuple[bytes, int]:
    """What a topic's Metadata entry is made from, besides its name and leadership."""
    return record.topic_id, record.partitions


def _entry(
    index: int, leader: int, epoch: int, replicas: list[int], isr: list[int], offline: list[int]
) -> dict[str, Any]:
    return {
        "error_code": ErrorCode.none if leader != -1 else ErrorCode.leader_not_available,
        "partition_index": index,
        "leader_id": leader,
        "leader_epoch": epoch,
        "replica_nodes": replicas,
        "isr_nodes": isr,
        "offline_replicas": offline,
    }
