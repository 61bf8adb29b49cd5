"""The records the executor writes, built from what it read (RFC 0006 §2): a call's
ledger entry in each state, the policy evaluation event, the entry of an approval that
approves nothing. Pure: the executor passes its transactional id and the time."""

from __future__ import annotations

from typing import Any

from contextplane.services.actions import endpoint, ledger
from contextplane.services.actions.approvals import Approval
from contextplane.services.actions.policy import Evaluation
from contextplane.services.actions.requests import Request


def call_entry(
    request: Request, state: str, where: dict[str, Any], executor: str, at_ms: int
) -> dict[str, Any]:
    return {
        "state": state,
        "key": request.key,
        "tool": request.tool.name,
        "decision_id": request.decision_id,
        "request_hash": request.hash,
        "request": where,
        "executor": executor,
        "at_ms": at_ms,
    }


def note_approval(
    entry: dict[str, Any],
    request: Request,
    approver: str | None,
    approval: dict[str, Any] | None,
) -> None:
    if approver is not None:
        entry["approved_by"] = approver
        entry["approval"] = approval
    elif request.approved_by is not None and request.tool.approvers:
        entry["approved_by_ignored"] = (
            f"{request.tool.name} is approved only by its approvers, on their"
            " copilot.approvals.NAME topics; a request's approved_by approves nothing"
        )
    elif request.approved_by is not None:
        entry["approved_by"] = request.approved_by  # typed by the requester


def evaluation_event(
    request: Request,
    evaluation: Evaluation,
    context_read: dict[str, Any] | None,
    executor: str,
    at_ms: int,
) -> dict[str, Any]:
    return {
        "key": request.key,
        "decision_id": request.decision_id,
        "tool": request.tool.name,
        "policy_version": request.tool.policy_version,
        "inputs": evaluation.request,
        "context_read": context_read,
        "decision": evaluation.decision,
        "reasons": list(evaluation.reasons),
        "errors": list(evaluation.errors),
        "executor": executor,
        "at_ms": at_ms,
    }


def outcome_entry(
    started: dict[str, Any],
    outcome: endpoint.Answer | endpoint.NotSent | endpoint.Interrupted,
    idempotent: bool,
    at_ms: int,
) -> dict[str, Any]:
    """The `started` entry settled by the endpoint's outcome."""
    entry = {**started, "at_ms": at_ms}
    entry.pop("request_value", None)  # only a call still to be made needs its request
    if isinstance(outcome, endpoint.Answer):
        entry["state"] = ledger.DONE
        entry["result"] = {
            "status": outcome.status,
            "body": outcome.body,
            "truncated": outcome.truncated,
        }
    elif isinstance(outcome, endpoint.NotSent) or idempotent:
        # Not sent, or sent with a key the endpoint deduplicates by: trying again is safe.
        entry["state"] = ledger.ERROR
        entry["reason"] = outcome.reason
    else:
        entry["state"] = ledger.UNKNOWN
        entry["reason"] = outcome.reason
    return entry


def interrupted_entry(held: dict[str, Any], where: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """A call to an endpoint that takes no idempotency key, interrupted mid call."""
    entry = {**held, "state": ledger.UNKNOWN, "request": where, "at_ms": at_ms}
    entry.pop("request_value", None)  # settled: nothing will read the request again
    entry["reason"] = (
        "interrupted mid call; the endpoint does not honour Idempotency-Key, so whether"
        " the effect happened is for a human to find out"
    )
    return entry


def refused_approval_entry(
    approval: Approval,
    approver: str,
    where: dict[str, Any],
    why: str,
    executor: str,
    at_ms: int,
) -> dict[str, Any]:
    return {
        "state": ledger.REFUSED,
        "key": approval.key,
        "approver": approver,
        "request_hash": approval.request_hash,
        "approval": where,
        "reason": why,
        "executor": executor,
        "at_ms": at_ms,
    }
