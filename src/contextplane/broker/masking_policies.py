"""The masking policies in force: `__contextplane_masking` partition 0 folded from this
broker's storage (as schema_catalog.py folds `_schemas`), caught up before each fetch
that may be masked, so a policy written is applied from the next fetch on.

Policies live in a compacted topic rather than the metadata store because the writers
(`contextplane mask`, any Kafka client allowed WRITE on it) are Kafka clients, ACLs
already govern who may write and read it, and compaction keeps one record per policy;
a broker that reads the topic needs nothing else (RFC 0005, "Slice 8 as built").

A broker of a cluster that does not lead the topic reads it from its leader through
`remote` (topic_follower.py), caught up before each fetch to the high watermark the
leader answers then; when the leader cannot be asked or read in time, `incomplete` is set
and the fetch handler sends no records (fail closed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from contextplane.broker.topic_follower import FollowError, TopicFollower
from contextplane.cluster.leadership import NotLeader
from contextplane.errors import KafkaError
from contextplane.logsafe import escape
from contextplane.protocol.record_codec import read_records
from contextplane.security.masking_policy import MASKING_TOPIC, MaskingPolicy, parse_policy
from contextplane.storage.partition import PartitionLog

if TYPE_CHECKING:
    from contextplane.storage.engine import StorageEngine

READ_BYTES = 1024 * 1024
DECOMPRESSED_BYTES_MAX = 64 * 1024 * 1024
# Policies kept; past it a new name is ignored (logged), never an old one dropped.
POLICIES_MAX = 10_000
# The fold's source when another broker leads the topic.
REMOTE = "remote"

log = logging.getLogger(__name__)


class MaskingPolicies:
    def __init__(self, topic: str = MASKING_TOPIC) -> None:
        self.topic = topic
        self._partition: PartitionLog | str | None = None  # local, REMOTE, or none
        # Set once the broker listens (broker/app.py): how to read the topic when another
        # broker leads it; None fails closed there.
        self.remote: TopicFollower | None = None
        self._position = 0
        self._policies: dict[str, MaskingPolicy] = {}
        # principal (or "*") -> its policies, rebuilt after the fold changes: a fetch looks
        # at its own principal's policies only, however many others there are.
        self._by_principal: dict[str, list[MaskingPolicy]] | None = None
        # The last catch-up could not read the topic: policies may be missing.
        self.incomplete = False
        self._lock = asyncio.Lock()

    @property
    def any(self) -> bool:
        return bool(self._policies)

    def all(self) -> list[MaskingPolicy]:
        return list(self._policies.values())

    def covering(self, principal: str, topic: str) -> list[MaskingPolicy]:
        index = self._by_principal
        if index is None:
            index = self._by_principal = {}
            for policy in self._policies.values():
                index.setdefault(policy.principal, []).append(policy)
        candidates = index.get(principal, []) + index.get("*", [])
        return [p for p in candidates if p.covers(principal, topic)]

    def ticket(self) -> int:
        """Taken when a fetch arrives, before `catch_up` (see TopicFollower.ticket)."""
        return self.remote.ticket() if self.remote is not None else 0

    def behind(self, storage: StorageEngine, exists: bool = False) -> bool:
        """Does the fold need a catch-up? (No lock: the common fetch asks only this.)
        `exists`: the topic is in this broker's topic table."""
        partition = storage.partitions.get((self.topic, 0))
        if self.incomplete:
            return True
        if partition is None:  # led by another broker (asked at every fetch), or none
            elsewhere = (self.topic, 0) in storage.led_elsewhere
            return self._partition is not None or exists or elsewhere
        moved = partition is not self._partition
        return moved or self._position < partition.high_watermark

    async def catch_up(self, storage: StorageEngine, ticket: int = 0, exists: bool = False) -> None:
        """`exists`: the topic is in this broker's topic table (its leader may not be in
        the storage engine's mirror yet: it is then asked through the follower)."""
        async with self._lock:
            self.incomplete = False
            try:
                partition: PartitionLog | None = storage.partition(self.topic, 0)
            except NotLeader:
                # The topic exists but another broker leads it (or none does yet).
                await self._catch_up_remote(ticket)
                return
            except KafkaError:
                if exists:  # created elsewhere, its leader not noted here yet
                    await self._catch_up_remote(ticket)
                    return
                partition = None  # no policy topic: no policies
            self._switch(partition)
            if partition is None:
                return
            while self._position < partition.high_watermark and not partition.deleted:
                self._position = max(self._position, partition.log_start_offset)
                end = partition.high_watermark
                try:
                    batches = await storage.read(partition, self._position, READ_BYTES)
                except (KafkaError, OSError) as exc:
                    # The fetch handler answers an error rather than data a policy it has
                    # not read yet may cover; the next fetch retries.
                    log.warning("reading %s failed: %s", self.topic, exc)
                    self.incomplete = True
                    return
                before = self._position
                self._position = self._apply(batches, before, end)
                if self._position == before:
                    return

    async def _catch_up_remote(self, ticket: int) -> None:
        """Fold the leader's records up to the high watermark it answers after `ticket`."""
        follower = self.remote
        if follower is None:
            self.incomplete = True
            return
        self._switch(REMOTE)
        try:
            marks = await follower.end_since(ticket)
            if marks.high < self._position:  # deleted and created again: fold afresh
                self._switch(None)
                self._switch(REMOTE)
            self._position = max(self._position, marks.log_start)
            while self._position < marks.high:
                chunk = await follower.read(self._position, marks.high)
                for record in chunk.records:
                    if record.key is not None:
                        self._fold(record.key, record.value)
                self._position = chunk.position
        except FollowError as exc:
            log.warning("masking policies: %s", exc)
            self.incomplete = True

    def _switch(self, source: PartitionLog | str | None) -> None:
        """Start the fold afresh when its source changed (leadership moved, topic
        created again)."""
        if source is self._partition:
            return
        self._partition = source
        self._policies = {}
        self._by_principal = None
        self._position = source.log_start_offset if isinstance(source, PartitionLog) else 0

    def _apply(self, batches: list[bytes | memoryview], position: int, end: int) -> int:
        for batch in batches:
            header, records = read_records(batch, DECOMPRESSED_BYTES_MAX)
            if not header.is_control:
                for record in records:
                    if position <= record.offset < end and record.key is not None:
                        self._fold(bytes(record.key), record.value)
            position = max(position, min(end, header.base_offset + header.last_offset_delta + 1))
        return position

    def _fold(self, key: bytes, value: bytes | None) -> None:
        name = key.decode(errors="replace")
        self._by_principal = None
        if value is None:
            self._policies.pop(name, None)
            return
        try:
            policy = parse_policy(name, bytes(value))
        except ValueError as exc:
            # Another writer's mistake: the name's previous policy stays in force (fail
            # closed: a bad update never unmasks).
            log.warning("masking policy %s skipped: %s", escape(name), escape(str(exc)))
            return
        if name not in self._policies and len(self._policies) >= POLICIES_MAX:
            log.warning("masking policy %s ignored: past %d policies", escape(name), POLICIES_MAX)
            return
        self._policies[name] = policy
