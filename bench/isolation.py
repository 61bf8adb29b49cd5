"""Keep the targets that are not being measured out of the measured one's way.

The produce workloads keep every target running and interleave their runs. A target that
is only waiting still does background work (Kafka's log flusher and its JVM's collector
after a throughput run, SeaweedFS compacting volumes), and on two cores that work lands on
whichever target is measured next. While one target is measured, the others' threads run
under SCHED_IDLE: they get a core only when nothing else wants it, so they are never
paused (no session or request times out) but take no time from the measurement.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from bench.targets import Instance


def _threads(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:  # the process is gone
        return []


def _set_policy(pids: Iterable[int], policy: int) -> None:
    for pid in pids:
        for tid in _threads(pid):
            with contextlib.suppress(OSError):  # a thread that just ended
                os.sched_setscheduler(tid, policy, os.sched_param(0))


def _processes(instance: Instance) -> list[int]:
    return [pid for pid in (instance.pid, instance.store_pid()) if pid]


@contextlib.contextmanager
def measuring(current: Instance, instances: Iterable[Instance]) -> Iterator[None]:
    """Run the body with every instance but `current` at idle priority."""
    others = [pid for inst in instances if inst is not current for pid in _processes(inst)]
    if not hasattr(os, "SCHED_IDLE") or not Path("/proc/self/task").exists():
        yield  # not Linux: nothing to lower
        return
    _set_policy(others, os.SCHED_IDLE)
    try:
        yield
    finally:
        # Threads started meanwhile inherited SCHED_IDLE from their parent thread: every
        # thread is restored, not only those seen before.
        _set_policy(others, os.SCHED_OTHER)
