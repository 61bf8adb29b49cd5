"""A tool's Cedar policies evaluated for one call (cedarpy: the cedar-policy crate).

The request: principal `Copilot::"<caller>"`, action `Action::"call"`, resource
`Tool::"<tool>"`, context `{arguments, entity, entity_found, approved, approver?}`
(`entity`: the state the context service answered, `{}` when the tool reads none;
`approver`: the principal whose approval the broker's ACLs attest, absent otherwise).
The tool's `policy` permits a call outright; where it does not, a permit by its
`approval_policy` means the call waits for a human approval (`awaiting-approval`); else it
is denied. Cedar denies by default and on any evaluation error, and so does this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cedarpy

ALLOW = "allow"
DENY = "deny"
AWAITING_APPROVAL = "awaiting-approval"


class PolicyError(ValueError):
    """A policy text Cedar does not parse."""


@dataclass(frozen=True)
class Evaluation:
    decision: str  # ALLOW, DENY or AWAITING_APPROVAL
    reasons: tuple[str, ...]  # the ids of the policies that decided (Cedar's @id or policyN)
    errors: tuple[str, ...]
    request: dict[str, Any]  # what Cedar was asked: the inputs of the evaluation event


def check_policy(text: str) -> None:
    try:
        cedarpy.format_policies(text)
    except ValueError as exc:
        raise PolicyError(f"not a Cedar policy set ({exc})") from None


def evaluate(
    policy: str,
    approval_policy: str | None,
    *,
    tool: str,
    caller: str,
    arguments: dict[str, Any],
    entity: dict[str, Any] | None,
    approved: bool,
    approver: str | None = None,
) -> Evaluation:
    context: dict[str, Any] = {
        "arguments": cedar_value(arguments),
        "entity": cedar_value(entity or {}),
        "entity_found": entity is not None,
        "approved": approved,
    }
    if approver is not None:
        context["approver"] = approver
    request = {
        "principal": f"Copilot::{_quoted(caller)}",
        "action": 'Action::"call"',
        "resource": f"Tool::{_quoted(tool)}",
        "context": context,
    }
    return decide(request, policy, approval_policy)


def decide(request: dict[str, Any], policy: str, approval_policy: str | None) -> Evaluation:
    """A Cedar request (principal, action, resource, context) against a tool's policies:
    the executor's evaluation, and a replay's of a recorded request under other policies."""
    first = cedarpy.is_authorized(request, policy, [])
    if first.allowed:
        return _evaluation(ALLOW, first, request)
    if approval_policy is not None and not first.diagnostics.errors:
        second = cedarpy.is_authorized(request, approval_policy, [])
        if second.allowed:
            return _evaluation(AWAITING_APPROVAL, second, request)
    return _evaluation(DENY, first, request)


def _evaluation(decision: str, result: Any, request: dict[str, Any]) -> Evaluation:
    return Evaluation(
        decision, tuple(result.diagnostics.reasons), tuple(result.diagnostics.errors), request
    )


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cedar_value(value: Any) -> Any:
    """JSON as Cedar takes it: no nulls (absent attributes instead, which `has` tests),
    fractions as Cedar's `decimal` (four places; a number Cedar cannot hold becomes its
    text)."""
    if isinstance(value, dict):
        return {k: cedar_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [cedar_value(v) for v in value if v is not None]
    if isinstance(value, float):
        if math.isfinite(value) and abs(value) < 922_337_203_685_477 and value == round(value, 4):
            return {"__extn": {"fn": "decimal", "arg": f"{value:.4f}"}}
        return repr(value)
    return value
