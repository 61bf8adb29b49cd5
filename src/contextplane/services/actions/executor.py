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

An `awaiting-approval` call is released by an approval on `copilot.approvals.NAME`, the
topic only `User:NAME` may write (`approvals.py`): it is evaluated again with that
principal as `context.approver`, in the same two transactions, the group offset being the
approval's. Entries older than the key retention are tombstoned (`_expire`). The records
written are built by `entries.py`; the ledger is read into the index by `ledger_reader.py`.

The loop runs on its own thread (confluent-kafka and the endpoint calls block). The
transactional id is stable across restarts and is also the group's static member id, so
a restart fences its predecessor in both the transaction coordinator and the group.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane import tracing
from contextplane.clock import SystemClock
from contextplane.services.actions import endpoint, entries, ledger
from contextplane.services.actions.approval_acls import check_approval_acls
from contextplane.services.actions.approvals import read_approval, why_not_approved
from contextplane.services.actions.ledger import LedgerIndex
from contextplane.services.actions.ledger_reader import LedgerReader
from contextplane.services.actions.metrics import REPLAYED, ExecutorCounts, status_class
from contextplane.services.actions.policy import ALLOW, DENY, evaluate
from contextplane.services.actions.policy_context import read_context
from contextplane.services.actions.requests import Refused, Request, read_request
from contextplane.services.actions.tools import Tool, approvals_topics
from contextplane.services.actions.transactor import (
    OUTAGE_S,
    RETRY_PAUSE_S,
    AbortedError,
    Record,
    Transactor,
)
from contextplane.services.kafka_topics import ensure_topics

log = logging.getLogger("contextplane.actions")
_CLOCK = SystemClock()

# How long a poll waits for a request before the loop checks whether it is stopping.
READ_WAIT_S = 0.2
# Ledger keys kept (idempotency holds within it) unless configured: payment APIs keep 24 h.
KEY_RETENTION_MS = 24 * 3600 * 1000
# Tombstones per transaction, at most; the rest wait for the next sweep.
TOMBSTONES_MAX = 1000
# How often the index is swept for expired keys, at most (a small retention: more often).
SWEEP_EVERY_MS = 60_000


class StartError(Exception):
    """The executor cannot start: an unreachable cluster, a topic it cannot create."""


@dataclass
class ExecutorConfig:
    bootstrap: str
    transactional_id: str = "contextplane-executor-0"
    group: str = "contextplane-executor"
    context_url: str | None = None
    timeout_s: float = 30.0
    client_config: dict[str, str] = field(default_factory=dict)
    key_retention_ms: int = KEY_RETENTION_MS  # 0: keys are kept for ever
    # A transaction left open by an executor that died is aborted by the broker after this,
    # and holds back read_committed readers of its partitions until then.
    transaction_timeout_ms: int = 60_000


class Executor:
    def __init__(self, tools: dict[str, Tool], config: ExecutorConfig) -> None:
        self._tools = tools
        self._config = config
        self._approvers_by_topic = approvals_topics(tools)
        approvers = self._approvers_by_topic
        # What /metrics reads; its labels are the tools file's names only.
        self.counts = ExecutorCounts(tools, approvers.values(), [ledger.REQUESTS_TOPIC, *approvers])
        self._next_lag_ms = 0
        self._owned: set[tuple[str, int]] = set()  # the partitions assigned to this member
        self._next_sweep_ms = 0
        self._common: dict[str, Any] = {
            "bootstrap.servers": config.bootstrap,
            **config.client_config,
        }
        self.index = LedgerIndex()
        # A span per tool call when traces are configured (tracing.py), else None.
        self._tracer = tracing.started_tracer("contextplane-executor")
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
        self._ledger = LedgerReader(
            self._common, config.group, self.index, config.timeout_s, StartError
        )
        self._catch_up = threading.Event()  # set by an assignment: read the ledger first
        self._stopping = threading.Event()
        self._transactor = Transactor(
            self._common,
            config.transactional_id,
            config.transaction_timeout_ms,
            config.timeout_s,
            self._consumer,
            self._stopping,
        )
        self._admin: AdminClient | None = None  # set by start: the approvals topics' ACLs
        self.failure: str | None = None
        self.calls_made = 0

    # -- start ---------------------------------------------------------------------------

    def start(self) -> None:
        """Create the topics if missing, fence earlier incarnations of the transactional
        id, rebuild the index from the ledger, join the group."""
        admin = self._admin = AdminClient(self._common)
        self._create_topics(admin)
        problems = check_approval_acls(admin, self._approvers_by_topic, self._config.timeout_s)
        if problems:
            raise StartError("; ".join(problems))
        log.info("fencing earlier incarnations of %s", self._config.transactional_id)
        try:
            self._transactor.init()
        except KafkaException as exc:
            raise StartError(f"initialising transactions: {exc.args[0].str()}") from None
        self._ledger.start()
        self._ledger.read_to_end()
        log.info("ledger index rebuilt: %d entries", len(self.index))
        self._consumer.subscribe(
            [ledger.REQUESTS_TOPIC, *sorted(self._approvers_by_topic)],
            on_assign=self._assigned,
            on_revoke=self._revoked,
        )

    def _create_topics(self, admin: AdminClient) -> None:
        wanted = [
            NewTopic(ledger.LEDGER_TOPIC, num_partitions=1, config={"cleanup.policy": "compact"}),
            NewTopic(ledger.EVALUATIONS_TOPIC, num_partitions=1),
            NewTopic(ledger.REQUESTS_TOPIC, num_partitions=1),
            *(NewTopic(topic, num_partitions=1) for topic in sorted(self._approvers_by_topic)),
        ]
        config = self._config
        ensure_topics(admin, wanted, config.bootstrap, config.timeout_s, StartError)

    def _assigned(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", [(p.topic, p.partition) for p in partitions])
        self._owned.update((p.topic, p.partition) for p in partitions)
        self.counts.assigned = len(self._owned)
        self._catch_up.set()

    def _revoked(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s", [(p.topic, p.partition) for p in partitions])
        self._owned.difference_update((p.topic, p.partition) for p in partitions)
        self.counts.assigned = len(self._owned)

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
        self._ledger.close()

    def _step(self) -> None:
        # Before the poll: the consumer's position is then that of the last request
        # handled, which the sweep's transaction commits again (see _expire).
        self._expire()
        message = self._consumer.poll(READ_WAIT_S)
        self._note_lag()
        if self._catch_up.is_set():
            self._catch_up.clear()
            self._ledger.read_to_end()
        else:
            self._ledger.read(0)
        if message is None:
            return
        error = message.error()
        if error is not None:
            # A static member fenced by a newer one of the same id comes as _FATAL with
            # fatal() False on the message's error: both are checked.
            if error.fatal() or error.code() == KafkaError._FATAL:
                raise KafkaException(error)
            log.warning("reading %s: %s", message.topic(), error.str())
            return
        self.counts.consumed_from(message.topic())
        if message.topic() == ledger.REQUESTS_TOPIC:
            self._handle(message)
        else:
            self._handle_approval(message)

    def _handle(self, message: Any) -> None:
        where = {
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
        }
        got = read_request(message.key(), message.value(), self._tools)
        if isinstance(got, Refused):
            log.warning("request at %s refused: %s", where, got.reason)
            records: list[Record] = []
            if got.key is not None:
                entry = {"state": ledger.REJECTED, "key": got.key, "reason": got.reason}
                entry.update(request=where, at_ms=_now_ms())
                key = ledger.rejected_key(got.key, message.value() or b"")
                records.append((ledger.LEDGER_TOPIC, key, entry))
            if self._finish(records, message):
                self.counts.rejected["no_key" if got.key is None else got.kind] += 1
            return
        held = self.index.get(ledger.call_key(got.key))
        if held is not None and held.get("request_hash") != got.hash:
            entry = self._entry(got, ledger.CONFLICT, where)
            entry["reason"] = "the idempotency key was used with a different request"
            entry["held_request_hash"] = held.get("request_hash")
            key = ledger.conflict_key(got.key, got.hash)
            if self._finish([(ledger.LEDGER_TOPIC, key, entry)], message):
                self.counts.call(got.tool.name, ledger.CONFLICT)
        elif held is not None and held.get("state") in ledger.FINAL:
            if self._finish([], message):  # the recorded result stands
                self.counts.call(got.tool.name, REPLAYED)
        elif held is not None and held.get("state") == ledger.STARTED:
            self._resume(got, message, where)
        else:
            self._evaluate_and_act(got, message, where)

    def _entry(self, request: Request, state: str, where: dict[str, Any]) -> dict[str, Any]:
        return entries.call_entry(request, state, where, self._config.transactional_id, _now_ms())

    def _evaluate_and_act(
        self,
        request: Request,
        message: Any,
        where: dict[str, Any],
        approval: dict[str, Any] | None = None,
    ) -> None:
        """Evaluate the policy and act on its decision. `approval`: the approval record that
        released the call (its topic names the approver), when one did; `message` is then
        that record, whose offset the transactions commit."""
        tool = request.tool
        approver = None if approval is None else self._approvers_by_topic[approval["topic"]]
        # A typed `approved_by` approves only a tool that names no approvers.
        typed_approval = request.approved_by is not None and not tool.approvers
        entity: dict[str, Any] | None = None
        context_read: dict[str, Any] | None = None
        if tool.context is not None:
            read = read_context(self._config.context_url, request)
            if isinstance(read, str):
                entry = self._entry(request, ledger.ERROR, where)
                entry["reason"] = read
                call_entry = (ledger.LEDGER_TOPIC, ledger.call_key(request.key), entry)
                if self._finish([call_entry], message):
                    self.counts.call(tool.name, ledger.ERROR)
                return
            entity, context_read = read
        evaluation = evaluate(
            tool.policy,
            tool.approval_policy,
            tool=tool.name,
            caller=request.caller,
            arguments=request.arguments,
            entity=entity,
            approved=approver is not None or typed_approval,
            approver=approver,
        )
        executor = self._config.transactional_id
        event = entries.evaluation_event(request, evaluation, context_read, executor, _now_ms())
        summary = {"decision": evaluation.decision, "policy_version": tool.policy_version}
        evaluated: Record = (ledger.EVALUATIONS_TOPIC, request.key, event)
        if evaluation.decision != ALLOW:
            state = ledger.DENIED if evaluation.decision == DENY else ledger.AWAITING_APPROVAL
            entry = self._entry(request, state, where)
            entry["evaluation"] = summary
            entries.note_approval(entry, request, approver, approval)
            if state == ledger.AWAITING_APPROVAL:
                # What an approval evaluates again: the request as it came.
                entry["request_value"] = request.value
            call = (ledger.LEDGER_TOPIC, ledger.call_key(request.key), entry)
            if self._finish([evaluated, call], message):
                self.counts.call(tool.name, state)
                self._count_evaluation(tool.name, evaluation.decision, approver)
            return
        started = self._entry(request, ledger.STARTED, where)
        started["evaluation"] = summary
        entries.note_approval(started, request, approver, approval)
        if approval is not None:
            # The approval is what is read again after a crash: the call is rebuilt from it.
            started["request_value"] = request.value
        # Transaction A: the offset stays *at* the request, so the request is read again
        # if the call is interrupted; committing it also proves this member still owns
        # the partition in the group's current generation.
        records: list[Record] = [
            evaluated,
            (ledger.LEDGER_TOPIC, ledger.call_key(request.key), started),
        ]
        try:
            self._transact(records, [_offset(message, message.offset())])
        except AbortedError:
            self._read_again(message)
            return
        self._count_evaluation(tool.name, evaluation.decision, approver)
        self._call_and_record(request, started, message)

    def _count_evaluation(self, tool: str, decision: str, approver: str | None) -> None:
        self.counts.decisions[(tool, decision)] += 1
        if approver is not None:
            self.counts.approvals[(approver, "released")] += 1

    def _handle_approval(self, message: Any) -> None:
        """An approval: it releases the `awaiting-approval` call it names, once; one that
        approves nothing is recorded as `refused` under its own key, with why."""
        where = {
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
        }
        approver = self._approvers_by_topic[message.topic()]
        got = read_approval(message.key(), message.value())
        if isinstance(got, str):
            log.warning("approval at %s by %s refused: %s", where, approver, got)
            if self._finish([], message):
                self.counts.approvals[(approver, "refused")] += 1
            return
        self._ledger.read_to_end()  # the call's entry may be another executor's, just written
        held = self.index.get(ledger.call_key(got.key))
        retention = self._config.key_retention_ms
        why = why_not_approved(got, approver, held, where, self._tools, _now_ms(), retention)
        if why is None and held is not None and held.get("state") != ledger.STARTED:
            why = self._acl_problem(message.topic(), approver)  # a release, not a resume
        if why is None:
            assert held is not None
            request = read_request(
                got.key.encode(), ledger.encode_entry(held["request_value"]), self._tools
            )
            if isinstance(request, Refused):  # the tools file changed since
                why = f"the request no longer reads: {request.reason}"
            elif held["state"] == ledger.STARTED:
                self._resume(request, message, held["request"])
                return
            else:
                self._evaluate_and_act(request, message, held["request"], approval=where)
                return
        log.warning("approval of %r by %s refused: %s", got.key, approver, why)
        executor = self._config.transactional_id
        entry = entries.refused_approval_entry(got, approver, where, why, executor, _now_ms())
        key = ledger.approval_key(got.key, approver, got.request_hash)
        if self._finish([(ledger.LEDGER_TOPIC, key, entry)], message):
            self.counts.approvals[(approver, "refused")] += 1

    def _acl_problem(self, topic: str, approver: str) -> str | None:
        """The approvals topic's ACLs read again before each release (one DescribeAcls):
        one changed since the start check (a grant to another principal, the approver's
        own removed) refuses the approval rather than take its writer for the approver."""
        assert self._admin is not None, "started"
        problems = check_approval_acls(self._admin, {topic: approver}, self._config.timeout_s)
        if not problems:
            return None
        return "the ACLs no longer attest the approver: " + "; ".join(problems)

    # -- key retention -------------------------------------------------------------------

    def _expire(self) -> None:
        """Tombstones for the entries of owned partitions older than the key retention
        (swept at most every SWEEP_EVERY_MS, or a quarter of the retention): the compacted
        ledger and this index keep only the horizon's keys. A request for a key tombstoned
        is a new call.

        The transaction also commits the group offsets of the partitions whose keys it
        tombstones, at the consumer's position (what the last request handled committed:
        no offset moves). That fences it as KIP-447 fences a zombie: a member that lost a
        partition without having seen the revocation yet is refused by the group
        coordinator (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID) and the
        tombstones are aborted; the new owner's offset fetch waits while the transaction
        is open, so it reads the tombstones before it writes any entry of those keys."""
        retention = self._config.key_retention_ms
        now = _now_ms()
        if retention <= 0 or now < self._next_sweep_ms:
            return
        self._next_sweep_ms = now + min(SWEEP_EVERY_MS, max(retention // 4, 1))
        # Entries another executor wrote just now (an approval released) are seen first.
        self._ledger.read_to_end()
        keys = self.index.expired(now - retention, self._owned, TOMBSTONES_MAX)
        if not keys:
            return
        positions = self._positions({ledger.source(key, self.index.get(key) or {}) for key in keys})
        keys = [k for k in keys if ledger.source(k, self.index.get(k) or {}) in positions]
        if not keys:
            return
        log.info("tombstoning %d ledger keys older than %d ms", len(keys), retention)
        offsets = [TopicPartition(t, p, offset) for (t, p), offset in sorted(positions.items())]
        try:
            self._transact([(ledger.LEDGER_TOPIC, key, None) for key in keys], offsets)
            self.counts.tombstones += len(keys)
        except AbortedError:
            self._next_sweep_ms = now  # the next step tries again

    def _positions(self, partitions: set[tuple[str, int] | None]) -> dict[tuple[str, int], int]:
        """The consumer's position of each partition, else (nothing read since it was
        assigned) its committed offset; a partition with neither is left out (its keys
        wait for a later sweep)."""
        asked = [TopicPartition(t, p) for t, p in sorted(p for p in partitions if p)]
        found: dict[tuple[str, int], int] = {}
        try:
            for tp in self._consumer.position(asked):
                if tp.error is None and tp.offset >= 0:
                    found[(tp.topic, tp.partition)] = tp.offset
            unread = [tp for tp in asked if (tp.topic, tp.partition) not in found]
            if unread:
                for tp in self._consumer.committed(unread, timeout=self._config.timeout_s):
                    if tp.error is None and tp.offset >= 0:
                        found[(tp.topic, tp.partition)] = tp.offset
        except KafkaException as exc:
            log.warning("the sweep waits: reading the group's positions: %s", exc)
            return {}
        return found

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
        entry = entries.interrupted_entry(held, where, _now_ms())
        if self._finish([(ledger.LEDGER_TOPIC, ledger.call_key(request.key), entry)], message):
            self.counts.call(request.tool.name, ledger.UNKNOWN)

    def _call_and_record(self, request: Request, started: dict[str, Any], message: Any) -> None:
        tool = request.tool
        self.calls_made += 1
        log.info("calling %s for key %r", tool.name, request.key)
        began_ms = _CLOCK.monotonic_ms()
        if self._tracer is None:
            outcome = endpoint.call(
                tool.endpoint, request.arguments, request.key, tool.timeout_ms / 1000
            )
        else:
            from contextplane.services.actions.call_span import traced_call  # only when traced

            outcome = traced_call(self._tracer, tool, request.arguments, request.key)
        if isinstance(outcome, endpoint.Answer):
            result = status_class(outcome.status)
        else:
            result = "not_sent" if isinstance(outcome, endpoint.NotSent) else "interrupted"
        self.counts.endpoint_call(tool.name, result, (_CLOCK.monotonic_ms() - began_ms) / 1000)
        entry = entries.outcome_entry(started, outcome, tool.idempotent, _now_ms())
        self._record_outcome(entry, message)
        self.counts.call(tool.name, entry["state"])

    def _record_outcome(self, entry: dict[str, Any], message: Any) -> None:
        """Transaction B: the outcome and the offset past the request. The endpoint has
        acted, so this is retried rather than read again: through an outage, and without
        the group offset when the group moved on (the next owner then finds the entry
        final and only commits the offset)."""
        record: Record = (ledger.LEDGER_TOPIC, ledger.call_key(entry["key"]), entry)
        deadline = _CLOCK.monotonic_ms() / 1000 + OUTAGE_S
        with_offset = [_offset(message, message.offset() + 1)]
        while True:
            try:
                self._transact([record], with_offset)
                return
            except AbortedError:
                if _CLOCK.monotonic_ms() / 1000 > deadline:
                    raise
                log.warning("recording %r again, without the group offset", entry["key"])
                with_offset = []
                self._stopping.wait(RETRY_PAUSE_S)

    def _finish(self, records: list[Record], message: Any) -> bool:
        """One transaction: `records` and the offset past the request; False when it was
        aborted (the request is read again)."""
        try:
            self._transact(records, [_offset(message, message.offset() + 1)])
            return True
        except AbortedError:
            self._read_again(message)
            return False

    def _read_again(self, message: Any) -> None:
        try:
            self._consumer.seek(_offset(message, message.offset()))
        except KafkaException as exc:  # no longer assigned: the next owner reads it
            log.info("not reading %s again: %s", message.topic(), exc)
        self._stopping.wait(RETRY_PAUSE_S)

    # -- transactions --------------------------------------------------------------------

    def _transact(self, records: list[Record], offsets: list[TopicPartition]) -> None:
        """One transaction (transactor.py); the ledger records committed enter the index."""
        try:
            written = self._transactor.transact(records, offsets)
        except AbortedError:
            self.counts.transactions["aborted"] += 1
            raise
        self.counts.transactions["committed"] += 1
        for key, value, offset_written in written:
            self.index.apply(key, value, offset_written)

    def _note_lag(self) -> None:
        """Each assigned partition's records past the position (the last stable offset
        librdkafka cached from its fetches, for read_committed), once a second at most."""
        now = _CLOCK.monotonic_ms()
        if now < self._next_lag_ms:
            return
        self._next_lag_ms = now + 1000
        lag: dict[tuple[str, int], int] = {}
        try:
            for tp in self._consumer.position([TopicPartition(t, p) for t, p in self._owned]):
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    lag[(tp.topic, tp.partition)] = max(high - tp.offset, 0)
        except KafkaException as exc:
            log.debug("the lag waits: %s", exc)
        self.counts.lag = lag


def _offset(message: Any, offset: int) -> TopicPartition:
    return TopicPartition(message.topic(), message.partition(), offset)


def _now_ms() -> int:
    return _CLOCK.wall_ms()
