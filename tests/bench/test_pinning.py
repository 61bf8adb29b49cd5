"""The latency rows' client and broker on cores of their own where the machine has them,
and every thread back on all its CPUs after."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench import pinning

needs_affinity = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="Linux CPU affinity on a machine of 2 CPUs or more",
)


def test_the_client_gets_one_core_and_the_broker_the_rest() -> None:
    plan = pinning.split([0, 1, 2, 3])
    assert plan.reason is None
    assert plan.client == {3} and plan.broker == {0, 1, 2}
    assert plan.describe() == {"pinned": True, "client_cores": [3], "broker_cores": [0, 1, 2]}


def test_two_cores_are_not_split_and_the_results_say_why() -> None:
    plan = pinning.split([0, 1])
    assert plan.reason is not None and "2 CPUs" in plan.reason
    assert plan.describe() == {"pinned": False, "reason": plan.reason}


def _affinities(pid: int) -> set[frozenset[int]]:
    return {frozenset(os.sched_getaffinity(int(t))) for t in os.listdir(f"/proc/{pid}/task")}


@pytest.fixture
def broker_stand_in() -> Iterator[int]:
    """A process with a few threads that only sleep."""
    code = (
        "import threading, time\n"
        "for _ in range(3): threading.Thread(target=time.sleep, args=(60,)).start()\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    yield proc.pid
    proc.kill()
    proc.wait()


@needs_affinity
def test_every_thread_is_pinned_for_the_run_and_released_after(broker_stand_in: int) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    plan = pinning.Split(client=frozenset(cpus[-1:]), broker=frozenset(cpus[:-1]))
    before = os.sched_getaffinity(0)
    with pinning.pinned(plan, [broker_stand_in]):
        assert _affinities(os.getpid()) == {plan.client}
        assert _affinities(broker_stand_in) == {plan.broker}
    assert _affinities(os.getpid()) == {frozenset(before)}
    assert _affinities(broker_stand_in) == {frozenset(before)}


@needs_affinity
def test_a_failed_run_releases_the_cores_too(broker_stand_in: int) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    plan = pinning.Split(client=frozenset(cpus[:1]), broker=frozenset(cpus[1:]))
    before = frozenset(os.sched_getaffinity(0))
    with pytest.raises(RuntimeError), pinning.pinned(plan, [broker_stand_in]):
        raise RuntimeError("the workload failed")
    assert _affinities(os.getpid()) == {before} == _affinities(broker_stand_in)


def test_an_unpinned_plan_touches_nothing(broker_stand_in: int) -> None:
    before = _affinities(broker_stand_in)
    with pinning.pinned(pinning.split([0]), [broker_stand_in]):
        assert _affinities(broker_stand_in) == before
