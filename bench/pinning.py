"""The latency rows' load client and the measured broker on cores of their own.

At 2,000 one-message requests a second the client (librdkafka's threads and the paced
producer's Python thread, in this process) and the broker compete for the same cores,
so a row measures both. Where the machine has cores to spare, the client gets one and
the broker (with its store) the rest, for the measured runs and the warm-up before them.
With fewer than `MIN_CPUS` the split would leave each broker a single core: Kafka's JVM
used 1.57 cores for this load on its first run, contextplane's loop and sync threads
more than one, so pinning would change what is compared instead of isolating it; the
client then shares the cores, and the results say why.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# A core for the client and at least two for the broker.
MIN_CPUS = 3


@dataclass(frozen=True)
class Split:
    client: frozenset[int] = frozenset()
    broker: frozenset[int] = frozenset()
    reason: str | None = None  # why nothing is pinned

    def describe(self) -> dict[str, object]:
        if self.reason is not None:
            return {"pinned": False, "reason": self.reason}
        return {
            "pinned": True,
            "client_cores": sorted(self.client),
            "broker_cores": sorted(self.broker),
        }


def split(cpus: Iterable[int]) -> Split:
    """The client's core and the broker's, out of the CPUs this process may use."""
    usable = sorted(cpus)
    if len(usable) < MIN_CPUS:
        return Split(
            reason=(
                f"{len(usable)} CPUs: a core of its own for the client would leave each "
                "broker one (Kafka's JVM used 1.57 cores for this load on its first run), "
                "changing what is compared; the client shares the cores"
            )
        )
    return Split(client=frozenset(usable[-1:]), broker=frozenset(usable[:-1]))


def machine_split() -> Split:
    if not hasattr(os, "sched_setaffinity"):
        return Split(reason="no sched_setaffinity on this platform")
    return split(os.sched_getaffinity(0))


def _threads(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:  # the process is gone
        return []


def set_affinity(pid: int, cpus: Iterable[int]) -> None:
    """Every thread of `pid` on `cpus` (threads started later inherit it from theirs)."""
    wanted = set(cpus)
    for tid in _threads(pid):
        with contextlib.suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(tid, wanted)


@contextlib.contextmanager
def pinned(plan: Split, broker_pids: Iterable[int]) -> Iterator[None]:
    """This process's threads on the client's cores and the broker's on the rest, for
    the body; every thread back on all the CPUs it had after."""
    if plan.reason is not None:
        yield
        return
    everything = os.sched_getaffinity(0) | plan.client | plan.broker
    pids = [pid for pid in broker_pids if pid]
    set_affinity(os.getpid(), plan.client)
    for pid in pids:
        set_affinity(pid, plan.broker)
    try:
        yield
    finally:
        set_affinity(os.getpid(), everything)
        for pid in pids:
            set_affinity(pid, everything)
