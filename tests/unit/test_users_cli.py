"""`contextplane users add|remove|list` against a data directory: the password comes from
a prompt or stdin (never argv), only salted hashes are stored."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from contextplane.cli.main import main


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_add_list_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path)
    _stdin(monkeypatch, "s3cret-pw\n")
    assert main(["users", "add", "alice", "--data-dir", data, "--password-stdin"]) == 0
    _stdin(monkeypatch, "other\n")
    assert (
        main(
            [
                "users",
                "add",
                "bob",
                "--data-dir",
                data,
                "--password-stdin",
                "--mechanism",
                "SCRAM-SHA-256",
                "--iterations",
                "8192",
            ]
        )  # fmt: skip
        == 0
    )
    capsys.readouterr()
    assert main(["users", "list", "--data-dir", data]) == 0
    listed = capsys.readouterr().out
    assert "User:alice  SCRAM-SHA-256 (iterations 4096), SCRAM-SHA-512 (iterations 4096)" in listed
    assert "User:bob  SCRAM-SHA-256 (iterations 8192)" in listed
    with sqlite3.connect(tmp_path / "metadata.db") as db:
        stored = b"".join(
            bytes(v)
            for row in db.execute("SELECT * FROM scram_credentials")
            for v in row
            if isinstance(v, bytes)
        )
    assert b"s3cret-pw" not in stored
    assert main(["users", "remove", "alice", "--data-dir", data]) == 0
    assert main(["users", "remove", "alice", "--data-dir", data]) == 1
    capsys.readouterr()
    main(["users", "list", "--data-dir", data])
    assert "alice" not in capsys.readouterr().out


def test_the_prompt_asks_twice_and_must_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(["one", "two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert main(["users", "add", "alice", "--data-dir", str(tmp_path)]) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["users", "add", "alice", "--password", "secret"],  # no password on argv
        ["users", "add", "alice", "--iterations", "100", "--password-stdin"],
        ["users", "add", "", "--password-stdin"],
    ],
)
def test_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    _stdin(monkeypatch, "pw\n")
    try:
        code = main([*argv, "--data-dir", str(tmp_path)])
    except SystemExit as exit_:  # argparse refuses an unknown option
        code = int(exit_.code or 0)
    assert code == 2


def test_a_mistyped_data_dir_is_named_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "dta"
    assert main(["users", "list", "--data-dir", str(missing)]) == 2
    assert main(["users", "remove", "alice", "--data-dir", str(missing)]) == 2
    assert f"no data directory at {missing}" in capsys.readouterr().err
    assert not missing.exists()
    # `add` bootstraps a new directory, and says so.
    _stdin(monkeypatch, "pw\n")
    assert main(["users", "add", "alice", "--data-dir", str(missing), "--password-stdin"]) == 0
    assert f"set in a new data directory {missing}" in capsys.readouterr().out


def test_control_characters_in_names_are_refused_and_never_printed_raw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path)
    _stdin(monkeypatch, "pw\n")
    assert main(["users", "add", "eve\nUser:root", "--data-dir", data, "--password-stdin"]) == 2
    assert "has a control character" in capsys.readouterr().err


def test_no_password_at_end_of_input_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def eof(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr("getpass.getpass", eof)
    assert main(["users", "add", "alice", "--data-dir", str(tmp_path)]) == 2
    assert "contextplane: no password given" in capsys.readouterr().err
