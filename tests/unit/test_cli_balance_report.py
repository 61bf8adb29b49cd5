"""What `cluster rebalance` and `cluster drain` print under their table: how many moves,
how long a drain took with --wait, and that --max-moves cut the plan short."""

from __future__ import annotations

import argparse

import pytest

from contextplane.cli.cluster_balance import _report
from contextplane.cluster.balance_plan import Move


def _moves(count: int) -> list[Move]:
    return [Move(("t", n), 1, 2, 0.0) for n in range(count)]


def test_a_plan_cut_by_max_moves_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(output="table", max_moves=2)
    _report(args, _moves(2), "planned")
    assert capsys.readouterr().out.splitlines()[-1] == (
        "2 moves planned (as many as --max-moves 2: run it again for any more)"
    )
    _report(args, _moves(1), "planned")
    assert capsys.readouterr().out.splitlines()[-1] == "1 move planned"


def test_a_drain_waited_for_says_how_long_it_took(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(output="table")
    _report(args, _moves(3), "done", node=1, elapsed_ms=1_234)
    assert capsys.readouterr().out.splitlines()[-1] == "3 moves done in 1.2 s"
    _report(args, [], "started", node=1, elapsed_ms=None)
    assert capsys.readouterr().out == "0 moves started\n"
