"""`contextplane completion`: the bash script, sourced in a real bash, completes commands,
subcommands, options and choices from the same parser the commands use."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Completes the words given after `try`, one completion per line, then `---`.
_DRIVER = """
source "$1"
try() {
    COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
    _shtab_contextplane "${COMP_WORDS[0]}" "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
    printf '%s\\n' "${COMPREPLY[@]}"; echo ---
}
try contextplane au
try contextplane audit ''
try contextplane audit events --deci
try contextplane audit events --type ''
try contextplane topic ''
"""


def script(shell: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "contextplane.cli.main", "completion", shell],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bash_completion_completes_commands_options_and_choices(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None, "bash is needed to test its completion script"
    (tmp_path / "contextplane.bash").write_text(script("bash"))
    done = subprocess.run(
        [bash, "-c", _DRIVER, "driver", str(tmp_path / "contextplane.bash")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answers = [block.split() for block in done.stdout.split("---\n")[:-1]]
    assert answers[0] == ["audit"]
    assert answers[1] == ["events", "reads"]
    assert answers[2] == ["--decision"]
    assert answers[3] == ["authorization", "change", "authentication", "suppressed"]
    assert {"create", "describe", "delete", "list"} <= set(answers[4])


@pytest.mark.parametrize("shell", ["zsh", "tcsh"])
def test_other_shells_get_a_script_naming_every_command(shell: str) -> None:
    text = script(shell)
    for word in ("audit", "events", "--decision", "suppressed", "reset-offsets", "completion"):
        assert word in text, word


def test_an_unknown_shell_is_refused_by_name() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "contextplane.cli.main", "completion", "fish"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "invalid choice: 'fish'" in done.stderr
