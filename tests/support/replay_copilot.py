"""Copilot functions for the replay tests, as a copilot calls them inside its decision
block (`decide(input, context, tools, decision)`) and `contextplane replay --function
tests.support.replay_copilot:NAME` calls them again: refund a gold account's request up
to a limit, else decline."""

from __future__ import annotations

from typing import Any

from contextplane.copilot import ContextClientError


def decide(request: dict[str, Any], context: Any, tools: Any, decision: Any) -> None:
    _decide(request, context, tools, decision, limit=100)


def decide_strictly(request: dict[str, Any], context: Any, tools: Any, decision: Any) -> None:
    """A changed function: the refund limit lowered from 100 to 30."""
    _decide(request, context, tools, decision, limit=30)


def decide_reading_more(request: dict[str, Any], context: Any, tools: Any, decision: Any) -> None:
    """Reads account a2 (whatever the original read of the view) and a view the
    original never read."""
    other = context.get("account", "a2")
    tier = ((other.state or {}).get("profile") or {}).get("tier")
    try:
        context.get("tickets-by-agent", "agent-1")
        refused = "answered"
    except ContextClientError as exc:
        refused = exc.kind
    decision.outcome = f"a2 tier {tier}; tickets-by-agent: {refused}"


def _decide(
    request: dict[str, Any], context: Any, tools: Any, decision: Any, *, limit: int
) -> None:
    account = context.get("account", request["account_id"])
    tier = ((account.state or {}).get("profile") or {}).get("tier")
    amount = request["amount"]
    if tier != "gold" or amount > limit:
        decision.outcome = f"declined: tier {tier}, amount {amount}"
        return
    arguments = {"account_id": request["account_id"], "amount": amount}
    outcome = tools.call(request.get("tool", "refund"), arguments, request["key"])
    decision.outcome = f"refund {amount}: {outcome.state}"
