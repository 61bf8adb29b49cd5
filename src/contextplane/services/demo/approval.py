"""The demo's approval (RFC 0006, approvals): a refund above the auto-approved threshold
waits in the ledger (`awaiting-approval`); the approver, logged in as its own principal,
looks the call up in the executor's ledger and approves the request hash the entry shows
(`ActionsClient.approve`: a record on its approvals topic); the executor calls the tool,
and the ledger entry, so the decision's trace, names who approved it."""

from __future__ import annotations

from typing import Any

from contextplane.services.actions import ledger
from contextplane.services.actions.client import ActionsClient, ActionsClientError, Outcome
from contextplane.services.demo.errors import StepError
from contextplane.services.trace.link import Link


def approve(
    bootstrap: str, executor_url: str, login: dict[str, Any], approver: str, key: str, wait_s: float
) -> Outcome:
    """The call under `key` approved as `approver` (logged in with `login`) and done;
    StepError naming what did not happen."""
    client = ActionsClient(bootstrap, executor_url, client_config=login)
    try:
        found = (client.entry(key) or {}).get("entry")
        entry: dict[str, Any] = found if isinstance(found, dict) else {}
        request_hash = entry.get("request_hash")
        if entry.get("state") != ledger.AWAITING_APPROVAL or not isinstance(request_hash, str):
            raise StepError(f"call {key!r} is {entry.get('state') or 'not in the ledger'}")
        outcome = client.approve(approver, key, request_hash, wait_s)
    except (ActionsClientError, OSError) as exc:
        raise StepError(f"approving {key!r}: {exc}") from None
    finally:
        client.close()
    if outcome.state != ledger.DONE or outcome.entry.get("approved_by") != approver:
        why = outcome.entry.get("reason") or outcome.entry.get("approved_by")
        raise StepError(f"approval of {key!r} by {approver}: {outcome.state} ({why})")
    return outcome


def approved_by(tree: Link, key: str) -> Any:
    """Who the trace's ledger entry of the call under `key` says approved it (None: no
    one, or no such call)."""
    for call in tree.children:
        if call.kind == "tool-call" and call.detail.get("key") == key:
            for entry in call.children:
                if entry.kind == "ledger-entry" and entry.missing is None:
                    return entry.detail.get("approved_by")
    return None
