"""Pure: how a replayed decision differs from its original. Tool calls are compared in
order by key, tool and arguments (a state is what the ledger answered, not the copilot's
choice: shown, not compared), and a call whose recorded policy evaluation the replay's
tools file decides otherwise (`policy`) differs; outcomes as text. A call recorded before
decisions held arguments, whose request record could not be read back either, is compared
by key and tool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_ABSENT = object()


def call_summary(call: dict[str, Any]) -> dict[str, Any]:
    names = ("key", "tool", "arguments", "state", "error", "policy")
    return {name: call[name] for name in names if name in call}


def _same_call(original: dict[str, Any], replayed: dict[str, Any]) -> bool:
    if (original.get("key"), original.get("tool")) != (replayed.get("key"), replayed.get("tool")):
        return False
    if "policy" in replayed:  # decided otherwise under the replay's tools file, or not at all
        return False
    arguments = original.get("arguments", _ABSENT)
    return arguments is _ABSENT or arguments == replayed.get("arguments")


@dataclass(frozen=True)
class DecisionDiff:
    decision_id: str
    original: dict[str, Any]  # where: topic, partition, offset
    replay: dict[str, Any] | None  # where the replayed decision landed
    original_calls: list[dict[str, Any]]
    replay_calls: list[dict[str, Any]]
    original_outcome: str | None
    replay_outcome: str | None
    calls_differ: bool
    outcome_differs: bool
    note: str | None = None  # why the decision could not be replayed, when it could not

    @property
    def differs(self) -> bool:
        return self.calls_differ or self.outcome_differs or self.note is not None

    def document(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "original": self.original,
            "replay": self.replay,
            "differs": self.differs,
            "tool_calls": {
                "differ": self.calls_differ,
                "original": self.original_calls,
                "replay": self.replay_calls,
            },
            "outcome": {
                "differs": self.outcome_differs,
                "original": self.original_outcome,
                "replay": self.replay_outcome,
            },
            "note": self.note,
        }


def compare(
    decision_id: str,
    original_at: dict[str, Any],
    original: dict[str, Any],
    replay_at: dict[str, Any] | None,
    replayed: dict[str, Any],
) -> DecisionDiff:
    """`original` and `replayed` are decision documents (event.py's value)."""
    before = [c for c in original.get("tool_calls") or [] if isinstance(c, dict)]
    after = [c for c in replayed.get("tool_calls") or [] if isinstance(c, dict)]
    calls_differ = len(before) != len(after) or not all(
        _same_call(o, r) for o, r in zip(before, after, strict=True)
    )
    return DecisionDiff(
        decision_id=decision_id,
        original=original_at,
        replay=replay_at,
        original_calls=[call_summary(c) for c in before],
        replay_calls=[call_summary(c) for c in after],
        original_outcome=original.get("outcome"),
        replay_outcome=replayed.get("outcome"),
        calls_differ=calls_differ,
        outcome_differs=original.get("outcome") != replayed.get("outcome"),
    )


def not_replayed(
    decision_id: str, original_at: dict[str, Any], original: dict[str, Any] | None, why: str
) -> DecisionDiff:
    """A decision the replay could not run (its record unreadable, its replay not
    produced): counted as differing, with why."""
    calls = [c for c in (original or {}).get("tool_calls") or [] if isinstance(c, dict)]
    return DecisionDiff(
        decision_id=decision_id,
        original=original_at,
        replay=None,
        original_calls=[call_summary(c) for c in calls],
        replay_calls=[],
        original_outcome=(original or {}).get("outcome"),
        replay_outcome=None,
        calls_differ=False,
        outcome_differs=False,
        note=why,
    )
