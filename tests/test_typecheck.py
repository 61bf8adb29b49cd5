"""The source tree type-checks under the settings in pyproject.toml's [tool.mypy].

mypy is also what compiles protocol/record_walk.py (setup.py), so a type error there fails
the build; this keeps the rest of the tree to the same standard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_source_tree_type_checks() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"mypy found type errors:\n{result.stdout}{result.stderr}"
