"""What the copilot function is given in a replay instead of the live clients: a context
client whose every read is a point-in-time read at the positions the original decision
recorded, and a tools client that answers each call from the ledger (decided again under
changed tool policies when a replay is given them: `policies.py`). Neither has a Kafka
producer: the replay cannot produce a tool call (RFC 0006 §3: the zero is structural)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from contextplane.services.actions import ledger
from contextplane.services.actions.client import ActionsClientError, Outcome, read_ledger
from contextplane.services.context.client import ContextClient, ContextClientError, EntityContext
from contextplane.services.replay.policies import ChangedPolicies
from contextplane.services.trace import current

# A replayed call whose key has no ledger entry: it is not called, and says so.
NOT_RECORDED = "not-recorded"

Vector = dict[tuple[str, int], int]


class ReadRefused(ContextClientError):
    """A read the replay cannot answer as of the original's positions (kind
    `not-recorded`)."""

    def __init__(self, detail: str) -> None:
        super().__init__(409, {"type": f"/problems/{NOT_RECORDED}", "detail": detail})


def positions_of(read: dict[str, Any]) -> Vector | None:
    """A recorded read's positions as an as_of vector (None for a read that failed)."""
    raw = read.get("positions")
    if not isinstance(raw, list) or not raw:
        return None
    vector: Vector = {}
    for position in raw:
        if not isinstance(position, dict):
            return None
        topic, partition, at = (position.get(k) for k in ("topic", "partition", "position"))
        if not isinstance(topic, str) or type(partition) is not int or type(at) is not int:
            return None
        vector[(topic, partition)] = at
    return vector


class ReplayContext:
    """`Context` for one replayed decision: the n-th read of (view, entity) answers as of
    the positions of the original's n-th read of it (its last, past those); a read the
    original did not make, as of the original's last positions of that view; else
    refused. A read asked with its own `as_of` or `as_of_ms` is made as asked."""

    def __init__(self, client: ContextClient | None, reads: list[dict[str, Any]]) -> None:
        self._client = client
        self._by_entity: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._by_view: dict[str, Vector] = {}
        for read in reads:
            view, entity = str(read.get("view")), str(read.get("entity"))
            self._by_entity.setdefault((view, entity), []).append(read)
            vector = positions_of(read)
            if vector is not None:
                self._by_view[view] = vector
        self._asked: Counter[tuple[str, str]] = Counter()

    def get(
        self,
        view: str,
        entity: str,
        min_offsets: Vector | None = None,
        timeout_ms: int | None = None,
        as_of: Vector | None = None,
        as_of_ms: int | None = None,
    ) -> EntityContext:
        """The live client's signature; `min_offsets` and `timeout_ms` are moot (the
        positions read as of were applied when the original read them)."""
        del min_offsets, timeout_ms
        try:
            if self._client is None:
                raise ReadRefused(f"read {view}/{entity}: no context service given (--context-url)")
            if as_of is None and as_of_ms is None:
                as_of = self._vector(view, entity)
        except ReadRefused as exc:
            decision = current.current()
            if decision is not None:
                decision.note_read({"view": view, "entity": entity, "error": str(exc)})
            raise
        return self._client.get(view, entity, as_of=as_of, as_of_ms=as_of_ms)

    def _vector(self, view: str, entity: str) -> Vector:
        recorded = self._by_entity.get((view, entity), [])
        nth = self._asked[(view, entity)]
        self._asked[(view, entity)] += 1
        if recorded:
            read = recorded[min(nth, len(recorded) - 1)]
            vector = positions_of(read)
            if vector is not None:
                return vector
        vector = self._by_view.get(view)
        if vector is not None:
            return vector
        why = (
            f"the original's read of it failed ({recorded[-1].get('error')})"
            if recorded
            else "the original decision read nothing of that view"
        )
        raise ReadRefused(f"read {view}/{entity}: no recorded positions to read as of: {why}")


class ReplayTools:
    """`ActionsClient` for a replay: a call answers the ledger's entry of its key (the
    executor's `GET /v1/ledger?key=`), never producing a request; a key the ledger does
    not hold answers `not-recorded`, one held for other arguments `conflict` (what the
    executor would answer)."""

    def __init__(self, ledger_url: str | None, policies: ChangedPolicies | None = None) -> None:
        self._ledger_url = ledger_url
        self._policies = policies  # `--tools`: the recorded evaluations decided again

    def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        idempotency_key: str,
        **_live_only: Any,  # decision_id, approved_by, context_offsets, wait_s
    ) -> Outcome:
        noted: dict[str, Any] = {"key": idempotency_key, "tool": tool, "arguments": arguments}
        decision = current.current()
        try:
            outcome = self._recorded(tool, arguments, idempotency_key)
            if self._policies is not None and outcome.state not in (NOT_RECORDED, ledger.CONFLICT):
                outcome, policy = self._policies.apply(tool, idempotency_key, outcome)
                if policy is not None:
                    noted["policy"] = policy
        except ActionsClientError as exc:
            noted.update(state="no-outcome", error=str(exc))
            raise
        finally:
            if decision is not None:
                decision.note_call(noted)
        noted["state"] = outcome.state
        return outcome

    def _recorded(self, tool: str, arguments: dict[str, Any], key: str) -> Outcome:
        if self._ledger_url is None:
            raise ActionsClientError(f"call {key!r}: no ledger given (--ledger-url)")
        try:
            found = read_ledger(self._ledger_url, key)
        except OSError as exc:
            raise ActionsClientError(f"ledger read of {key!r}: {exc}") from None
        entry = None if found is None else found.get("entry")
        if not isinstance(entry, dict):
            return Outcome(NOT_RECORDED, None, {})
        if entry.get("request_hash") != ledger.request_hash(tool, arguments):
            return Outcome(ledger.CONFLICT, None, entry)
        return Outcome(str(entry.get("state")), entry.get("result"), entry)

    def close(self) -> None:
        """Nothing to flush: there is no producer."""
