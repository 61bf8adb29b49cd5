"""The tool executor: consumes `copilot.tool-calls` as a member of a consumer group,
checks each call against the ledger and the tool's Cedar policy, calls the endpoint at
most once per idempotency key, and records every outcome in `copilot.ledger` in the same
Kafka transaction as the group's offsets (RFC 0006 §2).

An allowed call takes two transactions: A (ledger `started` + the policy evaluation +
the group offset *at* the request, which fails unless this member still owns the
partition in the group's current generation), then the endpoint call with the
Idempotency-Key header, then B (ledger `done` + the offset past the request). A crash
between them leaves `started`, and the request unconsumed: whoever reads it next calls an
idempotent endpoint again with the same key, and records `unknown` for one that is not.

The loop runs on its own thread (confluent-kafka and the endpoint calls block). The
transactional id is stable across restarts and is also the group's static member id, so
a restart fences its predecessor in both the transaction coordinator and the group.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane import tracing
from contextplane.clock import SystemClock
from contextplane.services.actions import endpoint, ledger
from contextplane.services.actions.ledger import LedgerIndex, LedgerKey
from contextplane.services.actions.policy import ALLOW, DENY, Evaluation, evaluate
from contextplane.services.actions.requests import Refused, Request, read_request
from contextplane.services.actions.tools import Tool
from contextplane.services.context.client import ContextClient, ContextClientError
from contextplane.services.kafka_topics import ensure_topics

log = logging.getLogger("contextplane.actions")
_CLOCK = SystemClock()

# How long a poll waits for a request before the loop checks whether it is stopping.
READ_WAIT_S = 0.2
# Ledger records taken per read of the ledger between requests.
LEDGER_READ_MAX = 1000
# How long a transaction keeps retrying through a cluster outage (a broker restarting)
# before the executor gives up and exits (the next start settles the transaction).
OUTAGE_S = 120.0
RETRY_PAUSE_S = 0.5
# A send_offsets_to_transaction still running this long past its own timeout is stuck;
# after this many stuck producers the executor exits (a restart starts clean).
STUCK_SLACK_S = 5.0
STUCK_PRODUCERS_MAX = 3
# A context read's fence wait, at most (the tool's own time bound is for the endpoint).
CONTEXT_WAIT_MS = 5_000


class StartError(Exception):
    """The executor cannot start: an unreachable cluster, a topic it cannot create."""


class AbortedError(Exception):
    """The open transaction was aborted: nothing of it is committed."""


@dataclass
class ExecutorConfig:
    bootstrap: str
    transactional_id: str = "contextplane-executor-0"
    group: str = "contextplane-executor"
    context_url: str | None = None
    timeout_s: float = 30.0
    client_config: dict[str, str] = field(default_factory=dict)
    # A transaction left open by an executor that died is aborted by the broker after this,
    # and holds back read_committed readers of its partitions until then.
    transaction_timeout_ms: int = 60_000


Record = tuple[str, LedgerKey | str, dict[str, Any]]  # topic, key, value


class Executor:
    def __init__(self, tools: dict[str, Tool], config: ExecutorConfig) -> None:
        self._tools = tools
        self._config = config
        self._common: dict[str, Any] = {
            "bootstrap.servers": config.bootstrap,
            **config.client_config,
        }
        self.index = LedgerIndex()
        # A span per tool call when traces are configured (tracing.py), else None.
        self._tracer = tracing.started_tracer("contextplane-executor")
        # Set by the producer's error callback when it loses the cluster: the next
        # transaction starts on a new producer (see _replace_producer).
        self._disconnected = threading.Event()
        self._producer = self._new_producer()
        self._stuck_producers: list[Producer] = []
        self._consumer = Consumer(
            {
                **self._common,
                "group.id": config.group,
                # Static membership: a restart takes its predecessor's place at once, and
                # a second process of the same id fences the first in the group too.
                "group.instance.id": config.transactional_id,
                "session.timeout.ms": 10_000,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
            }
        )
        self._ledger_reader = Consumer(
            {
                **self._common,
                "group.id": f"{config.group}-ledger",  # assigned, never subscribed
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        self._ledger_at = 0  # the next ledger offset to read
        self._catch_up = threading.Event()  # set by an assignment: read the ledger first
        self._stopping = threading.Event()
        self.failure: str | None = None
        self.calls_made = 0

    # -- start ---------------------------------------------------------------------------

    def start(self) -> None:
        """Create the topics if missing, fence earlier incarnations of the transactional
        id, rebuild the index from the ledger, join the group."""
        admin = AdminClient(self._common)
        self._create_topics(admin)
        log.info("fencing earlier incarnations of %s", self._config.transactional_id)
        try:
            self._producer.init_transactions(self._config.timeout_s)
        except KafkaException as exc:
            raise StartError(f"initialising transactions: {exc.args[0].str()}") from None
        self._ledger_reader.assign([TopicPartition(ledger.LEDGER_TOPIC, 0, 0)])
        self._read_ledger_to_end()
        log.info("ledger index rebuilt: %d entries", len(self.index))
        self._consumer.subscribe(
            [ledger.REQUESTS_TOPIC], on_assign=self._assigned, on_revoke=self._revoked
        )

    def _create_topics(self, admin: AdminClient) -> None:
        wanted = [
            NewTopic(ledger.LEDGER_TOPIC, num_partitions=1, config={"cleanup.policy": "compact"}),
            NewTopic(ledger.EVALUATIONS_TOPIC, num_partitions=1),
            NewTopic(ledger.REQUESTS_TOPIC, num_partitions=1),
        ]
        config = self._config
        ensure_topics(admin, wanted, config.bootstrap, config.timeout_s, StartError)

    def _new_producer(self) -> Producer:
        def on_error(error: KafkaError) -> None:
            if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
                self._disconnected.set()

        return Producer(
            {
                **self._common,
                "transactional.id": self._config.transactional_id,
                "transaction.timeout.ms": self._config.transaction_timeout_ms,
                "linger.ms": 0,
                "error_cb": on_error,
            }
        )

    def _replace_producer(self, deadline: float) -> None:
        """A new producer of the same transactional id; its init_transactions fences the
        old one and aborts whatever it left open. librdkafka's send_offsets_to_transaction
        can wait forever, past its timeout, on a group coordinator it cached before a
        broker restart (confluentinc/librdkafka#5456, #5511): a producer that lost the
        cluster is not used for another transaction."""
        self._disconnected.clear()
        self._producer = self._new_producer()
        self._retrying(lambda: self._producer.init_transactions(self._config.timeout_s), deadline)
        log.info("transactional producer replaced after losing the cluster")

    def _assigned(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", [(p.topic, p.partition) for p in partitions])
        self._catch_up.set()

    def _revoked(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s", [(p.topic, p.partition) for p in partitions])

    # -- the ledger ----------------------------------------------------------------------

    def _read_ledger_to_end(self) -> None:
        """Read the ledger (committed records) up to its last stable offset, as asked now:
        every entry a previous owner of a partition committed is in the index after."""
        tp = TopicPartition(ledger.LEDGER_TOPIC, 0)
        deadline = _CLOCK.monotonic_ms() / 1000 + self._config.timeout_s
        _, end = self._ledger_reader.get_watermark_offsets(
            tp, timeout=self._config.timeout_s, cached=False
        )
        while self._ledger_at < end:
            if _CLOCK.monotonic_ms() / 1000 > deadline:
                raise StartError(f"reading {ledger.LEDGER_TOPIC} stopped at {self._ledger_at}")
            self._read_ledger(READ_WAIT_S)

    def _read_ledger(self, wait_s: float) -> None:
        for message in self._ledger_reader.consume(LEDGER_READ_MAX, timeout=wait_s):
            error = message.error()
            offset = message.offset()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF and offset is not None:
                    self._ledger_at = max(self._ledger_at, offset)
                else:
                    log.warning("reading %s: %s", ledger.LEDGER_TOPIC, error.str())
                continue
            assert offset is not None, "a record has an offset"
            self._ledger_at = max(self._ledger_at, offset + 1)
            key = ledger.decode_key(message.key())
            if key is not None:
                self.index.apply(key, message.value(), offset)

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._step()
        except Exception as exc:  # fatal: fenced by a newer incarnation, or a fault
            log.exception("the executor stopped")
            self.failure = str(exc)
        finally:
            self._close()

    def stop(self) -> None:
        self._stopping.set()

    def _close(self) -> None:
        try:
            self._consumer.close()
        except KafkaException as exc:
            log.warning("leaving the group: %s", exc)
        self._ledger_reader.close()

    def _step(self) -> None:
        message = self._consumer.poll(READ_WAIT_S)
        if self._catch_up.is_set():
            self._catch_up.clear()
            self._read_ledger_to_end()
        else:
            self._read_ledger(0)
        if message is None:
            return
        error = message.error()
        if error is not None:
            # A static member fenced by a newer one of the same id comes as _FATAL with
            # fatal() False on the message's error: both are checked.
            if error.fatal() or error.code() == KafkaError._FATAL:
                raise KafkaException(error)
            log.warning("reading %s: %s", ledger.REQUESTS_TOPIC, error.str())
            return
        self._handle(message)

    def _handle(self, message: Any) -> None:
        where = {
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
        }
        got = read_request(message.key(), message.value(), self._tools)
        if isinstance(got, Refused):
            log.warning("request at %s refused: %s", where, got.reason)
            if got.key is None:
                self._finish([], message)
                return
            entry = {"state": ledger.REJECTED, "key": got.key, "reason": got.reason}
            entry.update(request=where, at_ms=_now_ms())
            raw = message.value() or b""
            self._finish([(ledger.LEDGER_TOPIC, ledger.rejected_key(got.key, raw), entry)], message)
            return
        held = self.index.get(ledger.call_key(got.key))
        if held is not None and held.get("request_hash") != got.hash:
            entry = self._entry(got, ledger.CONFLICT, where)
            entry["reason"] = "the idempotency key was used with a different request"
            entry["held_request_hash"] = held.get("request_hash")
            key = ledger.conflict_key(got.key, got.hash)
            self._finish([(ledger.LEDGER_TOPIC, key, entry)], message)
        elif held is not None and held.get("state") in ledger.FINAL:
            self._finish([], message)  # the recorded result stands
        elif held is not None and held.get("state") == ledger.STARTED:
            self._resume(got, message, where)
        else:
            self._evaluate_and_act(got, message, where)

    def _entry(self, request: Request, state: str, where: dict[str, Any]) -> dict[str, Any]:
        return {
            "state": state,
            "key": request.key,
            "tool": request.tool.name,
            "decision_id": request.decision_id,
            "request_hash": request.hash,
            "request": where,
            "executor": self._config.transactional_id,
            "at_ms": _now_ms(),
        }

    def _evaluate_and_act(self, request: Request, message: Any, where: dict[str, Any]) -> None:
        tool = request.tool
        entity: dict[str, Any] | None = None
        context_read: dict[str, Any] | None = None
        if tool.context is not None:
            read = self._read_context(request)
            if isinstance(read, str):
                entry = self._entry(request, ledger.ERROR, where)
                entry["reason"] = read
                self._finish([(ledger.LEDGER_TOPIC, ledger.call_key(request.key), entry)], message)
                return
            entity, context_read = read
        evaluation = evaluate(
            tool.policy,
            tool.approval_policy,
            tool=tool.name,
            caller=request.caller,
            arguments=request.arguments,
            entity=entity,
            approved=request.approved_by is not None,
        )
        event = self._evaluation_event(request, evaluation, context_read)
        summary = {"decision": evaluation.decision, "policy_version": tool.policy_version}
        evaluated: Record = (ledger.EVALUATIONS_TOPIC, request.key, event)
        if evaluation.decision != ALLOW:
            state = ledger.DENIED if evaluation.decision == DENY else ledger.AWAITING_APPROVAL
            entry = self._entry(request, state, where)
            entry["evaluation"] = summary
            call = (ledger.LEDGER_TOPIC, ledger.call_key(request.key), entry)
            self._finish([evaluated, call], message)
            return
        started = self._entry(request, ledger.STARTED, where)
        started["evaluation"] = summary
        if request.approved_by is not None:
            started["approved_by"] = request.approved_by
        # Transaction A: the offset stays *at* the request, so the request is read again
        # if the call is interrupted; committing it also proves this member still owns
        # the partition in the group's current generation.
        records: list[Record] = [
            evaluated,
            (ledger.LEDGER_TOPIC, ledger.call_key(request.key), started),
        ]
        try:
            self._transact(records, _offset(message, message.offset()))
        except AbortedError:
            self._read_again(message)
            return
        self._call_and_record(request, started, message)

    def _read_context(self, request: Request) -> tuple[dict[str, Any] | None, dict[str, Any]] | str:
        """The tool's context entity (its state, what was read), or why it could not be."""
        tool_context = request.tool.context
        assert tool_context is not None
        if self._config.context_url is None:
            return "the tool reads context and the executor has no --context-url"
        value: Any = request.arguments
        for part in tool_context.entity_path:
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, str | int) or isinstance(value, bool):
            path = ".".join(tool_context.entity_path)
            return f"arguments.{path}: no entity id there"
        client = ContextClient(self._config.context_url)
        try:
            answer = client.get(
                tool_context.view,
                str(value),
                min_offsets=request.context_offsets,
                timeout_ms=CONTEXT_WAIT_MS if request.context_offsets else None,
            )
        except ContextClientError as exc:
            return f"context {tool_context.view}/{value}: {exc.status} {exc}"
        except OSError as exc:
            return f"context {tool_context.view}/{value}: {exc}"
        read = {
            "view": answer.view,
            "entity": answer.entity,
            "found": answer.found,
            "positions": [
                {"topic": p.topic, "partition": p.partition, "position": p.position}
                for p in answer.freshness.partitions
            ],
            "age_ms": answer.freshness.age_ms,
        }
        return answer.state if answer.found else None, read

    def _evaluation_event(
        self, request: Request, evaluation: Evaluation, context_read: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {
            "key": request.key,
            "decision_id": request.decision_id,
            "tool": request.tool.name,
            "policy_version": request.tool.policy_version,
            "inputs": evaluation.request,
            "context_read": context_read,
            "decision": evaluation.decision,
            "reasons": list(evaluation.reasons),
            "errors": list(evaluation.errors),
            "executor": self._config.transactional_id,
            "at_ms": _now_ms(),
        }

    def _resume(self, request: Request, message: Any, where: dict[str, Any]) -> None:
        """A `started` entry whose request is read again: the call was interrupted (this
        process or a predecessor died between transactions A and B)."""
        held = self.index.get(ledger.call_key(request.key)) or {}
        if request.tool.idempotent:
            log.info("calling %s again for interrupted key %r", request.tool.name, request.key)
            started = {**held, "request": where}
            self._call_and_record(request, started, message)
            return
        log.warning(
            "key %r: %s was interrupted mid call and takes no idempotency key: unknown",
            request.key,
            request.tool.name,
        )
        entry = {**held, "state": ledger.UNKNOWN, "request": where, "at_ms": _now_ms()}
        entry["reason"] = (
            "interrupted mid call; the endpoint does not honour Idempotency-Key, so whether"
            " the effect happened is for a human to find out"
        )
        self._finish([(ledger.LEDGER_TOPIC, ledger.call_key(request.key), entry)], message)

    def _call_and_record(self, request: Request, started: dict[str, Any], message: Any) -> None:
        tool = request.tool
        self.calls_made += 1
        log.info("calling %s for key %r", tool.name, request.key)
        if self._tracer is None:
            outcome = endpoint.call(
                tool.endpoint, request.arguments, request.key, tool.timeout_ms / 1000
            )
        else:
            from contextplane.services.actions.call_span import traced_call  # only when traced

            outcome = traced_call(self._tracer, tool, request.arguments, request.key)
        entry = {**started, "at_ms": _now_ms()}
        if isinstance(outcome, endpoint.Answer):
            entry["state"] = ledger.DONE
            entry["result"] = {
                "status": outcome.status,
                "body": outcome.body,
                "truncated": outcome.truncated,
            }
        elif isinstance(outcome, endpoint.NotSent) or tool.idempotent:
            # Not sent, or sent with a key the endpoint deduplicates by: trying again is safe.
            entry["state"] = ledger.ERROR
            entry["reason"] = outcome.reason
        else:
            entry["state"] = ledger.UNKNOWN
            entry["reason"] = outcome.reason
        self._record_outcome(entry, message)

    def _record_outcome(self, entry: dict[str, Any], message: Any) -> None:
        """Transaction B: the outcome and the offset past the request. The endpoint has
        acted, so this is retried rather than read again: through an outage, and without
        the group offset when the group moved on (the next owner then finds the entry
        final and only commits the offset)."""
        record: Record = (ledger.LEDGER_TOPIC, ledger.call_key(entry["key"]), entry)
        deadline = _CLOCK.monotonic_ms() / 1000 + OUTAGE_S
        with_offset: TopicPartition | None = _offset(message, message.offset() + 1)
        while True:
            try:
                self._transact([record], with_offset)
                return
            except AbortedError:
                if _CLOCK.monotonic_ms() / 1000 > deadline:
                    raise
                log.warning("recording %r again, without the group offset", entry["key"])
                with_offset = None
                self._stopping.wait(RETRY_PAUSE_S)

    def _finish(self, records: list[Record], message: Any) -> None:
        """One transaction: `records` and the offset past the request."""
        try:
            self._transact(records, _offset(message, message.offset() + 1))
        except AbortedError:
            self._read_again(message)

    def _read_again(self, message: Any) -> None:
        try:
            self._consumer.seek(_offset(message, message.offset()))
        except KafkaException as exc:  # no longer assigned: the next owner reads it
            log.info("not reading %s again: %s", message.topic(), exc)
        self._stopping.wait(RETRY_PAUSE_S)

    # -- transactions --------------------------------------------------------------------

    def _transact(self, records: list[Record], offset: TopicPartition | None) -> None:
        """Produce `records` and commit `offset` for the group in one transaction; the
        ledger records then enter the index. AbortedError when it was aborted; a fatal
        error (fenced) or an unknown outcome is raised and ends the executor."""
        deadline = _CLOCK.monotonic_ms() / 1000 + OUTAGE_S
        self._producer.poll(0)  # serves the error callback, which notes a lost cluster
        if self._disconnected.is_set():
            self._replace_producer(deadline)
        producer = self._producer
        written: dict[bytes, int] = {}
        encoded = [
            (topic, _key_bytes(key), ledger.encode_entry(value)) for topic, key, value in records
        ]

        def delivered(error: KafkaError | None, message: Any) -> None:
            if error is None and message.topic() == ledger.LEDGER_TOPIC:
                written[message.key()] = int(message.offset())

        self._retrying(producer.begin_transaction, deadline)
        try:
            for topic, key, value in encoded:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
            if offset is not None:
                self._retrying(lambda: self._send_offsets(producer, offset), deadline)
            self._retrying(lambda: _flushed(producer, self._config.timeout_s), deadline)
            self._retrying(lambda: producer.commit_transaction(self._config.timeout_s), deadline)
        except AbortedError as exc:
            log.warning("transaction aborted: %s", exc)
            if producer is self._producer:  # else the replacement aborted it already
                self._retrying(lambda: producer.abort_transaction(self._config.timeout_s), deadline)
            raise
        for topic, key, value in encoded:
            if topic == ledger.LEDGER_TOPIC and key in written:
                ledger_key = ledger.decode_key(key)
                assert ledger_key is not None
                self.index.apply(ledger_key, value, written[key])

    def _send_offsets(self, producer: Producer, offset: TopicPartition) -> None:
        """send_offsets_to_transaction, on a thread of its own: one that outlives its
        timeout is stuck (librdkafka#5456) and its producer is abandoned for a new one,
        whose init_transactions aborts the stuck transaction."""
        metadata = self._consumer.consumer_group_metadata()
        failed: list[BaseException] = []

        def send() -> None:
            try:
                producer.send_offsets_to_transaction([offset], metadata, self._config.timeout_s)
            except BaseException as exc:  # handed to the caller's thread
                failed.append(exc)

        sender = threading.Thread(target=send, name="send-offsets", daemon=True)
        sender.start()
        sender.join(self._config.timeout_s + STUCK_SLACK_S)
        if sender.is_alive():
            if len(self._stuck_producers) >= STUCK_PRODUCERS_MAX:
                raise RuntimeError("the transactional producer is stuck again; exiting")
            self._stuck_producers.append(producer)  # kept: destroying it would block too
            log.warning("send_offsets_to_transaction is stuck; replacing the producer")
            self._replace_producer(_CLOCK.monotonic_ms() / 1000 + OUTAGE_S)
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


def _flushed(producer: Producer, timeout_s: float) -> None:
    """Every record delivered (serving the delivery reports), else a retriable error."""
    left = producer.flush(timeout_s)
    if left:
        raise KafkaException(
            KafkaError(KafkaError._TIMED_OUT, f"{left} records undelivered", retriable=True)
        )


def _offset(message: Any, offset: int) -> TopicPartition:
    return TopicPartition(message.topic(), message.partition(), offset)


def _key_bytes(key: LedgerKey | str) -> bytes:
    return key.encode() if isinstance(key, str) else ledger.encode_key(key)


def _now_ms() -> int:
    return _CLOCK.wall_ms()
