"""The action ledger's records and the executor's index of them (RFC 0006 §2).

`copilot.ledger` is compacted; a call's entry is keyed by its idempotency key, so
compaction keeps a key's latest state: `["call", KEY]`. A request that reuses a key with
different arguments gets its own record, `["conflict", KEY, REQUEST_HASH]`, so the
refusal never replaces the entry the key already has; a request that cannot be read,
`["rejected", KEY, HASH OF ITS BYTES]`; an approval that approves nothing,
`["approval", KEY, PRINCIPAL, REQUEST_HASH]`. Keys and values are JSON.

Every entry is tombstoned once it is older than the key retention (`expired`), except a
call under way (`started`): idempotency holds within that horizon.

States of a call entry: `started` (the policy allowed it and the endpoint is being
called), `done` (the endpoint answered: its status and body), `denied`,
`awaiting-approval`, `unknown` (a non-idempotent endpoint was interrupted mid call: only
a human can say whether the effect happened), `error` (the call did not happen or can be
repeated safely: the same request tries again). `done`, `denied` and `unknown` are
final: the same request answers them again without acting.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

STARTED = "started"
DONE = "done"
DENIED = "denied"
AWAITING_APPROVAL = "awaiting-approval"
UNKNOWN = "unknown"
ERROR = "error"
CONFLICT = "conflict"
REJECTED = "rejected"
APPROVAL = "approval"
REFUSED = "refused"  # an approval's state when it approved nothing
FINAL = frozenset({DONE, DENIED, UNKNOWN})

LEDGER_TOPIC = "copilot.ledger"
EVALUATIONS_TOPIC = "copilot.policy-evaluations"
REQUESTS_TOPIC = "copilot.tool-calls"
# A request record (key and value) and an idempotency key, at most.
REQUEST_BYTES_MAX = 64 * 1024
KEY_BYTES_MAX = 256
# What the index holds, at most: entries past it stop the executor (the ledger has
# outgrown one process's memory; RFC 0006 "Not built": retention of old keys).
INDEX_BYTES_MAX = 512 * 1024 * 1024
# An approval releases an entry only this far (at most) inside the key retention, a
# quarter of it when shorter: the sweep of another executor, which owns the request's
# partition, may tombstone the entry as it crosses the horizon. The margin covers the
# releasing executor's first transaction, the sweeper's read of the ledger and the
# executors' clock skew.
APPROVAL_MARGIN_MS_MAX = 60_000

LedgerKey = tuple[str, ...]


def request_hash(tool: str, arguments: Any) -> str:
    """What a key's requests are compared by: the tool and its arguments, canonical JSON."""
    canonical = json.dumps(
        {"tool": tool, "arguments": arguments}, sort_keys=True, separators=(",", ":")
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def call_key(key: str) -> LedgerKey:
    return ("call", key)


def conflict_key(key: str, hash_: str) -> LedgerKey:
    return ("conflict", key, hash_)


def approval_key(key: str, principal: str, hash_: str) -> LedgerKey:
    return (APPROVAL, key, principal, hash_)


def value_hash(raw: bytes) -> str:
    """A request record's value as a rejection names it (the record may not be JSON)."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def rejected_key(key: str, raw: bytes) -> LedgerKey:
    return rejected_key_of(key, value_hash(raw))


def rejected_key_of(key: str, raw_hash: str) -> LedgerKey:
    return ("rejected", key, raw_hash)


def encode_key(key: LedgerKey) -> bytes:
    return json.dumps(list(key), separators=(",", ":")).encode()


def encode_entry(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


def decode_key(raw: bytes | None) -> LedgerKey | None:
    try:
        parsed = json.loads(raw) if raw else None
    except (ValueError, RecursionError):  # anyone may write the topic: no key stops a reader
        return None
    if isinstance(parsed, list) and parsed and all(isinstance(p, str) for p in parsed):
        return tuple(parsed)
    return None


@dataclass
class Indexed:
    entry: dict[str, Any]
    offset: int  # in the ledger: a record older than the one held never replaces it
    size: int


class IndexFullError(Exception):
    """The ledger holds more than INDEX_BYTES_MAX of entries."""


# What the index counts its entries by (its /metrics): anything else is `other`, since
# anyone able to write the ledger topic may write any key or state.
KINDS = ("call", "conflict", "rejected", APPROVAL, "other")
STATES = (STARTED, DONE, DENIED, AWAITING_APPROVAL, UNKNOWN, ERROR, "other")


class LedgerIndex:
    """The ledger folded by key: the newest entry of each (tombstones remove)."""

    def __init__(self, bytes_max: int = INDEX_BYTES_MAX) -> None:
        self._entries: dict[LedgerKey, Indexed] = {}
        self._bytes = 0
        self._bytes_max = bytes_max
        self.kinds = dict.fromkeys(KINDS, 0)  # entries by key kind
        self.states = dict.fromkeys(STATES, 0)  # call entries by state

    @property
    def bytes_used(self) -> int:
        return self._bytes

    @property
    def bytes_max(self) -> int:
        return self._bytes_max

    def _count(self, key: LedgerKey, entry: dict[str, Any], by: int) -> None:
        kind = key[0] if key[0] in self.kinds else "other"
        self.kinds[kind] += by
        if kind == "call":
            state = entry.get("state")
            if not (isinstance(state, str) and state in self.states):  # (a list: unhashable)
                state = "other"
            self.states[state] += by

    def get(self, key: LedgerKey) -> dict[str, Any] | None:
        found = self._entries.get(key)
        return None if found is None else found.entry

    def apply(self, key: LedgerKey, raw: bytes | None, offset: int) -> None:
        held = self._entries.get(key)
        if held is not None and held.offset >= offset:
            return
        if held is not None:
            self._bytes -= held.size
            self._count(key, held.entry, -1)
            del self._entries[key]
        if raw is None:
            return
        try:
            entry = json.loads(raw)
        except (ValueError, RecursionError):
            return
        if not isinstance(entry, dict):
            return
        size = len(raw) + 100
        if self._bytes + size > self._bytes_max:
            raise IndexFullError(
                f"the ledger's entries pass {self._bytes_max} bytes of this executor's index"
            )
        self._entries[key] = Indexed(entry, offset, size)
        self._bytes += size
        self._count(key, entry, 1)

    def __len__(self) -> int:
        return len(self._entries)

    def expired(
        self, before_ms: int, owned: set[tuple[str, int]], count_max: int
    ) -> list[LedgerKey]:
        """Keys (at most `count_max`) whose entry was written before `before_ms`, is not a
        call under way, and came from a record of a partition in `owned`: the owner of a
        key's partition is the one executor that writes its entries, so a tombstone never
        races a newer entry of the same key from another executor."""
        found: list[LedgerKey] = []
        for key, held in self._entries.items():
            entry = held.entry
            if not written_before(entry, before_ms):
                continue
            if entry.get("state") == STARTED or source(key, entry) not in owned:
                continue
            found.append(key)
            if len(found) >= count_max:
                break
        return found


def written_before(entry: dict[str, Any], before_ms: int) -> bool:
    at_ms = entry.get("at_ms")
    return type(at_ms) is int and at_ms < before_ms


def approval_horizon_ms(now_ms: int, retention_ms: int) -> int | None:
    """An approval releases no entry written before this (None: keys are kept for ever):
    APPROVAL_MARGIN_MS_MAX, or a quarter of the retention, inside the sweep's horizon."""
    if retention_ms <= 0:
        return None
    return now_ms - retention_ms + min(APPROVAL_MARGIN_MS_MAX, retention_ms // 4)


def source(key: LedgerKey, entry: dict[str, Any]) -> tuple[str, int] | None:
    """The topic and partition of the record an entry was written for: the approval's for
    a refused approval, else the request's."""
    where = entry.get("approval" if key[0] == APPROVAL else "request")
    if not isinstance(where, dict):
        return None
    topic, partition = where.get("topic"), where.get("partition")
    if not isinstance(topic, str) or type(partition) is not int:
        return None
    return topic, partition
