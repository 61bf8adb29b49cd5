"""Run the `contextplane` program as a user does (a subprocess) and read what it printed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any


@dataclass
class Run:
    status: int
    out: str
    err: str

    def json(self) -> Any:
        # The status too: a negative one is the signal that ended the program.
        assert self.status == 0, (self.status, self.err)
        return json.loads(self.out)

    def rows(self) -> list[list[str]]:
        """The first table's rows (header first), split on its aligned columns."""
        assert self.status == 0, self.err
        lines = self.out.split("\n\n")[0].splitlines()
        return [line.split() for line in lines]


def contextplane(*args: str, stdin: str | None = None, timeout_s: float = 60.0) -> Run:
    """`contextplane ARGS...` with `stdin`; the timeout is a liveness bound."""
    done = subprocess.run(
        [sys.executable, "-m", "contextplane.cli.launch", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def one_error_line(run: Run, status: int = 1) -> str:
    """The single line a failed command wrote on stderr (asserting its exit status)."""
    assert run.status == status, (run.status, run.out, run.err)
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    return lines[0]


def sigint_as_from_a_terminal() -> None:
    """A `preexec_fn` for a child that a test stops with SIGINT (what Ctrl-C sends): a test
    run started in the background (`cmd &` in a script) ignores SIGINT, a child inherits
    that, and Python then leaves it ignored; a terminal starts it with the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
