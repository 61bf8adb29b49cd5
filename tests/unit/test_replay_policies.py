"""A replay's changed tool policies (`contextplane replay --tools`): a recorded Cedar
request decided again, the state a changed decision answers, and what is noted when the
tool is not in the file or its evaluation was not found."""

from __future__ import annotations

from typing import Any

from contextplane.services.actions.client import Outcome
from contextplane.services.actions.policy import evaluate
from contextplane.services.actions.tools import parse_tools
from contextplane.services.replay.policies import ALLOWED_NOT_RECORDED, ChangedPolicies

DONE = Outcome("done", {"status": 200}, {"state": "done"})


def tools(policy: str, approval: str | None = None) -> Any:
    text = '[tools.refund]\nendpoint = "http://127.0.0.1:9/"\nidempotent = true\n'
    text += f"policy = '{policy}'\n"
    if approval is not None:
        text += f"approval_policy = '{approval}'\n"
    return parse_tools(text)


def recorded(amount: int, policy: str) -> dict[str, Any]:
    """An evaluation event as the executor writes it: the Cedar request and its decision."""
    evaluation = evaluate(
        policy,
        None,
        tool="refund",
        caller="copilot",
        arguments={"amount": amount},
        entity=None,
        approved=False,
    )
    return {"inputs": evaluation.request, "decision": evaluation.decision}


ALL = "permit(principal, action, resource);"
UP_TO_30 = "permit(principal, action, resource) when { context.arguments.amount <= 30 };"


def test_a_call_the_changed_policy_decides_otherwise() -> None:
    policies = ChangedPolicies(tools(UP_TO_30), {"k": recorded(40, ALL)})
    outcome, note = policies.apply("refund", "k", DONE)
    assert outcome.state == "denied" and outcome.result is None
    assert note["recorded"] == "allow" and note["replayed"] == "deny"
    held = ChangedPolicies(tools(UP_TO_30, ALL), {"k": recorded(40, ALL)})
    assert held.apply("refund", "k", DONE)[0].state == "awaiting-approval"
    loosened = ChangedPolicies(tools(ALL), {"k": recorded(40, UP_TO_30)})
    outcome, note = loosened.apply("refund", "k", Outcome("denied", None, {}))
    assert outcome.state == ALLOWED_NOT_RECORDED and note["replayed"] == "allow"


def test_a_call_decided_as_recorded_keeps_its_outcome() -> None:
    policies = ChangedPolicies(tools(UP_TO_30), {"k": recorded(20, ALL)})
    assert policies.apply("refund", "k", DONE) == (DONE, None)


def test_a_tool_not_in_the_file_or_an_evaluation_not_found() -> None:
    policies = ChangedPolicies(tools(UP_TO_30), {"k": {}})
    assert policies.apply("escalate", "k", DONE) == (DONE, None)
    outcome, note = policies.apply("refund", "k", DONE)
    assert outcome == DONE and note == {"error": "no recorded policy evaluation of the key"}
