"""The suites' work directories stay bounded: only the newest few of each kind are kept."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from conformance.suites import WORK_ROOT_NAME, work_dir


def test_only_the_newest_work_dirs_of_a_kind_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    made = []
    for age in range(6):
        path = work_dir("rdk-", keep=3)
        os.utime(path, (1_000_000 + age, 1_000_000 + age))  # strictly increasing ages
        made.append(path)
    other = work_dir("rdk_pki-", keep=3)
    root = tmp_path / WORK_ROOT_NAME
    assert sorted(root.glob("rdk-*")) == sorted(made[-3:])
    assert other.is_dir()  # another kind is not pruned by this one's prefix
