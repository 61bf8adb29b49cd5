"""The workloads, all driven by librdkafka through confluent-kafka (the same client and
settings for every target).

The Python client is not the bottleneck at the rates measured here: producing ~100 MB/s
of 1 KiB messages costs the client about 0.4 of a core (it is reported as client_cpu), and
the consumer takes whole batches with `consume(num_messages=...)`.

Values are 1 KiB of base64 text made from random bytes: lz4 gets no gain from it, so the
figures are not flattered by compression. MB = 10^6 bytes of message values.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from bench.stats import latency_summary

MB = 1_000_000
_QUIET = {"log_level": 0, "log.connection.close": False}


def make_values(size: int, count: int = 1024) -> list[bytes]:
    out = []
    for _ in range(count):
        raw = base64.b64encode(os.urandom(size))[:size]
        out.append(raw)
    return out


def throughput_config(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.kbytes": 65_536,  # a short tail after the timed window
        "queue.buffering.max.messages": 2_000_000,
        "delivery.report.only.error": True,
        "message.timeout.ms": 120_000,
        **_QUIET,
    }


def latency_config(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 1,
        "message.timeout.ms": 60_000,
        **_QUIET,
    }


def tailing_consumer_config(bootstrap: str) -> dict[str, Any]:
    """The latency rows' tailing consumer, the same for every target (its Fetch waits up
    to 100 ms for a first byte, librdkafka's fetch.min.bytes=1 default)."""
    return {**consumer_config(bootstrap), "fetch.wait.max.ms": 100, "fetch.min.bytes": 1}


def consumer_config(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": f"bench-{os.getpid()}-{time.monotonic_ns()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        "queued.max.messages.kbytes": 262_144,
        "enable.partition.eof": False,
        **_QUIET,
    }


# -- topics ------------------------------------------------------------------------------


PARTITIONS_PER_REQUEST = 10_000


def create_topic(bootstrap: str, topic: str, partitions: int, timeout: float) -> dict[str, Any]:
    """CreateTopics, then wait until Metadata shows the topic. Returns seconds and the
    partition count the broker reports (Tansu may report a different one)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **_QUIET})
    t0 = time.monotonic()
    # One request may create at most 10,000 partitions with their topic's record (Kafka's
    # controller bound): a larger topic is created, then grown 10,000 at a time.
    counts = [min(partitions, PARTITIONS_PER_REQUEST - 1)]
    while counts[-1] < partitions:
        counts.append(min(partitions, counts[-1] + PARTITIONS_PER_REQUEST))
    error = None
    for index, count in enumerate(counts):
        options = {"operation_timeout": timeout, "request_timeout": timeout}
        if index == 0:
            futures = admin.create_topics([NewTopic(topic, count, 1)], **options)
        else:
            futures = admin.create_partitions([NewPartitions(topic, count)], **options)
        for future in futures.values():
            try:
                future.result(timeout=timeout + 5)
            except ck.KafkaException as exc:
                if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    error = str(exc)
            except Exception as exc:  # noqa: BLE001 - a timeout is reported, not raised
                error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            break
    seen = 0
    deadline = t0 + timeout
    while time.monotonic() < deadline and error is None:
        try:
            md = admin.list_topics(topic, timeout=max(1.0, deadline - time.monotonic()))
            meta = md.topics.get(topic)
            if meta is not None and meta.error is None and meta.partitions:
                seen = len(meta.partitions)
                if seen >= partitions:
                    break
        except ck.KafkaException:
            pass
        time.sleep(0.1)
    seconds = time.monotonic() - t0
    if error is None and seen < partitions and seconds >= timeout:
        error = f"topic not ready within {timeout:.0f} s"
    return {"seconds": seconds, "partitions_seen": seen, "error": error}


# -- produce -----------------------------------------------------------------------------


class _Failures:
    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None

    def __call__(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.count += 1
            self.first = self.first or str(err)


def _produce(producer: ck.Producer, topic: str, value: bytes, partition: int, **kw: Any) -> None:
    while True:
        try:
            producer.produce(topic, value, partition=partition, **kw)
            return
        except BufferError:
            producer.poll(0.005)


def produce_bulk(
    bootstrap: str,
    topic: str,
    partitions: int,
    values: list[bytes],
    *,
    seconds: float | None = None,
    total_bytes: int | None = None,
) -> dict[str, Any]:
    """Produce as fast as acks=all allows, for `seconds` or until `total_bytes`; the time
    includes the final flush (every message acknowledged)."""
    failures = _Failures()
    producer = ck.Producer({**throughput_config(bootstrap), "error_cb": lambda e: None})
    size = len(values[0])
    count = 0
    per_partition = [0] * partitions
    cpu0 = os.times()
    t0 = time.monotonic()
    stop_at = t0 + seconds if seconds is not None else None
    target_count = (total_bytes + size - 1) // size if total_bytes is not None else None
    mask = len(values) - 1
    while True:
        if stop_at is not None and (count & 1023) == 0 and time.monotonic() >= stop_at:
            break
        if target_count is not None and count >= target_count:
            break
        partition = count % partitions
        _produce(producer, topic, values[count & mask], partition, on_delivery=failures)
        per_partition[partition] += 1
        count += 1
        if (count & 4095) == 0:
            producer.poll(0)
    remaining = producer.flush(300)
    t1 = time.monotonic()
    cpu1 = os.times()
    seconds_taken = t1 - t0
    acked = count - remaining - failures.count
    return {
        "messages": acked,
        "bytes": acked * size,
        "seconds": seconds_taken,
        "MBps": acked * size / seconds_taken / MB,
        "msgs_per_s": acked / seconds_taken,
        "failed": failures.count + remaining,
        "first_error": failures.first,
        "per_partition": per_partition,
        "client_cpu": (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / seconds_taken,
    }


class PacedProducer:
    """Produces `rate` messages/s (a timestamp in the first 8 bytes) on a thread; records
    (send time, ack latency) from librdkafka's own per-message latency."""

    def __init__(
        self, bootstrap: str, topic: str, partitions: int, values: list[bytes], rate: int
    ) -> None:
        self.producer = ck.Producer({**latency_config(bootstrap), "error_cb": lambda e: None})
        self.topic = topic
        self.partitions = partitions
        self.values = values
        self.rate = rate
        self.samples: list[tuple[float, float]] = []  # (send monotonic s, latency ms)
        self.failures = 0
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paced-producer", daemon=True)
        self._poller = threading.Thread(target=self._poll, name="paced-poll", daemon=True)

    def start(self) -> PacedProducer:
        self._thread.start()
        self._poller.start()
        return self

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failures += 1
            return
        latency = msg.latency()
        sent_ns = struct.unpack_from(">q", msg.value(), 0)[0]
        if latency is not None:
            self.samples.append((sent_ns / 1e9, latency * 1000))

    def _run(self) -> None:
        interval = 1.0 / self.rate
        t0 = time.monotonic()
        mask = len(self.values) - 1
        i = 0
        while not self._stop.is_set():
            due = t0 + i * interval
            now = time.monotonic()
            if due > now:
                time.sleep(min(due - now, 0.05))
                continue
            value = struct.pack(">q", time.monotonic_ns()) + self.values[i & mask][8:]
            _produce(
                self.producer, self.topic, value, i % self.partitions, on_delivery=self._delivered
            )
            i += 1
            self.sent = i

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._poller.join(10)
        self.producer.flush(60)

    def window(self, start: float, end: float) -> list[float]:
        return [lat for sent, lat in self.samples if start <= sent < end]


class TimestampConsumer:
    """Consumes a fresh topic on a thread; end-to-end latency per message."""

    def __init__(
        self, bootstrap: str, topic: str, partitions: int, config: dict[str, Any] | None = None
    ) -> None:
        self.config = {**tailing_consumer_config(bootstrap), **(config or {})}
        self.consumer = ck.Consumer(self.config)
        # Each latency run uses a fresh topic, so reading from the beginning needs no
        # ListOffsets(latest) (unreliable on Tansu).
        self.consumer.assign(
            [ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(partitions)]
        )
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ts-consumer", daemon=True)

    def start(self) -> TimestampConsumer:
        self._thread.start()
        return self

    def _run(self) -> None:
        # poll() returns as soon as one message is there; consume(n, 0) then drains what
        # else is queued without waiting (consume(n, t) would wait for n messages or t).
        while not self._stop.is_set():
            first = self.consumer.poll(0.05)
            if first is None:
                continue
            for msg in [first, *self.consumer.consume(1000, 0)]:
                if msg.error() is not None:
                    continue
                now = time.monotonic_ns()
                sent = struct.unpack_from(">q", msg.value(), 0)[0]
                self.samples.append((sent / 1e9, (now - sent) / 1e6))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()

    def window(self, start: float, end: float) -> list[float]:
        return [lat for sent, lat in self.samples if start <= sent < end]


def latency_run(
    bootstrap: str, topic: str, partitions: int, values: list[bytes], rate: int, seconds: float
) -> dict[str, Any]:
    """Paced produce with a tailing consumer; the first second is warm-up, not counted."""
    consumer = TimestampConsumer(bootstrap, topic, partitions).start()
    time.sleep(1.0)  # the consumer has its assignment and positions before we produce
    producer = PacedProducer(bootstrap, topic, partitions, values, rate).start()
    warm = time.monotonic() + 1.0
    time.sleep(1.0 + seconds)
    end = time.monotonic()
    producer.stop()
    time.sleep(0.5)  # let the consumer see the last messages
    consumer.stop()
    return {
        "rate": rate,
        "seconds": seconds,
        # What the clients were given, less what differs by run (a broker's address, a
        # group id): the same for every target.
        "consumer_config": _comparable(consumer.config),
        "producer_config": _comparable(latency_config(bootstrap)),
        "sent": producer.sent,
        "failed": producer.failures,
        "produce": latency_summary(producer.window(warm, end)),
        "end_to_end": latency_summary(consumer.window(warm, end)),
    }


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in ("bootstrap.servers", "group.id")}


# -- consume -----------------------------------------------------------------------------


def consume_all(
    bootstrap: str, topic: str, partitions: int, expected_messages: int, timeout: float
) -> dict[str, Any]:
    """Read a topic from offset 0 until `expected_messages` arrived; MB/s of values."""
    assignment = [ck.TopicPartition(topic, p, 0) for p in range(partitions)]
    return consume_assigned(bootstrap, assignment, expected_messages, timeout)


def consume_assigned(
    bootstrap: str, assignment: list[Any], expected_messages: int, timeout: float
) -> dict[str, Any]:
    """Read the assigned partitions from their offsets until `expected_messages` arrived."""
    consumer = ck.Consumer(consumer_config(bootstrap))
    consumer.assign(assignment)
    count = 0
    nbytes = 0
    errors = 0
    first_error = None
    cpu0 = os.times()
    t0 = time.monotonic()
    deadline = t0 + timeout
    while count < expected_messages and time.monotonic() < deadline:
        # Ask for no more than is missing: consume() waits for the whole count otherwise.
        for msg in consumer.consume(max(1, min(10_000, expected_messages - count)), 0.5):
            if msg.error() is not None:
                errors += 1
                first_error = first_error or str(msg.error())
                continue
            count += 1
            nbytes += len(msg)
    t1 = time.monotonic()
    cpu1 = os.times()
    consumer.close()
    seconds = t1 - t0
    return {
        "messages": count,
        "bytes": nbytes,
        "seconds": seconds,
        "MBps": nbytes / seconds / MB if seconds > 0 else 0.0,
        "complete": count >= expected_messages,
        "errors": errors,
        "first_error": first_error,
        "client_cpu": (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / max(seconds, 1e-9),
    }


def catchup_run(
    bootstrap: str,
    topic: str,
    partitions: int,
    expected_messages: int,
    live_topic: str,
    values: list[bytes],
    rate: int,
    before_seconds: float,
    timeout: float,
    during: Callable[[], None] | None = None,
    reader_process: bool = True,
    warmup_seconds: float = 1.0,
) -> dict[str, Any]:
    """A paced producer on `live_topic`; after `warmup_seconds` (not counted) and
    `before_seconds`, read all of `topic`.

    The read runs in a child process (`reader_process`): librdkafka's message latency
    is taken when the delivery callback asks for it, on a thread that needs this
    process's GIL, which a reader iterating ~100,000 messages/s in the same process holds
    most of the time; its waits were counted as the broker's.
    """
    pool = multiprocessing.get_context("spawn").Pool(1) if reader_process else None
    try:
        if pool is not None:
            pool.apply(_ready)  # the child is up and has imported the client
        producer = PacedProducer(bootstrap, live_topic, partitions, values, rate).start()
        warm = time.monotonic() + warmup_seconds
        time.sleep(warmup_seconds + before_seconds)
        start = time.monotonic()
        if during is not None:
            during()
        read_args = (bootstrap, topic, partitions, expected_messages, timeout)
        read = consume_all(*read_args) if pool is None else pool.apply(consume_all, read_args)
        end = time.monotonic()
        producer.stop()
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return {
        "read": read,
        "MBps": read["MBps"],
        "producer_rate": rate,
        "producer_before": latency_summary(producer.window(warm, start)),
        "producer_during": latency_summary(producer.window(start, end)),
        "producer_failed": producer.failures,
        "reader_process": reader_process,
    }


def _ready() -> bool:
    return True


# -- restart -----------------------------------------------------------------------------


def time_to_serving(
    instance: Any,
    topic: str,
    value: bytes,
    timeout: float = 600.0,
    consumer_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stop the broker, then time from process start to (a) an acknowledged produce and
    (b) a fetch that returns retained data (partition 0 from offset 0).

    The broker is started on this (the calling) thread, because the Kafka harness ties
    the JVM's life to the thread that started it; the clients probe on another thread.
    The clients are made once the port accepts connections, so librdkafka's reconnect
    backoff does not count against the broker.
    """
    t_stop = time.monotonic()
    instance.stop()
    stop_s = time.monotonic() - t_stop
    host, port = instance.bootstrap.rsplit(":", 1)
    result: dict[str, Any] = {
        "stop_s": stop_s,  # clean shutdown (contextplane uploads what is pending)
        "listen_s": None,
        "produce_s": None,
        "fetch_s": None,
        "error": None,
    }
    done = threading.Event()
    t0 = time.monotonic()

    def probe() -> None:
        deadline = t0 + timeout
        while result["listen_s"] is None:
            if done.is_set() or time.monotonic() > deadline:
                return
            try:
                socket.create_connection((host, int(port)), timeout=0.05).close()
                result["listen_s"] = time.monotonic() - t0
            except OSError:
                time.sleep(0.002)
        fast = {
            "reconnect.backoff.ms": 10,
            "reconnect.backoff.max.ms": 50,
            "retry.backoff.ms": 10,
            "retry.backoff.max.ms": 50,
            "error_cb": lambda e: None,
        }
        delivered = threading.Event()

        def on_delivery(err: Any, msg: Any) -> None:
            if err is None:
                result["produce_s"] = time.monotonic() - t0
            else:
                result["error"] = str(err)
            delivered.set()

        producer = ck.Producer(
            {
                "bootstrap.servers": instance.bootstrap,
                "acks": "all",
                "message.timeout.ms": int(timeout * 1000),
                "linger.ms": 0,
                **_QUIET,
                **fast,
            }
        )
        consumer = ck.Consumer(
            {
                **consumer_config(instance.bootstrap),
                **fast,
                "fetch.wait.max.ms": 10,
                "fetch.error.backoff.ms": 10,
                "topic.metadata.refresh.interval.ms": 100,
                **(consumer_settings or {}),
            }
        )
        producer.produce(topic, value, partition=0, on_delivery=on_delivery)
        consumer.assign([ck.TopicPartition(topic, 0, 0)])
        try:
            while time.monotonic() < deadline and not done.is_set():
                producer.poll(0)
                if result["fetch_s"] is None:
                    for msg in consumer.consume(1, 0.005):
                        if msg.error() is None:
                            result["fetch_s"] = time.monotonic() - t0
                else:
                    producer.poll(0.005)
                if result["fetch_s"] is not None and delivered.is_set():
                    break
        finally:
            producer.flush(5)
            consumer.close()

    thread = threading.Thread(target=probe, name="restart-probe", daemon=True)
    thread.start()
    try:
        instance.start()
        result["start_returned_s"] = time.monotonic() - t0
    except Exception as exc:  # noqa: BLE001 - reported in the result
        result["error"] = f"start failed: {type(exc).__name__}: {exc}"
        done.set()
    thread.join(timeout)
    done.set()
    both = [v for v in (result["produce_s"], result["fetch_s"]) if v is not None]
    result["serving_s"] = max(both) if len(both) == 2 else None
    return result
