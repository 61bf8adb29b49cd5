"""`contextplane context` refuses a bad views file before touching any cluster: exit 2 and
one line naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextplane.cli.main import main


def test_a_bad_views_file_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    views = tmp_path / "views.toml"
    views.write_text('[[views.account.sources]]\ntopic = "crm.accounts"\nmerge = "sum"\n')
    # Port 9 (discard): nothing is asked of it, the file is refused first.
    status = main(["context", "--bootstrap", "127.0.0.1:9", "--views", str(views)])
    assert status == 2
    error = capsys.readouterr().err
    assert error.startswith(f"contextplane context: {views}: views.account.sources[0].merge:")
    assert "expected one of latest, list, got 'sum'" in error


def test_a_missing_views_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["context", "--bootstrap", "127.0.0.1:9", "--views", str(tmp_path / "no")])
    assert status == 2
    assert "No such file" in capsys.readouterr().err
