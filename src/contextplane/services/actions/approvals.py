"""An approval as it arrives on `copilot.approvals.NAME`: key = the idempotency key it
approves, value = `{"request_hash": H}` (JSON), the hash of the request it approves, as
the ledger's `awaiting-approval` entry names it.

Who approved is not in the record: it is the topic's. The cluster's ACLs let only
`User:NAME` write `copilot.approvals.NAME` (the operator grants it; the executor checks
nothing a producer typed), so a record there is that principal's approval. A Kafka broker
does not tell a consumer which principal produced a record; a topic per approver is how
its ACLs can say it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from contextplane.services.actions.ledger import KEY_BYTES_MAX

APPROVAL_BYTES_MAX = 4096


@dataclass(frozen=True)
class Approval:
    key: str
    request_hash: str


def read_approval(raw_key: bytes | None, raw_value: bytes | None) -> Approval | str:
    """The approval, or why the record is not one."""
    if not raw_key or len(raw_key) > KEY_BYTES_MAX:
        return f"the record key is not an idempotency key of 1 to {KEY_BYTES_MAX} bytes"
    try:
        key = raw_key.decode()
    except UnicodeDecodeError:
        return "the record key (an idempotency key) is not UTF-8"
    if raw_value is None or len(raw_value) > APPROVAL_BYTES_MAX:
        return f"no value, or a value over {APPROVAL_BYTES_MAX} bytes"
    try:
        value = json.loads(raw_value)
    except (ValueError, RecursionError):
        return "value not JSON"
    hash_ = value.get("request_hash") if isinstance(value, dict) else None
    if not isinstance(hash_, str) or not 0 < len(hash_) <= 100:
        return 'value: expected {"request_hash": the hash of the request approved}'
    return Approval(key, hash_)
