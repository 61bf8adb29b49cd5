"""An internal consumer of partition 0 of a topic another broker leads: how a broker of a
cluster that does not lead `_schemas` or `__contextplane_masking` reads them, as
Confluent's registry reads `_schemas` (RFC 0005, "Catalogs in a cluster as built").

It bootstraps through this broker's own listener, as any client of the cluster does
(with the security properties of `contextplane.internal.client.config`, if any), and
librdkafka finds the leader from the Metadata answers (again after a failover; a
partition it saw without a leader, the topic just created, is asked about again when a
probe fails: partition_leader.py). A catch-up first asks the leader for its high
watermark (ListOffsets, `end_since`), then reads to it (`read`), so what the caller
folds is never older than what the leader had acknowledged when the caller's request
arrived. Concurrent callers share a probe that started after they arrived (a ticket
taken on arrival), so a burst of fetches costs one round trip, not one each.
librdkafka's calls block: they run on one thread of the follower's own, created on first
use (a broker that leads both topics, or has no validating topic and no policy, never
starts it). Memory: librdkafka's queue and each read are bounded by `read_bytes`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from contextplane.client_properties import read_client_properties
from contextplane.clock import Clock, SystemClock
from contextplane.partition_leader import refresh_leader

if TYPE_CHECKING:
    from contextplane.settings import Settings

log = logging.getLogger(__name__)

READ_BYTES = 1024 * 1024
# How long a catch-up may wait for the leader before the caller fails closed.
CATCH_UP_TIMEOUT_MS = 5_000
# One consume call's records and wait (librdkafka returns earlier once it has them).
CONSUME_BATCH = 500
CONSUME_WAIT_S = 0.2


class FollowError(Exception):
    """The leader could not be asked or read within the time allowed."""


@dataclass(frozen=True, slots=True)
class FollowedRecord:
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Chunk:
    records: list[FollowedRecord]
    position: int  # the next offset to read


@dataclass(frozen=True, slots=True)
class Watermarks:
    log_start: int
    high: int


class TopicFollower:
    def __init__(
        self,
        topic: str,
        bootstrap: Callable[[], str],
        clock: Clock | None = None,
        read_bytes: int = READ_BYTES,
        timeout_ms: int = CATCH_UP_TIMEOUT_MS,
        config: dict[str, str] | None = None,
    ) -> None:
        self.topic = topic
        self._config = config or {}  # security properties, librdkafka's names
        self.timeout_ms = timeout_ms
        self._bootstrap = bootstrap
        self._clock = clock or SystemClock()
        self._read_bytes = read_bytes
        self._executor: ThreadPoolExecutor | None = None
        self._consumer: Any = None
        self._assigned = -1  # the offset the consumer delivers next; -1: not assigned
        self._probes = 0  # probes started
        # The last probe's number and answer (a failure too: the callers it answered for
        # fail with it, rather than each wait for a probe of its own).
        self._answered: tuple[int, Watermarks | FollowError] | None = None
        self._probe_lock = asyncio.Lock()

    def ticket(self) -> int:
        """Taken when a request arrives: probes started after it count for it."""
        return self._probes

    async def end_since(self, ticket: int) -> Watermarks:
        """The leader's watermarks, from a probe started after `ticket` was taken."""
        async with self._probe_lock:
            answered = self._answered
            if answered is None or answered[0] <= ticket:
                self._probes += 1
                number = self._probes
                try:
                    low, high = await self._call(self._watermarks)
                    answered = self._answered = number, Watermarks(low, high)
                except FollowError as exc:
                    answered = self._answered = number, exc
            if isinstance(answered[1], FollowError):
                raise FollowError(str(answered[1]))  # a new one: no traceback grows
            return answered[1]

    async def read(self, position: int, end: int) -> Chunk:
        """Records from `position` on, until `end` is passed or `read_bytes` are read."""
        return await self._call(self._read, position, end)

    async def close(self) -> None:
        if self._executor is None:
            return
        if self._consumer is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)
        self._executor = None

    # -- on the follower's thread ---------------------------------------------------------

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"follow-{self.topic}")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, function, *args)
        except FollowError:
            raise
        except Exception as exc:  # librdkafka's KafkaException, a closed handle
            raise FollowError(f"reading {self.topic} from its leader failed: {exc}") from exc

    def _client(self) -> Any:
        if self._consumer is None:
            from confluent_kafka import Consumer

            self._consumer = Consumer(
                {
                    "bootstrap.servers": self._bootstrap(),
                    "group.id": f"__contextplane-follow-{self.topic}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    # A position out of range (the log start moved past it) reads from the
                    # start rather than skip to the end: records below it are ignored.
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_uncommitted",  # to the high watermark, as locally
                    "fetch.max.bytes": self._read_bytes,
                    "max.partition.fetch.bytes": self._read_bytes,
                    "queued.max.messages.kbytes": max(1, self._read_bytes // 1024),
                    "client.id": "contextplane-internal",
                    "logger": log,
                }
                | self._config
            )
        return self._consumer

    def _watermarks(self) -> tuple[int, int]:
        from confluent_kafka import KafkaException, TopicPartition

        consumer = self._client()
        partition = TopicPartition(self.topic, 0)
        deadline = self._clock.monotonic_ms() + self.timeout_ms

        def remaining_s() -> float:
            return max(0.001, (deadline - self._clock.monotonic_ms()) / 1000)

        try:
            low, high = consumer.get_watermark_offsets(
                partition, timeout=remaining_s(), cached=False
            )
        except KafkaException:
            # The handle may hold the partition as leaderless from an earlier ask (the
            # topic just created): refreshed, and asked again once it has a leader.
            missing = refresh_leader(consumer, self.topic, 0, remaining_s())
            if missing is not None:
                raise FollowError(f"{self.topic} has no leader: {missing}") from None
            low, high = consumer.get_watermark_offsets(
                partition, timeout=remaining_s(), cached=False
            )
        return int(low), int(high)

    def _read(self, position: int, end: int) -> Chunk:
        from confluent_kafka import KafkaError, TopicPartition

        consumer = self._client()
        if self._assigned != position:
            consumer.assign([TopicPartition(self.topic, 0, position)])
        self._assigned = -1  # unknown until this read ends well: assigned again next time
        deadline = self._clock.monotonic_ms() + self.timeout_ms
        records: list[FollowedRecord] = []
        size = 0
        while position < end and size < self._read_bytes:
            if self._clock.monotonic_ms() > deadline:
                raise FollowError(f"reading {self.topic} from its leader timed out at {position}")
            for message in consumer.consume(CONSUME_BATCH, CONSUME_WAIT_S):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    # Everything the leader had is read (compaction leaves gaps below it).
                    position = max(position, int(message.offset()))
                    continue
                if error is not None:
                    raise FollowError(f"reading {self.topic} from its leader: {error.str()}")
                offset = int(message.offset())
                if offset < position:
                    continue
                key, value = message.key(), message.value()
                records.append(FollowedRecord(offset, key, value))
                size += len(key or b"") + len(value or b"")
                position = offset + 1
        self._assigned = position
        return Chunk(records, position)

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        consumer.close()


class FollowedFold(Protocol):
    """A broker-side fold of an internal topic (the schema catalog, the masking
    policies) that reads it through `remote` when another broker leads it."""

    topic: str
    remote: TopicFollower | None


def follow_catalogs(
    settings: Settings,
    folds: tuple[FollowedFold, ...],
    advertised: Callable[[str], tuple[str, int]],
    clock: Clock | None = None,
) -> None:
    """How this broker reads `_schemas` and `__contextplane_masking` when another
    broker of the cluster leads them: an internal consumer bootstrapped through its own
    first listener of the internal client's security protocol (PLAINTEXT, or as
    `contextplane.internal.client.config` says; checked at load). Without such a
    listener the broker fails closed there, as it did before."""
    config: dict[str, str] = {}
    if settings.internal_client_config:
        config = read_client_properties(settings.internal_client_config)
    protocol = config.get("security.protocol", "PLAINTEXT").upper()
    chosen = [s for s in settings.listeners if s.security_protocol == protocol]
    if not chosen:
        return

    def bootstrap() -> str:
        host, port = advertised(chosen[0].name)
        return f"{host or settings.host}:{port}"

    for fold in folds:
        fold.remote = TopicFollower(fold.topic, bootstrap, clock or SystemClock(), config=config)
