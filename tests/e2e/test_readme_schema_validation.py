"""The README's "Broker-side validation" commands run as printed (only the address
changed): a validating topic refuses a record without a schema id, then routes it to its
dead-letter topic, where it carries the headers the README shows."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support.inprocess import InProcessBroker
from tests.support.readme import README, section, walkthrough

HEADING = "## Broker-side validation"


def test_the_readme_validation_commands_run_as_printed(tmp_path: Path) -> None:
    commands = walkthrough(HEADING).shell
    # The README's comments after a command show what it prints.
    shown = r"^# (contextplane produce: .*|\{.*)$"
    (refusal, dead_letter) = re.findall(shown, section(HEADING), re.M)
    broker = InProcessBroker(tmp_path / "broker").start()
    try:
        # Each command, then its exit status, so that one refused produce does not stop the rest.
        script = "\n".join(
            f'{command.replace("127.0.0.1:9092", broker.bootstrap)}\necho "exit=$?"'
            for command in commands
        )
        shell = subprocess.run(
            ["bash", "-c", script],
            cwd=README.parent,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        broker.stop()
    statuses = re.findall(r"^exit=(\d+)$", shell.stdout, re.M)
    assert statuses == ["0", "0", "0", "1", "0", "0", "0", "0"], shell.stdout + shell.stderr
    assert refusal in shell.stderr.splitlines(), shell.stderr
    assert dead_letter in shell.stdout.splitlines(), shell.stdout
