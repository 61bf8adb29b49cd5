"""How `contextplane evaluate` runs a probe, whatever the probe does: its result and
evidence, what it made undone on every outcome, and a probe stuck past its bound
reported failed while the run goes on."""

from __future__ import annotations

import threading

from contextplane.cli.probes import run_probe
from contextplane.cli.probes.base import (
    EVIDENCE_MAX,
    NotApplicable,
    ProbeContext,
    ProbeFailure,
    Settings,
)

SETTINGS = Settings({"bootstrap.servers": "127.0.0.1:9"}, timeout_s=5.0, cleanup_s=0.5)


def test_pass_fail_and_not_applicable_carry_their_evidence_and_undo_what_was_made() -> None:
    undone: list[str] = []

    def passing(ctx: ProbeContext) -> str:
        ctx.undo.append(lambda: undone.append("passing"))
        return "checked"

    def failing(ctx: ProbeContext) -> str:
        ctx.undo.append(lambda: undone.append("failing"))
        raise ProbeFailure("saw something else")

    def erring(ctx: ProbeContext) -> str:
        ctx.undo.append(lambda: undone.append("erring"))
        raise KeyError("absent")

    def not_applicable(ctx: ProbeContext) -> str:
        raise NotApplicable("not offered")

    results = {
        name: run_probe(name, probe, SETTINGS)
        for name, probe in (
            ("passing", passing),
            ("failing", failing),
            ("erring", erring),
            ("n-a", not_applicable),
        )
    }
    assert {name: (r.result, r.evidence) for name, r in results.items()} == {
        "passing": ("pass", "checked"),
        "failing": ("fail", "saw something else"),
        "erring": ("fail", "KeyError: 'absent'"),
        "n-a": ("n-a", "not offered"),
    }
    assert undone == ["passing", "failing", "erring"]


def test_a_failing_undo_step_leaves_the_others_and_the_result() -> None:
    undone: list[str] = []

    def probe(ctx: ProbeContext) -> str:
        ctx.undo.append(lambda: undone.append("first made, last undone"))
        ctx.undo.append(lambda: 1 / 0)
        return "checked"

    assert run_probe("probe", probe, SETTINGS).result == "pass"
    assert undone == ["first made, last undone"]


def test_a_probe_stuck_past_its_bound_is_a_failure_and_the_run_goes_on() -> None:
    release = threading.Event()
    settings = Settings({}, timeout_s=1.0, cleanup_s=0.1)
    try:
        stuck = run_probe("stuck", lambda ctx: str(release.wait()), settings)
    finally:
        release.set()
    assert (stuck.result, stuck.evidence) == ("fail", "no result within 1 s")


def test_a_probe_past_its_deadline_fails_at_its_next_wait() -> None:
    def waiting(ctx: ProbeContext) -> str:
        while True:
            ctx.pause(0.05)

    settings = Settings({}, timeout_s=1.0, cleanup_s=0.1)
    assert run_probe("waiting", waiting, settings).evidence == "no result within 1 s"


def test_evidence_is_one_line_of_bounded_length() -> None:
    def verbose(ctx: ProbeContext) -> str:
        raise ProbeFailure("line one\nline two " + "x" * 1000)

    evidence = run_probe("verbose", verbose, SETTINGS).evidence
    assert evidence.startswith("line one line two xxx") and evidence.endswith("...")
    assert len(evidence) == EVIDENCE_MAX
