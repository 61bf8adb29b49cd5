"""A replay under changed tool policies (`contextplane replay --tools FILE`): each replayed
call's recorded policy evaluation (its Cedar request, as the executor wrote it to
`copilot.policy-evaluations`: principal, action, resource and the context it read) is
decided again with the file's policies for that tool. Nothing is called: a call the new
policies would deny, or hold for approval, answers that state; one they would allow that
the recorded policies did not answers `allowed-not-recorded` (there is no result to give).
The call is noted with the recorded and replayed decisions, so the diff lists it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contextplane.services.actions import ledger
from contextplane.services.actions.client import Outcome
from contextplane.services.actions.policy import ALLOW, AWAITING_APPROVAL, DENY, decide
from contextplane.services.actions.tools import Tool
from contextplane.services.trace import event

ALLOWED_NOT_RECORDED = "allowed-not-recorded"
_STATES = {DENY: ledger.DENIED, AWAITING_APPROVAL: ledger.AWAITING_APPROVAL}


@dataclass
class ChangedPolicies:
    tools: dict[str, Tool]
    # idempotency key -> its first recorded evaluation (the call's own; approvals follow)
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def apply(self, tool: str, key: str, outcome: Outcome) -> tuple[Outcome, Any]:
        """The outcome under the changed policies, and what to note on the call (None:
        the tool's policies are not in the file, or they decide as recorded)."""
        changed = self.tools.get(tool)
        if changed is None:
            return outcome, None
        recorded = self.evaluations.get(key)
        inputs = recorded.get("inputs") if recorded is not None else None
        if not isinstance(inputs, dict):
            return outcome, {"error": "no recorded policy evaluation of the key"}
        try:
            now = decide(inputs, changed.policy, changed.approval_policy).decision
        except (TypeError, ValueError) as exc:  # a recorded request Cedar cannot take
            return outcome, {"error": f"the recorded request: {exc}"}
        before = recorded.get("decision") if recorded is not None else None
        if now == before:
            return outcome, None
        note = {"recorded": before, "replayed": now, "policy_version": changed.policy_version}
        state = ALLOWED_NOT_RECORDED if now == ALLOW else _STATES[now]
        return Outcome(state, None, {}), note

    def keep(self, message: Any) -> None:
        """A record of `copilot.policy-evaluations`, kept when it is the first of a wanted
        key (`evaluations` holds the wanted keys, mapped to {} until found)."""
        key = message.key()
        name = key.decode(errors="replace") if key is not None else None
        if name is None or self.evaluations.get(name) != {}:
            return
        try:
            value = event.loads(message.value() or b"")
        except ValueError:
            return
        if isinstance(value, dict):
            self.evaluations[name] = value


def wanted_keys(documents: list[dict[str, Any]]) -> set[str]:
    """The idempotency keys of the tool calls recorded in these decisions."""
    keys = set()
    for document in documents:
        for call in document.get("tool_calls") or []:
            if isinstance(call, dict) and isinstance(call.get("key"), str):
                keys.add(call["key"])
    return keys
