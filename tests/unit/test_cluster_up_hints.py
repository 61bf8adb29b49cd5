"""`cluster up`'s failover hint names what a kill keeps in the mode that runs, and its
commands a program a new shell finds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from contextplane.cli.cluster_up import _failover, _program


def test_the_object_wal_keeps_every_record() -> None:
    assert "every acknowledged record kept" in _failover({"wal.url": "s3://b/wal?x=y"})


def test_a_local_wal_keeps_unuploaded_partitions_offline() -> None:
    hint = _failover({"wal.url": ""})
    assert "every acknowledged record kept" not in hint
    assert "stay offline until it is back" in hint


def test_the_hints_name_a_program_a_new_shell_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    """`scripts/cluster-up` runs `.venv/bin/contextplane`, not on a new shell's PATH: the
    hints then give its path; where `contextplane` on PATH is this one, its name."""
    here = Path(sys.executable).parent / "contextplane"
    monkeypatch.setenv("PATH", "/nonexistent")
    assert _program() == (str(here) if here.exists() else "contextplane")
    monkeypatch.setenv("PATH", str(here.parent))
    assert _program() == "contextplane"
