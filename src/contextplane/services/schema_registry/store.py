"""Where the registry's records live. `KafkaStore` is the `_schemas` topic of any Kafka
cluster, through confluent-kafka; `MemoryStore` applies records at once (for tests of
everything above the store, as the broker's MemoryWal is).

A write returns only once the store's own reader has applied the record (Confluent's
KafkaStore waits the same way): an answer never says more than a restart rebuilds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.clock import SystemClock
from contextplane.partition_leader import refresh_leader
from contextplane.services.schema_registry.errors import (
    RegistryError,
    store_error,
    store_timeout,
)
from contextplane.services.schema_registry.records import SCHEMAS_TOPIC, encode

log = logging.getLogger("contextplane.schema_registry")

Apply = Callable[[bytes | None, bytes | None], None]
Record = tuple[dict[str, Any], dict[str, Any] | None]
# What the reader thread hands over: (a record, or the partition's end; key; value; offset).
_Read = tuple[bool, bytes | None, bytes | None, int]

# Records handed from the reader thread to the event loop at once.
READ_BATCH_MAX = 500
# How long the reader waits for a record before it checks whether it is stopping.
READ_WAIT_S = 0.2
END_OFFSET_RETRY_S = 0.2
# How long the start may wait for the topic (created, led, replayed): Confluent's
# `kafkastore.init.timeout.ms` default.
INIT_TIMEOUT_S = 60.0


class Store(Protocol):
    async def start(self, apply: Apply) -> None: ...

    async def sync(self) -> None:
        """Before a write is decided: the state holds every record the store has."""

    async def write(self, records: list[Record]) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    def __init__(self) -> None:
        self.log: list[tuple[bytes | None, bytes | None]] = []
        self._apply: Apply | None = None

    async def start(self, apply: Apply) -> None:
        self._apply = apply
        for key, value in self.log:
            apply(key, value)

    async def sync(self) -> None:
        pass  # records are applied as they are written

    async def write(self, records: list[Record]) -> None:
        assert self._apply is not None, "write before start"
        for key, value in records:
            encoded = (encode(key), encode(value))
            self.log.append(encoded)
            self._apply(*encoded)

    async def close(self) -> None:
        self._apply = None


class KafkaStore:
    def __init__(
        self,
        bootstrap: str,
        *,
        topic: str = SCHEMAS_TOPIC,
        replication_factor: int = -1,
        timeout_s: float = 30.0,
        init_timeout_s: float = INIT_TIMEOUT_S,
        client_config: dict[str, str] | None = None,
    ) -> None:
        common: dict[str, str | int | float | bool] = {
            "bootstrap.servers": bootstrap,
            **(client_config or {}),
        }
        self._common = common
        self._topic = topic
        self._replication_factor = replication_factor
        self._timeout_s = timeout_s
        self._init_timeout_s = init_timeout_s
        self._producer = Producer(
            {
                **common,
                "acks": "all",
                # One request at a time keeps the records in order through retries
                # without idempotence (whose fatal states would need a new producer); a
                # record retried twice is applied twice, to the same effect.
                "max.in.flight.requests.per.connection": 1,
                "enable.idempotence": False,
                # Every record is delivered or failed within the timeout: a write that
                # timed out is settled one way or the other before the next is decided.
                "message.timeout.ms": int(timeout_s * 1000),
                "linger.ms": 0,
            }
        )
        # The reader's consumer is busy in consume() on its thread, and confluent-kafka
        # runs one call at a time per handle: the end offset is asked on a handle of its
        # own, else a write would wait for the reader's poll.
        self._offsets = Consumer(
            {**common, "group.id": f"contextplane-schema-registry-{uuid.uuid4()}"}
        )
        self._consumer = Consumer(
            {
                **common,
                # Partitions are assigned, never subscribed: the group is never joined.
                "group.id": f"contextplane-schema-registry-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # The end of the partition moves the applied offset past any gap that
                # compaction left at the end (the high watermark may be no record's).
                "enable.partition.eof": True,
            }
        )
        self._apply: Apply | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_offset = 0  # one past the last record applied
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._stopping = threading.Event()
        self._reader: threading.Thread | None = None
        # A write failed or timed out: some of its records may still land, so the next
        # write reads to the topic's end before it decides anything.
        self._unsure = False

    async def start(self, apply: Apply) -> None:
        """Create the topic if missing, then replay it to its end before returning, all
        within the init timeout (Confluent's `kafkastore.init.timeout.ms`): a topic just
        created has no leader until a broker of the cluster claims it, which is waited
        for, as are retriable errors."""
        self._apply = apply
        self._loop = asyncio.get_running_loop()
        deadline = self._loop.time() + self._init_timeout_s
        await asyncio.to_thread(self._create_topic, deadline)
        high = await self._end_offset(deadline, self._not_ready)
        self._consumer.assign([TopicPartition(self._topic, 0, OFFSET_BEGINNING)])
        self._reader = threading.Thread(target=self._read, name="schemas-reader", daemon=True)
        self._reader.start()
        what = f"replaying {self._topic} to offset {high}"
        await self._until_applied(high, what, max(0.0, deadline - self._loop.time()))

    def _not_ready(self, reason: str) -> RegistryError:
        return store_timeout(
            f"{self._topic} was not ready within the init timeout of"
            f" {self._init_timeout_s:g} s; the last Kafka error: {reason}"
        )

    async def sync(self) -> None:
        if not self._unsure:
            return
        assert self._loop is not None
        # Records of the failed write may still land: only once none is outstanding
        # (each is delivered or failed within message.timeout.ms) does the topic's end
        # say everything that will ever be in it.
        outstanding = await asyncio.to_thread(self._producer.flush, self._timeout_s)
        if outstanding:
            raise store_timeout(f"{outstanding} earlier records to {self._topic} are unresolved")
        high = await self._end_offset(
            self._loop.time() + self._timeout_s,
            lambda reason: store_timeout(f"the end offset of {self._topic}: {reason}"),
        )
        await self._until_applied(high, f"reading {self._topic} to offset {high}")
        self._unsure = False

    async def _end_offset(self, deadline: float, timed_out: Callable[[str], RegistryError]) -> int:
        """The topic's high watermark, asked again until `deadline`: a topic just created
        may have no leader yet. Each ask is bounded by what remains, so no call outlives
        the request that made it; a failed ask refreshes the handle's metadata, without
        which it would go on failing (partition_leader.py)."""
        assert self._loop is not None
        partition = TopicPartition(self._topic, 0)
        reason = logged = "no answer"
        while (remaining := deadline - self._loop.time()) > 0:
            try:
                offsets = await asyncio.to_thread(
                    self._offsets.get_watermark_offsets, partition, remaining
                )
                if offsets is not None:
                    return int(offsets[1])
            except KafkaException as exc:
                reason = str(exc)
                reason = await self._leader_missing(deadline) or reason
            if reason != logged:  # once per reason, not every retry
                log.info("waiting for %s: %s", self._topic, reason)
                logged = reason
            await asyncio.sleep(END_OFFSET_RETRY_S)
        raise timed_out(reason)

    async def _leader_missing(self, deadline: float) -> str | None:
        """What the cluster says partition 0 lacks (None: it has a leader now)."""
        assert self._loop is not None
        remaining = min(self._timeout_s, deadline - self._loop.time())
        if remaining <= 0:
            return None
        try:
            missing = await asyncio.to_thread(
                refresh_leader, self._offsets, self._topic, 0, remaining
            )
        except KafkaException as exc:
            return str(exc)
        return f"partition 0 of {self._topic}: {missing}" if missing else None

    def _create_topic(self, deadline: float) -> None:
        """Create the topic, asked again after a retriable error until `deadline` (on
        the event loop's clock, asyncio's being `time.monotonic`)."""
        admin = AdminClient(self._common)
        topic = NewTopic(
            self._topic,
            num_partitions=1,
            replication_factor=self._replication_factor,
            config={"cleanup.policy": "compact"},
        )
        reason = "no answer"
        clock = SystemClock()
        while (remaining := deadline - clock.monotonic_ms() / 1000) > 0:
            future = admin.create_topics([topic], request_timeout=remaining)[self._topic]
            try:
                future.result(remaining)
                log.info("created topic %s", self._topic)
                return
            except TimeoutError:  # concurrent.futures': no message of its own
                break
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    return
                reason = str(error)
                # librdkafka's own request timeout can fire first ("Failed while
                # waiting for controller"): the same unanswered request.
                if error.code() == KafkaError._TIMED_OUT:
                    break
                if not error.retriable():
                    raise
            log.info("creating %s: %s; retrying", self._topic, reason)
            time.sleep(END_OFFSET_RETRY_S)
        raise store_timeout(
            f"creating {self._topic} on {self._common['bootstrap.servers']} got no answer"
            f" within the init timeout of {self._init_timeout_s:g} s (is the Kafka cluster"
            f" reachable?); the last Kafka error: {reason}"
        )

    def _read(self) -> None:
        """The reader thread: every record, in order, handed to the event loop."""
        assert self._loop is not None
        while not self._stopping.is_set():
            try:
                # consume() waits for a full batch or its timeout: it would hold every
                # write's read-back for the timeout. poll() returns on the first record,
                # then what is already fetched is taken without waiting.
                first = self._consumer.poll(READ_WAIT_S)
                if first is None:
                    continue
                messages = [first, *self._consumer.consume(READ_BATCH_MAX - 1, timeout=0)]
            except KafkaException as exc:
                log.warning("reading %s failed (%s); retrying", self._topic, exc)
                continue
            batch: list[_Read] = []
            for message in messages:
                error = message.error()
                offset = message.offset()
                if offset is None:  # only an error without a partition has none
                    log.warning("reading %s: %s", self._topic, error)
                elif error is None:
                    batch.append((True, message.key(), message.value(), offset))
                elif error.code() == KafkaError._PARTITION_EOF:
                    batch.append((False, None, None, offset))
                else:
                    log.warning("reading %s: %s", self._topic, error)
            if batch:
                try:
                    self._loop.call_soon_threadsafe(self._apply_batch, batch)
                except RuntimeError:  # the loop closed under a stopping registry
                    return

    def _apply_batch(self, batch: list[_Read]) -> None:
        assert self._apply is not None
        for is_record, key, value, offset in batch:
            if not is_record:  # the end of the partition: everything before it is applied
                self._next_offset = max(self._next_offset, offset)
            elif offset >= self._next_offset:
                try:
                    self._apply(key, value)
                except Exception:
                    # `apply` skips what it cannot read; anything else it raises is a
                    # fault in one record's handling, which must not cost the rest of the
                    # batch or stop the offset (writes wait on it) from moving on.
                    log.exception("applying offset %d of %s failed; skipped", offset, self._topic)
                self._next_offset = offset + 1
        still: list[tuple[int, asyncio.Future[None]]] = []
        for offset, waiter in self._waiters:
            if self._next_offset >= offset:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((offset, waiter))
        self._waiters = still

    async def _until_applied(
        self, next_offset: int, what: str, timeout_s: float | None = None
    ) -> None:
        if self._next_offset >= next_offset:
            return
        assert self._loop is not None
        timeout_s = self._timeout_s if timeout_s is None else timeout_s
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append((next_offset, waiter))
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except TimeoutError:
            raise store_timeout(f"{what} took longer than {timeout_s:.0f} s") from None

    async def write(self, records: list[Record]) -> None:
        self._unsure = True  # until the records are read back
        last = await asyncio.to_thread(self._produce, records)
        await self._until_applied(last + 1, f"reading back offset {last} of {self._topic}")
        self._unsure = False

    def _produce(self, records: list[Record]) -> int:
        """Produce `records` in order; the offset of the last one."""
        results: list[tuple[KafkaError | None, int]] = []

        def delivered(error: KafkaError | None, message: Any) -> None:
            results.append((error, -1 if error else int(message.offset())))

        for key, value in records:
            self._producer.produce(
                self._topic,
                key=encode(key),
                value=encode(value),
                partition=0,
                on_delivery=delivered,
            )
        self._producer.flush(self._timeout_s)
        if len(results) < len(records):
            raise store_timeout(
                f"producing to {self._topic} took longer than {self._timeout_s:.0f} s"
            )
        errors = [error for error, _ in results if error is not None]
        if errors:
            raise store_error(str(errors[0]))
        return max(offset for _, offset in results)

    async def close(self) -> None:
        self._stopping.set()
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 5.0)
        await asyncio.to_thread(self._consumer.close)
        await asyncio.to_thread(self._offsets.close)
        await asyncio.to_thread(self._producer.flush, 5.0)
