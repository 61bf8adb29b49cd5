"""The copilot SDK (RFC 0006 §5): one import for what a copilot uses, each part in the
service package it belongs to.

    from contextplane.copilot import ActionsClient, Context, Decisions

    context = Context("http://127.0.0.1:8090")
    tools = ActionsClient("127.0.0.1:9092", "http://127.0.0.1:8091")
    decisions = Decisions("127.0.0.1:9092", source="support-copilot")
    with decisions.decision(correlation_id="conversation-7", input=request) as decision:
        account = context.get("account", "a1")          # recorded on the decision
        tools.call("refund", {"account_id": "a1", "amount": 40}, "refund-a1-1")  # too
        decision.write_back("support.replies", 0, 17)   # a record the copilot produced
        decision.outcome = "refunded 40"
    # produced to copilot.decisions (acks=all), also when the block raised

`contextplane trace DECISION_ID` follows what the decision recorded back; `contextplane
replay` runs recorded decisions again through the block's body as a function
`decide(input, context, tools, decision)`, without side effects (services/replay/).
"""

from contextplane.services.actions.client import ActionsClient, ActionsClientError, Outcome
from contextplane.services.context.client import ContextClient as Context
from contextplane.services.context.client import ContextClientError, EntityContext
from contextplane.services.trace.event import DecisionTooLargeError
from contextplane.services.trace.recorder import Decision, DecisionError, Decisions

__all__ = [
    "ActionsClient",
    "ActionsClientError",
    "Context",
    "ContextClientError",
    "Decision",
    "DecisionError",
    "DecisionTooLargeError",
    "Decisions",
    "EntityContext",
    "Outcome",
]
