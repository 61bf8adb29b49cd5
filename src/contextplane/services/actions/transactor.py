"""The executor's transactional producer: one transaction produces ledger records and
commits the group's offset (KIP-447: it fails unless the member still owns the partition
in the group's current generation), retried through an outage, with librdkafka's stuck
`send_offsets_to_transaction` worked around (RFC 0006 §2)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from contextplane.clock import SystemClock
from contextplane.services.actions import ledger
from contextplane.services.actions.ledger import LedgerKey
from contextplane.services.actions.txn_epoch import (
    EpochUnknownError,
    ProducerEpoch,
    described_epoch_by,
)

log = logging.getLogger("contextplane.actions")
_CLOCK = SystemClock()

# How long a transaction keeps retrying through a cluster outage (a broker restarting)
# before the executor gives up and exits (the next start settles the transaction).
OUTAGE_S = 120.0
RETRY_PAUSE_S = 0.5
# A send_offsets_to_transaction still running this long past its own timeout is stuck;
# after this many stuck producers the executor exits (a restart starts clean).
STUCK_SLACK_S = 5.0
STUCK_PRODUCERS_MAX = 3

# The key of the record that proves a producer's epoch (never committed: aborted at once).
PROBE_KEY = b'["fence-probe"]'

Record = tuple[str, LedgerKey | str, dict[str, Any] | None]  # topic, key, value (None: tombstone)
# A ledger record committed: its key, value and offset.
Written = tuple[LedgerKey, bytes | None, int]


class AbortedError(Exception):
    """The open transaction was aborted: nothing of it is committed."""


class FencedError(Exception):
    """A newer incarnation of the transactional id holds the coordinator's epoch."""


class Transactor:
    def __init__(
        self,
        common: dict[str, Any],
        transactional_id: str,
        transaction_timeout_ms: int,
        timeout_s: float,
        consumer: Consumer,
        stopping: threading.Event,
    ) -> None:
        self._common = common
        self._transactional_id = transactional_id
        self._transaction_timeout_ms = transaction_timeout_ms
        self._timeout_s = timeout_s
        self._consumer = consumer  # whose group metadata each offset commit carries
        self._stopping = stopping
        # Set when the producer loses a broker connection (its error callback, or its
        # log: an idle connection closed by a restarting broker is only logged): the next
        # transaction starts on a new producer (see _replace_producer). One per producer:
        # an abandoned one's failures say nothing of its replacement.
        self._disconnected = threading.Event()
        self._producer = self._new_producer()
        self._stuck_producers: list[Producer] = []
        # The producer id and epoch the current producer's init_transactions got, as the
        # coordinator described them (None: it did not say). librdkafka's transactions
        # (v1, KIP-98) keep the epoch for the producer's life.
        self._epoch: ProducerEpoch | None = None

    def init(self) -> None:
        """Fence earlier incarnations of the transactional id (KafkaException if not)."""
        self._producer.init_transactions(self._timeout_s)
        self._epoch = self._describe_own_epoch(_CLOCK.monotonic_ms() / 1000 + self._timeout_s)

    def _new_producer(self) -> Producer:
        lost = self._disconnected = threading.Event()

        def on_error(error: KafkaError) -> None:
            if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
                lost.set()

        return Producer(
            {
                **self._common,
                "transactional.id": self._transactional_id,
                "transaction.timeout.ms": self._transaction_timeout_ms,
                "linger.ms": 0,
                "error_cb": on_error,
                "logger": _ConnectionWatch(lost),
            }
        )

    def _replace_producer(self, deadline: float) -> None:
        """A new producer of the same transactional id; its init_transactions fences the
        old one and aborts whatever it left open. librdkafka's send_offsets_to_transaction
        can wait forever, past its timeout, on a group coordinator it cached before a
        broker restart (confluentinc/librdkafka#5456, #5511): a producer that lost the
        cluster is not used for another transaction."""
        self._prove_not_fenced(deadline)
        self._swap_producer(deadline)

    def _prove_not_fenced(self, deadline: float) -> None:
        """Before a new producer bumps the epoch, the old one shows the transaction
        coordinator still holds its epoch: a probe in a transaction aborted at once (no
        group offset, so nothing waits on the group coordinator). A newer incarnation of
        the transactional id that started meanwhile (a zombie's call returning after a
        broker restart) gets PRODUCER_FENCED here, fatal: this process exits rather than
        fence the newer one in turn."""
        producer = self._producer
        self._retrying(producer.begin_transaction, deadline)
        producer.produce(ledger.LEDGER_TOPIC, key=PROBE_KEY, value=None)
        self._retrying(lambda: _flushed(producer, self._timeout_s), deadline)
        # Fenced, the flush's delivery failed and the abort raises the fatal error.
        self._retrying(lambda: producer.abort_transaction(self._timeout_s), deadline)

    def _replace_stuck_producer(self, deadline: float) -> None:
        """A producer stuck mid transaction cannot run the probe (its transaction is open),
        so the transaction coordinator is asked which producer id and epoch it holds
        (DescribeTransactions). Another than the stuck producer's means a newer executor of
        the transactional id started while it hung: FencedError, and this process exits
        rather than fence the newer one. The coordinator not answering ends it too."""
        owned = self._epoch
        if owned is None:
            raise FencedError(
                "the stuck producer's epoch was never described: exiting rather than"
                " risk fencing a newer executor"
            )
        try:
            held = described_epoch_by(
                self._common, self._transactional_id, self._timeout_s, deadline, self._stopping
            )
        except EpochUnknownError as exc:
            raise FencedError(f"{exc}: exiting rather than risk fencing a newer executor") from None
        if held != owned:
            raise FencedError(
                f"transactional id {self._transactional_id} is held by producer id"
                f" {held.producer_id} epoch {held.epoch}, newer than this process's"
                f" {owned.producer_id} epoch {owned.epoch}: a newer executor runs; exiting"
            )
        self._swap_producer(deadline)

    def _swap_producer(self, deadline: float) -> None:
        self._producer = self._new_producer()
        self._retrying(lambda: self._producer.init_transactions(self._timeout_s), deadline)
        self._epoch = self._describe_own_epoch(deadline)
        log.info("transactional producer replaced")

    def _describe_own_epoch(self, deadline: float) -> ProducerEpoch | None:
        """The epoch just taken by init_transactions; None (logged) when the coordinator
        does not say, and then a producer stuck later is not replaced (the process exits)."""
        try:
            return described_epoch_by(
                self._common, self._transactional_id, self._timeout_s, deadline, self._stopping
            )
        except EpochUnknownError as exc:
            log.warning("%s: a producer stuck mid transaction will end the executor", exc)
            return None

    def transact(self, records: list[Record], offsets: list[TopicPartition]) -> list[Written]:
        """Produce `records` and commit `offsets` for the group in one transaction (none:
        no group offset); the ledger records committed are returned. AbortedError when it
        was aborted; a fatal error (fenced) or an unknown outcome is raised and ends the
        executor."""
        deadline = _CLOCK.monotonic_ms() / 1000 + OUTAGE_S
        self._producer.poll(0)  # serves the error callback, which notes a lost cluster
        if self._disconnected.is_set():
            self._replace_producer(deadline)
        producer = self._producer
        written: dict[bytes, int] = {}
        encoded = [
            (topic, _key_bytes(key), None if value is None else ledger.encode_entry(value))
            for topic, key, value in records
        ]

        def delivered(error: KafkaError | None, message: Any) -> None:
            if error is None and message.topic() == ledger.LEDGER_TOPIC:
                written[message.key()] = int(message.offset())

        self._retrying(producer.begin_transaction, deadline)
        try:
            for topic, key, value in encoded:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
            if offsets:
                self._retrying(lambda: self._send_offsets(producer, offsets), deadline)
            self._retrying(lambda: _flushed(producer, self._timeout_s), deadline)
            self._retrying(lambda: producer.commit_transaction(self._timeout_s), deadline)
        except AbortedError as exc:
            log.warning("transaction aborted: %s", exc)
            if producer is self._producer:  # else the replacement aborted it already
                self._retrying(lambda: producer.abort_transaction(self._timeout_s), deadline)
            raise
        committed: list[Written] = []
        for topic, key, value in encoded:
            if topic == ledger.LEDGER_TOPIC and key in written:
                ledger_key = ledger.decode_key(key)
                assert ledger_key is not None
                committed.append((ledger_key, value, written[key]))
        return committed

    def _send_offsets(self, producer: Producer, offsets: list[TopicPartition]) -> None:
        """send_offsets_to_transaction, on a thread of its own: one that outlives its
        timeout is stuck (librdkafka#5456) and its producer is abandoned for a new one
        (once the coordinator shows no newer executor holds the transactional id), whose
        init_transactions aborts the stuck transaction."""
        metadata = self._consumer.consumer_group_metadata()
        failed: list[BaseException] = []

        def send() -> None:
            try:
                producer.send_offsets_to_transaction(offsets, metadata, self._timeout_s)
            except BaseException as exc:  # handed to the caller's thread
                failed.append(exc)

        sender = threading.Thread(target=send, name="send-offsets", daemon=True)
        sender.start()
        sender.join(self._timeout_s + STUCK_SLACK_S)
        if sender.is_alive():
            if len(self._stuck_producers) >= STUCK_PRODUCERS_MAX:
                raise RuntimeError("the transactional producer is stuck again; exiting")
            self._stuck_producers.append(producer)  # kept: destroying it would block too
            log.warning("send_offsets_to_transaction is stuck; replacing the producer")
            self._replace_stuck_producer(_CLOCK.monotonic_ms() / 1000 + OUTAGE_S)
            raise AbortedError("the producer was stuck sending the group offsets")
        if failed:
            raise failed[0]

    def _retrying(self, operation: Callable[[], Any], deadline: float) -> Any:
        while True:
            try:
                return operation()
            except KafkaException as exc:
                error = exc.args[0]
                if error.fatal():
                    raise
                if error.txn_requires_abort():
                    raise AbortedError(error.str()) from None
                if not error.retriable() or _CLOCK.monotonic_ms() / 1000 > deadline:
                    raise
                log.warning("transaction step failed (%s); retrying", error.str())
                self._stopping.wait(RETRY_PAUSE_S)


class _ConnectionWatch(logging.Logger):
    """librdkafka's log, handed on to the `contextplane.rdkafka` logger; a broker
    connection failing (its FAIL facility) sets `lost`."""

    def __init__(self, lost: threading.Event) -> None:
        super().__init__("contextplane.rdkafka.producer")
        self._lost = lost
        self._out = logging.getLogger("contextplane.rdkafka")

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if args and args[0] == "FAIL":
            self._lost.set()
        self._out.log(level, msg, *args, **kwargs)


def _flushed(producer: Producer, timeout_s: float) -> None:
    """Every record delivered (serving the delivery reports), else a retriable error."""
    left = producer.flush(timeout_s)
    if left:
        raise KafkaException(
            KafkaError(KafkaError._TIMED_OUT, f"{left} records undelivered", retriable=True)
        )


def _key_bytes(key: LedgerKey | str) -> bytes:
    return key.encode() if isinstance(key, str) else ledger.encode_key(key)
