"""An approval as it arrives on `copilot.approvals.NAME`: key = the idempotency key it
approves, value = `{"request_hash": H}` (JSON), the hash of the request it approves, as
the ledger's `awaiting-approval` entry names it. `why_not_approved`: whether it releases
that entry.

Who approved is not in the record: it is the topic's. The cluster's ACLs let only
`User:NAME` write `copilot.approvals.NAME` (the operator grants it; the executor checks
nothing a producer typed), so a record there is that principal's approval. A Kafka broker
does not tell a consumer which principal produced a record; a topic per approver is how
its ACLs can say it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from contextplane.services.actions import ledger
from contextplane.services.actions.ledger import KEY_BYTES_MAX
from contextplane.services.actions.tools import Tool

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


def why_not_approved(
    approval: Approval,
    approver: str,
    held: dict[str, Any] | None,
    where: dict[str, Any],
    tools: dict[str, Tool],
    now_ms: int,
    key_retention_ms: int,
) -> str | None:
    """Why `approval` (at `where`, by `approver`) releases nothing of `held`, the ledger's
    entry of its key, or None when it releases (or resumes) the call."""
    horizon = ledger.approval_horizon_ms(now_ms, key_retention_ms)
    if held is None or (horizon is not None and ledger.written_before(held, horizon)):
        # Past the key retention for an approval: a margin before the sweep's horizon.
        return "no call under this key awaits approval (none, or past the key retention)"
    if held.get("request_hash") != approval.request_hash:
        return f"the call under this key is request {held.get('request_hash')}"
    tool = tools.get(str(held.get("tool")))
    if tool is None or approver not in tool.approvers:
        return f"{approver} is not an approver of tool {held.get('tool')!r}"
    state = held.get("state")
    if state == ledger.STARTED and held.get("approval") == where:
        # This approval released it and the call was interrupted: resumed.
        return None if isinstance(held.get("request_value"), dict) else "no request kept"
    if state != ledger.AWAITING_APPROVAL:
        return f"the call is {state}, not awaiting approval"
    if not isinstance(held.get("request_value"), dict):
        return "the awaiting entry does not hold its request: produce the request again"
    return None
