"""The copilot side of the executor: a tool call produced to `copilot.tool-calls` and its
outcome waited for (bounded) through the executor's ledger read.

    client = ActionsClient("127.0.0.1:9092", "http://127.0.0.1:8091")
    outcome = client.call("refund", {"account_id": "a1", "amount": 40}, "refund-a1-1")
    outcome.state, outcome.result   # "done", {"status": 200, "body": ...}

The same key with the same request answers the recorded outcome again (the endpoint is
not called again); with a different request, `conflict`. An `awaiting-approval` call is
released by its tool's approver, logged in as that principal:

    approver = ActionsClient(bootstrap, executor_url, alice_login)
    approver.approve("User:alice", "refund-a1-1", outcome.entry["request_hash"])
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer

from contextplane.clock import SystemClock
from contextplane.services.actions import ledger
from contextplane.services.actions.tools import approvals_topic
from contextplane.services.kafka_delivery import produce_and_wait
from contextplane.services.trace import current

# A call's outcome is waited for this long unless told otherwise.
CALL_WAIT_S = 30.0
POLL_PAUSE_S = 0.05
HTTP_TIMEOUT_S = 10.0
# Outcomes the wait ends on. `started` is not one: the call is under way.
_ANSWERED = ledger.FINAL | {ledger.AWAITING_APPROVAL, ledger.ERROR}


class ActionsClientError(Exception):
    """The request could not be produced, or its outcome did not come in time."""


@dataclass(frozen=True)
class Outcome:
    state: str  # done, denied, awaiting-approval, unknown, error, conflict, rejected
    result: dict[str, Any] | None  # the endpoint's answer, for `done`
    entry: dict[str, Any]  # the ledger entry as recorded


class ActionsClient:
    def __init__(
        self, bootstrap: str, executor_url: str, client_config: dict[str, str] | None = None
    ) -> None:
        self._url = executor_url.rstrip("/")
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                **(client_config or {}),
                "enable.idempotence": True,
                "linger.ms": 0,
            }
        )

    def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        idempotency_key: str,
        *,
        decision_id: str | None = None,
        approved_by: str | None = None,
        context_offsets: dict[tuple[str, int], int] | None = None,
        wait_s: float = CALL_WAIT_S,
    ) -> Outcome:
        """Produce the call and wait (at most `wait_s`) for its outcome in the ledger.
        Inside `with decisions.decision()`, the call is recorded on that decision (its
        key, tool, request position and outcome, or why there is none) and
        `decision_id` defaults to its id."""
        decision = current.current()
        if decision is None:
            return self._call(
                tool,
                arguments,
                idempotency_key,
                decision_id,
                approved_by,
                context_offsets,
                wait_s,
                {},
            )
        noted: dict[str, Any] = {"key": idempotency_key, "tool": tool, "arguments": arguments}
        try:
            outcome = self._call(
                tool,
                arguments,
                idempotency_key,
                decision_id or decision.id,
                approved_by,
                context_offsets,
                wait_s,
                noted,
            )
        except ActionsClientError as exc:
            noted.update(state="no-outcome", error=str(exc))
            raise
        finally:
            decision.note_call(noted)
        noted["state"] = outcome.state
        return outcome

    def _call(
        self,
        tool: str,
        arguments: dict[str, Any],
        idempotency_key: str,
        decision_id: str | None,
        approved_by: str | None,
        context_offsets: dict[tuple[str, int], int] | None,
        wait_s: float,
        noted: dict[str, Any],
    ) -> Outcome:
        hash_ = ledger.request_hash(tool, arguments)
        value: dict[str, Any] = {
            "decision_id": decision_id or idempotency_key,
            "tool": tool,
            "arguments": arguments,
            "request_hash": hash_,
        }
        if approved_by is not None:
            value["approved_by"] = approved_by
        if context_offsets:
            vector: dict[str, dict[str, int]] = {}
            for (topic, partition), offset in context_offsets.items():
                vector.setdefault(topic, {})[str(partition)] = offset
            value["context_offsets"] = vector
        raw = encoded(value)
        landed = self._produce(idempotency_key, value, wait_s)
        noted["request"] = {"partition": landed[0], "offset": landed[1]}
        clock = SystemClock()
        deadline = clock.monotonic_ms() + wait_s * 1000
        unreachable = ""
        while True:
            try:
                outcome = self._outcome(idempotency_key, hash_, ledger.value_hash(raw), landed)
                unreachable = ""
            except OSError as exc:  # the executor restarting: the request waits in Kafka
                outcome, unreachable = None, f"; the executor did not answer: {exc}"
            if outcome is not None:
                return outcome
            if clock.monotonic_ms() > deadline:
                raise ActionsClientError(
                    f"no outcome for {idempotency_key!r} within {wait_s:g} s"
                    f" (request at {ledger.REQUESTS_TOPIC}[{landed[0]}]@{landed[1]}){unreachable}"
                )
            threading.Event().wait(POLL_PAUSE_S)

    def approve(
        self, approver: str, idempotency_key: str, request_hash: str, wait_s: float = CALL_WAIT_S
    ) -> Outcome:
        """Approve the call under `idempotency_key` whose request hashes to `request_hash`,
        as `approver` (`User:NAME`: the principal this client logs in as; the cluster's
        ACLs refuse anyone else's write to its approvals topic), and wait for what the
        approval did: the call's outcome, or `refused` with why."""
        value = encoded({"request_hash": request_hash})
        landed = produce_and_wait(
            self._producer,
            approvals_topic(approver),
            idempotency_key.encode(),
            value,
            wait_s,
            ActionsClientError,
            f"the approval of {idempotency_key!r}",
        )
        clock = SystemClock()
        deadline = clock.monotonic_ms() + wait_s * 1000
        while True:
            try:
                found = read_ledger(self._url, idempotency_key, request_hash, approver=approver)
            except OSError:
                found = None  # the executor restarting: the approval waits in Kafka
            outcome = _approval_outcome(found, request_hash, landed)
            if outcome is not None:
                return outcome
            if clock.monotonic_ms() > deadline:
                raise ActionsClientError(
                    f"no outcome for the approval of {idempotency_key!r} within {wait_s:g} s"
                )
            threading.Event().wait(POLL_PAUSE_S)

    def entry(
        self, idempotency_key: str, request_hash: str | None = None, value_hash: str | None = None
    ) -> dict[str, Any] | None:
        """The executor's ledger read: `{entry, conflict, rejected, approval}`, or None when
        it has none of them."""
        return read_ledger(self._url, idempotency_key, request_hash, value_hash)

    def _produce(self, key: str, value: dict[str, Any], wait_s: float) -> tuple[int, int]:
        return produce_and_wait(
            self._producer,
            ledger.REQUESTS_TOPIC,
            key.encode(),
            encoded(value),
            wait_s,
            ActionsClientError,
            f"the call {key!r}",
        )

    def _outcome(
        self, key: str, hash_: str, raw_hash: str, landed: tuple[int, int]
    ) -> Outcome | None:
        """The outcome of the request produced at `landed`: a final entry of the same
        request, or a conflict, rejection or non-final answer written for this very
        request record (an older one would be the answer to an earlier attempt)."""
        found = self.entry(key, hash_, raw_hash)
        if found is None:
            return None
        rejected = found.get("rejected")
        if isinstance(rejected, dict):
            request = rejected.get("request") or {}
            if (request.get("partition"), request.get("offset")) == landed:
                return Outcome(ledger.REJECTED, None, rejected)
        for entry in (found.get("conflict"), found.get("entry")):
            if not isinstance(entry, dict) or entry.get("request_hash") != hash_:
                continue
            state = entry.get("state")
            request = entry.get("request") or {}
            this_request = (request.get("partition"), request.get("offset")) == landed
            if state in ledger.FINAL or (this_request and state in _ANSWERED | {ledger.CONFLICT}):
                return Outcome(str(state), entry.get("result"), entry)
        return None

    def close(self) -> None:
        self._producer.flush(HTTP_TIMEOUT_S)


def _approval_outcome(
    found: dict[str, Any] | None, request_hash: str, landed: tuple[int, int]
) -> Outcome | None:
    """What the approval produced at `landed` did: its refusal, or the call's entry once
    this approval moved it (a final state, or any state it wrote)."""
    if found is None:
        return None
    refused = found.get("approval")
    if isinstance(refused, dict) and _at(refused.get("approval")) == landed:
        return Outcome(ledger.REFUSED, None, refused)
    entry = found.get("entry")
    if not isinstance(entry, dict) or entry.get("request_hash") != request_hash:
        return None
    state = entry.get("state")
    if state in ledger.FINAL or (state != ledger.STARTED and _at(entry.get("approval")) == landed):
        return Outcome(str(state), entry.get("result"), entry)
    return None


def _at(where: Any) -> tuple[Any, Any] | None:
    return (where.get("partition"), where.get("offset")) if isinstance(where, dict) else None


def read_ledger(
    executor_url: str,
    idempotency_key: str,
    request_hash: str | None = None,
    value_hash: str | None = None,
    approver: str | None = None,
) -> dict[str, Any] | None:
    """`GET /v1/ledger?key=` of the executor at `executor_url`: `{entry, conflict,
    rejected, approval}`, or None when it has none of them (a read only: no producer)."""
    query = {"key": idempotency_key}
    if request_hash is not None:
        query["request_hash"] = request_hash
    if value_hash is not None:
        query["value_hash"] = value_hash
    if approver is not None:
        query["approver"] = approver
    url = f"{executor_url.rstrip('/')}/v1/ledger?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise ActionsClientError(f"ledger read: HTTP {exc.code}") from None


def encoded(value: dict[str, Any]) -> bytes:
    """A request record's value as produced (and as a rejection's value hash names it)."""
    return json.dumps(value).encode()
