"""Sample the contextplane broker with py-spy while a workload runs.

`py-spy record --format raw` writes collapsed stacks ("frame;frame;... count"); this
module turns them into the top functions by own samples and by inclusive samples, and the
share of wall time the process was busy (idle frames are excluded by py-spy).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RATE_HZ = 100


def py_spy() -> str | None:
    """py-spy from the `bench` extra (installed by `scripts/setup test`), or None."""
    candidate = Path(sys.executable).parent / "py-spy"
    if candidate.exists():
        return str(candidate)
    return shutil.which("py-spy")


class Profiler:
    def __init__(self, pid: int, out: Path, seconds: float) -> None:
        self.out = out
        self.seconds = seconds
        self.error: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        exe = py_spy()
        if exe is None:
            self.error = "py-spy not available: pip install -e '.[bench]'"
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(out.with_suffix(".log"), "wb")  # noqa: SIM115 - closed in finish()
        self.process = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(RATE_HZ),
                "--duration",
                str(max(1, int(seconds))),
                "--format",
                "raw",
                "--threads",
                "--nonblocking",
                "--output",
                str(out),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def finish(self, timeout: float = 60.0) -> dict[str, Any]:
        if self.process is None:
            return {"error": self.error}
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(10)
        self._log.close()
        if not self.out.exists():
            return {"error": f"py-spy wrote nothing; see {self.out.with_suffix('.log')}"}
        return summarize(self.out, self.seconds)


def _short(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py:123)"
    name, _, where = frame.partition(" (")
    if where:
        path = where.rstrip(")")
        parts = path.split("/")
        if "site-packages" in parts:
            path = "/".join(parts[parts.index("site-packages") + 1 :])
        elif "contextplane" in parts:
            path = "/".join(parts[parts.index("contextplane") :])
        else:
            path = parts[-1]
        return f"{name} ({path})"
    return name


def summarize(path: Path, seconds: float, top: int = 15) -> dict[str, Any]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    main_own: Counter[str] = Counter()
    main_inclusive: Counter[str] = Counter()
    main_total = 0
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        if frames and frames[0].startswith(("thread", "process")):
            threads[frames[0]] += count
        code = [_short(f) for f in frames if not f.startswith(("thread", "process"))]
        if code:
            own[code[-1]] += count
        for frame in set(code):
            inclusive[frame] += count
        if frames and frames[0].endswith("MainThread"):  # the event loop
            main_total += count
            if code:
                main_own[code[-1]] += count
            for frame in set(code):
                main_inclusive[frame] += count

    def table(counter: Counter[str], of: int = 0, n_top: int = top) -> list[dict[str, Any]]:
        of = of or total
        return [
            {"frame": frame, "samples": n, "pct": 100 * n / of if of else 0.0}
            for frame, n in counter.most_common(n_top)
        ]

    return {
        "samples": total,
        "rate_hz": RATE_HZ,
        "seconds": seconds,
        "busy_cores": total / (RATE_HZ * seconds) if seconds else None,
        "threads": {k: v for k, v in threads.most_common(8)},
        "top_own": table(own),
        "top_inclusive": table(inclusive),
        # The event-loop thread alone, as a share of wall time (samples at RATE_HZ).
        "event_loop_busy": main_total / (RATE_HZ * seconds) if seconds else None,
        "event_loop_top_own": table(main_own, int(RATE_HZ * seconds), 25),
        "event_loop_top_inclusive": table(main_inclusive, int(RATE_HZ * seconds), 40),
        "raw": str(path),
    }
