"""The demo's rule-based copilot (no model): one support ticket decided from the account's
context, its tool calls made through the ledger. Called live inside the decision block
and again by the replay as `decide(input, context, tools, decision)`; it produces
nothing itself (the reply is written back by the caller, live only), so a replay of it
has no side effect.

The rules: an account with an open incident is escalated (a refund waits for the
incident); a refund request is asked of the `refund` tool, whose policy decides (done,
awaiting-approval or denied); anything else is answered. Every ticket is updated."""

from __future__ import annotations

from typing import Any

REFUND_DONE = "done"


def fence_of(input: dict[str, Any]) -> dict[tuple[str, int], int] | None:
    """The read fence the input carries: [[topic, partition, offset], ...]."""
    raw = input.get("fence")
    if not raw:
        return None
    return {(str(t), int(p)): int(o) for t, p, o in raw}


def open_incidents(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The account's incidents whose newest record says open (the list is newest first)."""
    newest: dict[str, dict[str, Any]] = {}
    for incident in state.get("incidents") or []:
        if isinstance(incident, dict):
            newest.setdefault(str(incident.get("incident_id")), incident)
    return [i for i in newest.values() if i.get("status") == "open"]


def decide(input: dict[str, Any], context: Any, tools: Any, decision: Any) -> str:
    """The reply to the ticket; `decision.outcome` says what was decided."""
    ticket, run = input["ticket"], input["run"]
    ticket_id, account_id = ticket["ticket_id"], ticket["account_id"]

    def key(tool: str) -> str:
        return f"{ticket_id}-{tool}-{run}"

    account = context.get("account", account_id, min_offsets=fence_of(input))
    state = account.state or {}
    tier = (state.get("profile") or {}).get("tier", "unknown")
    incidents = open_incidents(state)
    amount = ticket.get("amount")
    if not account.found:
        status, reply = "needs-info", "We could not find your account; please reply with its id."
        decision.outcome = "account not found"
    elif incidents:
        incident = incidents[0]
        support = (state.get("entitlement") or {}).get("support", "standard")
        arguments = {
            "ticket_id": ticket_id,
            "account_id": account_id,
            "incident_id": incident.get("incident_id"),
            "priority": "high" if support == "priority" else "normal",
        }
        escalated = tools.call("escalate", arguments, key("escalate"))
        status = "escalated"
        reply = f"This is linked to incident {incident.get('incident_id')}; an engineer has it."
        decision.outcome = f"escalate to {incident.get('incident_id')}: {escalated.state}"
    elif ticket.get("kind") == "refund" and isinstance(amount, int | float):
        arguments = {"account_id": account_id, "amount": amount, "ticket_id": ticket_id}
        refund = tools.call("refund", arguments, key("refund"))
        status, reply = {
            REFUND_DONE: ("resolved", f"We refunded {amount}."),
            "awaiting-approval": ("pending-approval", f"Your refund of {amount} awaits approval."),
        }.get(refund.state, ("declined", f"We cannot refund {amount}; an agent will call you."))
        decision.outcome = f"refund {amount} ({tier}): {refund.state}"
    else:
        status, reply = "answered", "See Billing > Invoices > Export."
        decision.outcome = "answered"
    updated = tools.call(
        "update_ticket", {"ticket_id": ticket_id, "status": status}, key("update_ticket")
    )
    decision.outcome += f"; ticket {status}: {updated.state}"
    return reply
