"""`cluster up`'s report of a broker that exits: the signal that killed it by name, or
by number for one Python has no name for (a real-time signal), without the watch that
supervises every broker failing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from contextplane.cli.cluster_up import Restarts


@pytest.mark.parametrize(
    ("status", "said"), [(-9, "killed by SIGKILL"), (-40, "killed by signal 40"), (3, "exited (3)")]
)
def test_an_exit_is_reported_by_signal_or_status(
    capsys: pytest.CaptureFixture[str], status: int, said: str
) -> None:
    broker = SimpleNamespace(node_id=1, pid=42, exit_reported=False, exited=lambda: status)
    Restarts(None).watch(broker)  # type: ignore[arg-type]
    assert capsys.readouterr().out == f"broker 1 (pid 42) {said}\n"
