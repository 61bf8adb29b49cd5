"""The clients of the exactly-once crash test: transactional writers that commit or abort
numbered records as a seed says, and a consume-transform-produce loop. Each runs on its own
thread against a broker that is killed under it, recovers by itself (a new producer with
the same transactional.id fences the old one and aborts what it left open), and records
what the client knows of every transaction for `eos_checker`."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from tests.support.eos_checker import Outcome, Sent, Txn

CALL_TIMEOUT_S = 30  # liveness bound of one transactional call across a restart
OPEN_TIMEOUT_S = 120  # a producer or consumer that cannot start within this fails the run


def _producer(bootstrap: str, transactional_id: str, **extra: str) -> Producer:
    """A producer that has fenced every earlier one with its transactional.id (whose open
    transaction the coordinator aborts on init_transactions)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": 20000,
            "linger.ms": 5,
            **extra,
        }
    )
    producer.init_transactions(OPEN_TIMEOUT_S)
    return producer


def _recover(producer: Producer, error: KafkaError) -> Producer | None:
    """The producer to go on with after a failed transactional call: the same one when its
    transaction could be aborted, None (start a new one) when it is fenced or stuck."""
    if error.fatal():
        return None
    try:
        producer.abort_transaction(CALL_TIMEOUT_S)
    except KafkaException:
        return None
    return producer


@dataclass
class _Pending:
    """A transaction being written: its delivery reports arrive on later producer calls."""

    name: str
    outcome: Outcome
    records: list[tuple[bytes, int]] = field(default_factory=list)


@dataclass
class TxnWriter:
    """Writes transactions of numbered records to random partitions of `topic`, each
    committed or aborted as its seeded random source says, until `stop` is set."""

    name: str
    bootstrap: str
    topic: str
    partitions: int
    seed: int
    stop: threading.Event
    commit_ratio: float = 0.7
    max_records: int = 6
    pause_s: float = 0.05
    attempted: int = 0
    current: str | None = None  # the transaction between begin and its end call's return
    _pending: list[_Pending] = field(default_factory=list)
    _delivered: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        rng = random.Random(self.seed)
        producer: Producer | None = None
        while not self.stop.is_set():
            if producer is None:
                producer = _producer(self.bootstrap, f"eos-{self.name}")
            producer = self._one(producer, rng)
            # Paced: a few hundred transactions per run are plenty to check, and the
            # machine is shared; the kill points come from the test's seed, not from this.
            self.stop.wait(self.pause_s)
        # Leave nothing open: a new producer fences and aborts what a stuck one left.
        if producer is None:
            producer = _producer(self.bootstrap, f"eos-{self.name}")
        producer.flush(CALL_TIMEOUT_S)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            with self._lock:
                self._delivered.add(message.value())

    def _one(self, producer: Producer, rng: random.Random) -> Producer | None:
        commit = rng.random() < self.commit_ratio
        txn = _Pending(f"{self.name}-{len(self._pending)}", Outcome.ABORTED)
        count = rng.randint(1, self.max_records)
        self._pending.append(txn)
        self.attempted += 1
        self.current = txn.name
        try:
            producer.begin_transaction()
            for i in range(count):
                value = f"{txn.name}-{i}/{count}".encode()
                partition = rng.randrange(self.partitions)
                txn.records.append((value, partition))
                producer.produce(
                    self.topic, value, partition=partition, on_delivery=self._on_delivery
                )
            if commit:
                txn.outcome = Outcome.UNKNOWN
                producer.commit_transaction(CALL_TIMEOUT_S)
                txn.outcome = Outcome.COMMITTED
            else:
                # Written and acknowledged before the abort, so the abort has records to
                # hide (read_uncommitted shows them: the check of the filter can fail).
                producer.flush(CALL_TIMEOUT_S)
                producer.abort_transaction(CALL_TIMEOUT_S)
        except KafkaException as exc:
            return _recover(producer, exc.args[0])
        finally:
            self.current = None
        return producer

    def history(self) -> list[Txn]:
        """What the client knows of each transaction (call once `run` has returned)."""
        with self._lock:
            delivered = set(self._delivered)
        return [
            Txn(p.name, p.outcome, [Sent(v, part, v in delivered) for v, part in p.records])
            for p in self._pending
        ]


@dataclass
class Transformer:
    """Copies each record of `source` to the same partition of `sink` in a transaction that
    also commits the consumer's offsets (send_offsets_to_transaction), read_committed."""

    bootstrap: str
    source: str
    sink: str
    group: str
    stop: threading.Event
    committed: int = 0
    failed: int = 0

    def run(self) -> None:
        consumer, producer = self._open()
        try:
            while not self.stop.is_set():
                messages = [m for m in consumer.consume(100, 0.5) if m.error() is None]
                if messages and not self._copy(consumer, producer, messages):
                    # Start over from the committed offsets, which moved only if the
                    # transaction committed whatever the client was told.
                    self.failed += 1
                    consumer.close()
                    consumer, producer = self._open()
        finally:
            consumer.close()

    def _open(self) -> tuple[Consumer, Producer]:
        # Without re-bootstrap: when every broker is down librdkafka decommissions them, and
        # send_offsets_to_transaction then waits forever on the decommissioned group
        # coordinator it cached (confluentinc/librdkafka#5511, a client bug).
        producer = _producer(
            self.bootstrap, f"eos-{self.group}", **{"metadata.recovery.strategy": "none"}
        )
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
            }
        )
        consumer.subscribe([self.source])
        return consumer, producer

    def _copy(self, consumer: Consumer, producer: Producer, messages: list[Message]) -> bool:
        next_offsets: dict[int, int] = {}
        try:
            producer.begin_transaction()
            for message in messages:
                producer.produce(self.sink, message.value(), partition=message.partition())
                next_offsets[message.partition()] = message.offset() + 1
            offsets = [TopicPartition(self.source, p, o) for p, o in next_offsets.items()]
            producer.send_offsets_to_transaction(
                offsets, consumer.consumer_group_metadata(), CALL_TIMEOUT_S
            )
            producer.commit_transaction(CALL_TIMEOUT_S)
        except KafkaException as exc:
            _recover(producer, exc.args[0])
            return False
        self.committed += 1
        return True


def run_threads(
    targets: list[Callable[[], None]],
) -> tuple[list[threading.Thread], list[BaseException]]:
    """Start each target on a thread; exceptions they raise are collected, not lost."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    return threads, errors
