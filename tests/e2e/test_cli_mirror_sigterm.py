"""`contextplane mirror` stopped by SIGTERM (what systemd and Kubernetes send) ends as
Ctrl-C does: progress saved, the summary printed, exit status 130; in both modes,
between two contextplane brokers."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contextplane.cli import mirror_state
from tests.support.inprocess import InProcessBroker
from tests.support.mirror import create, log_end, produce, start_mirror
from tests.support.wait import wait_until


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[InProcessBroker, InProcessBroker]]:
    source = InProcessBroker(tmp_path / "source").start()
    target = InProcessBroker(tmp_path / "target").start()
    yield source, target
    target.stop()
    source.stop()


def terminated_mirror(
    brokers: tuple[InProcessBroker, InProcessBroker], *extra: str, copied_past: int
) -> Any:
    """200 records mirrored, then SIGTERM once the target's log end passes `copied_past`:
    the summary printed (the exit status asserted: Ctrl-C's)."""
    source, target = brokers
    create(source.bootstrap, "clicks", 1)
    create(target.bootstrap, "clicks", 1)
    produce(source.bootstrap, "clicks", 0, 200)
    running = start_mirror(source.bootstrap, target.bootstrap, *extra)
    try:
        wait_until(lambda: log_end(target.bootstrap, "clicks") > copied_past, 60, "the mirror")
        running.send_signal(signal.SIGTERM)
        out, err = running.communicate(timeout=60)
    finally:
        running.kill()
    assert running.returncode == 130, err
    return json.loads(out)


def test_sigterm_saves_progress_and_prints_the_summary(
    brokers: tuple[InProcessBroker, InProcessBroker],
) -> None:
    summary = terminated_mirror(brokers, copied_past=199)
    assert summary["partitions"] == [
        {"topic": "clicks", "partition": 0, "source_end": 200, "mirrored_end": 200, "lag": 0}
    ]
    target = brokers[1].bootstrap
    assert mirror_state.read({"bootstrap.servers": target}) == {("clicks", 0): 200}


def test_sigterm_ends_a_copy_mirror_with_its_summary(
    brokers: tuple[InProcessBroker, InProcessBroker],
) -> None:
    # Copied in transactions: the log end passes 200 with the commit markers.
    summary = terminated_mirror(brokers, "--mode", "copy", copied_past=200)
    assert summary["mode"] == "copy"
    assert [(p["topic"], p["partition"], p["source_end"]) for p in summary["partitions"]] == [
        ("clicks", 0, 200)
    ]
