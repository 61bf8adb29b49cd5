"""A progress bar on stderr for the CLI's long work (`mirror`, `produce`), drawn by rich
only where someone watches it: stderr a terminal and the output a table. In a pipe, a
file or with `--output json` the bar is a no-op, so what a program reads is unchanged.

rich is imported only when a bar is drawn (about 60 ms): the commands' start stays as
short as before everywhere else. The bar is redrawn ten times a second by rich's own
thread from the numbers the command last gave it; what the command prints on stderr
meanwhile (a mirror's notes) goes above the bar, stdout is left alone (tables and JSON
are printed once the bar is closed).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from contextplane.clock import SystemClock

# How often the command hands its numbers to the bar: a lock and a few dictionary writes
# in rich each time, too much for every line of a large file.
UPDATE_EVERY_MS = 100


def wanted(output: str) -> bool:
    """Whether a bar is drawn: a person at a terminal and a table, not JSON."""
    return output != "json" and sys.stderr.isatty()


class Bar:
    """One task's bar; every method does nothing when the bar is not drawn."""

    def __init__(
        self, output: str, description: str, unit: str = "records", *, in_bytes: bool = False
    ) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._clock = SystemClock()
        self._updated_at = -UPDATE_EVERY_MS
        if not wanted(output):
            return
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        # Bytes read against a file's size, or records done against the total.
        amount = [DownloadColumn()] if in_bytes else [MofNCompleteColumn(), TextColumn(unit)]
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            *amount,
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=Console(file=sys.stderr),
            redirect_stdout=False,
            redirect_stderr=True,
        )
        self._task = self._progress.add_task(escape(description), total=None, detail="")
        self._progress.start()

    @property
    def drawn(self) -> bool:
        return self._progress is not None

    def update(
        self, completed: float, total: float | None, detail: str = "", *, force: bool = False
    ) -> None:
        """The work done and its total (None: not known, the bar pulses); at most every
        UPDATE_EVERY_MS unless `force`."""
        if self._progress is None:
            return
        now = self._clock.monotonic_ms()
        if not force and now - self._updated_at < UPDATE_EVERY_MS:
            return
        self._updated_at = now
        self._progress.update(self._task, completed=completed, total=total, detail=detail)

    def close(self) -> None:
        """The last numbers stay on the terminal; what follows prints below them."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def mirrored(bar: Bar, done: int, lags: Sequence[int], *, force: bool = False) -> None:
    """A mirror's bar: records copied by this run against the source's end offsets (the
    copied ones plus each partition's lag; unknown until every partition was fetched)."""
    behind = sum(1 for lag in lags if lag != 0)
    total = done + sum(lags) if all(lag >= 0 for lag in lags) else None
    bar.update(done, total, f"{behind} of {len(lags)} partitions behind", force=force)
