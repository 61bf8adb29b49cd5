"""The masking policies in force: `__contextplane_masking` partition 0 folded from this
broker's storage (as schema_catalog.py folds `_schemas`), caught up before each fetch
that may be masked, so a policy written is applied from the next fetch on.

Policies live in a compacted topic rather than the metadata store because the writers
(`contextplane mask`, any Kafka client allowed WRITE on it) are Kafka clients, ACLs
already govern who may write and read it, and compaction keeps one record per policy;
a broker that reads the topic needs nothing else (RFC 0005, "Slice 8 as built").
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from contextplane.cluster.leadership import NotLeader
from contextplane.errors import KafkaError
from contextplane.logsafe import escape
from contextplane.protocol.record_codec import read_records
from contextplane.security.masking_policy import MASKING_TOPIC, MaskingPolicy, parse_policy

if TYPE_CHECKING:
    from contextplane.storage.engine import StorageEngine
    from contextplane.storage.partition import PartitionLog

READ_BYTES = 1024 * 1024
DECOMPRESSED_BYTES_MAX = 64 * 1024 * 1024
# Policies kept; past it a new name is ignored (logged), never an old one dropped.
POLICIES_MAX = 10_000

log = logging.getLogger(__name__)


class MaskingPolicies:
    def __init__(self, topic: str = MASKING_TOPIC) -> None:
        self.topic = topic
        self._partition: PartitionLog | None = None
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

    def behind(self, storage: StorageEngine) -> bool:
        """Does the fold need a catch-up? (No lock: the common fetch asks only this.)"""
        partition = storage.partitions.get((self.topic, 0))
        if partition is not self._partition or self.incomplete:
            return True
        if partition is None:  # led by another broker, or none: asked at every fetch
            return (self.topic, 0) in storage.led_elsewhere
        return partition is not None and self._position < partition.high_watermark

    async def catch_up(self, storage: StorageEngine) -> None:
        async with self._lock:
            self.incomplete = False
            try:
                partition: PartitionLog | None = storage.partition(self.topic, 0)
            except NotLeader:
                # The topic exists but another broker leads it: this one cannot know the
                # policies, so it sends no records (fail closed) until it leads it.
                partition, self.incomplete = None, True
            except KafkaError:
                partition = None  # no policy topic: no policies
            if partition is not self._partition:
                self._partition = partition
                self._policies = {}
                self._by_principal = None
                self._position = 0 if partition is None else partition.log_start_offset
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
