"""The replay's comparison of a replayed decision with its original (services/replay/
diff.py): tool calls in order by key, tool and arguments; outcomes as text; states shown
but not compared."""

from __future__ import annotations

from typing import Any

from contextplane.services.replay import diff

AT = {"topic": "copilot.decisions", "partition": 0, "offset": 7}
REPLAY_AT = {"topic": "copilot.replay.r", "partition": 0, "offset": 0}
REFUND = {"key": "k1", "tool": "refund", "arguments": {"amount": 40}, "state": "done"}


def decision(calls: list[dict[str, Any]], outcome: str = "ok") -> dict[str, Any]:
    return {"tool_calls": calls, "outcome": outcome}


def compare(original: dict[str, Any], replayed: dict[str, Any]) -> diff.DecisionDiff:
    return diff.compare("d1", AT, original, REPLAY_AT, replayed)


def test_the_same_calls_and_outcome_do_not_differ_whatever_the_states() -> None:
    replayed = {**REFUND, "state": "not-recorded"}
    found = compare(decision([REFUND], "refunded"), decision([replayed], "refunded"))
    assert not found.differs
    assert found.replay_calls == [replayed]
    assert found.document()["differs"] is False


def test_a_different_key_tool_argument_count_or_order_differs() -> None:
    other = {**REFUND, "key": "k2"}
    for replayed in (
        [other],
        [{**REFUND, "tool": "escalate"}],
        [{**REFUND, "arguments": {"amount": 41}}],
        [],
        [REFUND, REFUND],
    ):
        found = compare(decision([REFUND]), decision(replayed))
        assert found.calls_differ and found.differs and not found.outcome_differs, replayed
    assert compare(decision([REFUND, other]), decision([other, REFUND])).calls_differ


def test_an_outcome_alone_differs() -> None:
    found = compare(decision([REFUND], "refunded 40"), decision([REFUND], "declined"))
    assert found.outcome_differs and not found.calls_differ and found.differs
    assert found.document()["outcome"] == {
        "differs": True,
        "original": "refunded 40",
        "replay": "declined",
    }


def test_a_call_recorded_without_arguments_is_compared_by_key_and_tool() -> None:
    old = {"key": "k1", "tool": "refund", "state": "done"}
    assert not compare(decision([old]), decision([REFUND])).differs
    assert compare(decision([old]), decision([{**REFUND, "key": "k9"}])).differs


def test_a_decision_not_replayed_differs_with_why() -> None:
    found = diff.not_replayed("d1", AT, decision([REFUND], "x"), "not replayed: too large")
    assert found.differs and found.replay is None
    assert found.original_calls == [REFUND] and found.original_outcome == "x"
