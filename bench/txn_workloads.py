"""The transactional workloads, driven by librdkafka (confluent-kafka), the same client and
settings for every target.

- `transactional_throughput`: one transactional producer commits transactions of a fixed
  number of 1 KiB records round-robin over the topic's partitions, as fast as it can, for
  N seconds; records/s, MB/s, transactions/s and the time of each commit_transaction call.
- `committed_latency_run`: a paced transactional producer (a timestamp in each record's
  first 8 bytes) and tailing consumers (read_committed, and read_uncommitted for
  reference); end-to-end latency = receipt − send time, CLOCK_MONOTONIC in one process.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from typing import Any

import confluent_kafka as ck

from bench.stats import latency_summary
from bench.workloads import MB, TimestampConsumer, throughput_config

TRANSACTION_TIMEOUT_S = 60.0


def _transactional_producer(config: dict[str, Any], tag: str) -> ck.Producer:
    producer = ck.Producer(
        {
            **config,
            "transactional.id": f"bench-txn-{tag}-{os.getpid()}-{time.monotonic_ns()}",
            "transaction.timeout.ms": int(TRANSACTION_TIMEOUT_S * 1000),
            "message.timeout.ms": int(TRANSACTION_TIMEOUT_S * 1000),  # must be <= the above
            "error_cb": lambda e: None,
        }
    )
    producer.init_transactions(TRANSACTION_TIMEOUT_S)
    return producer


def _produce(producer: ck.Producer, topic: str, value: bytes, partition: int, **kw: Any) -> None:
    while True:
        try:
            producer.produce(topic, value, partition=partition, **kw)
            return
        except BufferError:
            producer.poll(0.005)


def transactional_throughput(
    bootstrap: str,
    topic: str,
    partitions: int,
    values: list[bytes],
    records_per_txn: int,
    seconds: float,
) -> dict[str, Any]:
    """Commit transactions of `records_per_txn` records back to back for `seconds` (the
    last transaction started in the window is committed and counted). init_transactions
    and one warm-up transaction are outside the timed window."""
    config = {**throughput_config(bootstrap), "delivery.report.only.error": False}
    producer = _transactional_producer(config, f"tput{records_per_txn}")
    failures = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal failures
        if err is not None:
            failures += 1

    mask = len(values) - 1
    size = len(values[0])

    def one_transaction(first: int) -> float:
        producer.begin_transaction()
        for i in range(first, first + records_per_txn):
            _produce(producer, topic, values[i & mask], i % partitions, on_delivery=on_delivery)
        started = time.monotonic()
        producer.commit_transaction(TRANSACTION_TIMEOUT_S)
        return (time.monotonic() - started) * 1000

    one_transaction(0)
    failures = 0
    commits: list[float] = []
    records = 0
    cpu0 = os.times()
    t0 = time.monotonic()
    stop_at = t0 + seconds
    while time.monotonic() < stop_at:
        commits.append(one_transaction(records))
        records += records_per_txn
    elapsed = time.monotonic() - t0
    cpu1 = os.times()
    acked = records - failures
    return {
        "records_per_txn": records_per_txn,
        "transactions": len(commits),
        "records": acked,
        "seconds": elapsed,
        "records_per_s": acked / elapsed,
        "MBps": acked * size / elapsed / MB,
        "txn_per_s": len(commits) / elapsed,
        "commit": latency_summary(commits),
        "failed": failures,
        "client_cpu": (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed,
    }


class PacedTransactions:
    """Commits `rate` transactions/s of `records` records each on a thread; each record
    carries its send time (CLOCK_MONOTONIC ns) in its first 8 bytes. A commit that runs
    past the next slot makes the producer skip the slots it missed (no catch-up burst);
    `late` counts them and the achieved rate is reported beside the asked one."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        values: list[bytes],
        rate: float,
        records: int,
    ) -> None:
        config = {**throughput_config(bootstrap), "linger.ms": 1}
        self.producer = _transactional_producer(config, "paced")
        self.topic = topic
        self.partitions = partitions
        self.values = values
        self.rate = rate
        self.records = records
        self.first_slot_at = 0.0
        self.commits: list[tuple[float, float]] = []  # (start monotonic s, commit ms)
        self.committed_records = 0
        self.late = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paced-txn", daemon=True)

    def start(self, first_slot_at: float) -> PacedTransactions:
        self.first_slot_at = first_slot_at
        self._thread.start()
        return self

    def _run(self) -> None:
        interval = 1.0 / self.rate
        mask = len(self.values) - 1
        due = self.first_slot_at
        n = 0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if due > now:
                    time.sleep(min(due - now, 0.05))
                    continue
                if now - due > interval:
                    skipped = int((now - due) / interval)
                    self.late += skipped
                    due += skipped * interval
                started = time.monotonic()
                self.producer.begin_transaction()
                for _ in range(self.records):
                    value = struct.pack(">q", time.monotonic_ns()) + self.values[n & mask][8:]
                    _produce(self.producer, self.topic, value, n % self.partitions)
                    n += 1
                commit_started = time.monotonic()
                self.producer.commit_transaction(TRANSACTION_TIMEOUT_S)
                self.commits.append((started, (time.monotonic() - commit_started) * 1000))
                self.committed_records += self.records
                due += interval
        except ck.KafkaException as exc:
            self.error = str(exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(TRANSACTION_TIMEOUT_S + 10)

    def committed_in(self, start: float, end: float) -> list[float]:
        return [ms for begun, ms in self.commits if start <= begun < end]


def committed_latency_run(
    bootstrap: str,
    topic: str,
    partitions: int,
    values: list[bytes],
    rate: int,
    records: int,
    seconds: float,
    producers: int = 1,
) -> dict[str, Any]:
    """`producers` paced transactional producers (rate / producers transactions/s each,
    their slots staggered evenly) with a read_committed and a read_uncommitted consumer
    tailing the same topic; the first second is warm-up, not counted. Several producers
    let the asked rate be met when one commit takes longer than the interval."""
    consumers = {
        isolation: TimestampConsumer(
            bootstrap, topic, partitions, config={"isolation.level": isolation}
        ).start()
        for isolation in ("read_committed", "read_uncommitted")
    }
    time.sleep(1.0)  # the consumers have their assignments and positions before we produce
    each = rate / producers
    paced = [
        PacedTransactions(bootstrap, topic, partitions, values, each, records)
        for _ in range(producers)
    ]
    start = time.monotonic()
    for k, producer in enumerate(paced):
        producer.start(start + k / rate)
    warm = start + 1.0
    time.sleep(max(0.0, warm + seconds - time.monotonic()))
    end = time.monotonic()
    for producer in paced:
        producer.stop()
    # Wait (bounded) until both consumers have every committed record, so the tail of
    # the window is counted rather than cut off.
    expected = sum(p.committed_records for p in paced)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if all(len(c.samples) >= expected for c in consumers.values()):
            break
        time.sleep(0.05)
    for consumer in consumers.values():
        consumer.stop()
    committed = [ms for p in paced for ms in p.committed_in(warm, end)]
    errors = [p.error for p in paced if p.error is not None]
    return {
        "rate_asked_txn_per_s": rate,
        "producers": producers,
        "records_per_txn": records,
        "seconds": end - warm,
        "rate_achieved_txn_per_s": len(committed) / (end - warm),
        "late_slots": sum(p.late for p in paced),
        "error": errors[0] if errors else None,
        "commit": latency_summary(committed),
        "records_committed": expected,
        "records_received": {i: len(c.samples) for i, c in consumers.items()},
        **{
            isolation: latency_summary(consumer.window(warm, end))
            for isolation, consumer in consumers.items()
        },
    }
