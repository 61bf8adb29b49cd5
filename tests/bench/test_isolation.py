"""While one target is measured the others run at idle priority, and get it back after."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.isolation import measuring
from bench.targets import Instance

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling")


class Sleeper(Instance):
    """A stand-in target: a process with a few threads that only sleeps."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        code = (
            "import threading, time\n"
            "for _ in range(3): threading.Thread(target=time.sleep, args=(60,)).start()\n"
            "print('ready', flush=True); time.sleep(60)\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def policies(self) -> set[int]:
        return {os.sched_getscheduler(int(t)) for t in os.listdir(f"/proc/{self.proc.pid}/task")}


@pytest.fixture
def sleepers(tmp_path: Path) -> Iterator[list[Sleeper]]:
    made = [Sleeper(tmp_path / str(i)) for i in range(3)]
    yield made
    for sleeper in made:
        sleeper.proc.kill()
        sleeper.proc.wait()


def test_only_the_measured_target_keeps_its_priority(sleepers: list[Sleeper]) -> None:
    measured, *others = sleepers
    with measuring(measured, sleepers):
        assert measured.policies() == {os.SCHED_OTHER}
        for other in others:
            assert other.policies() == {os.SCHED_IDLE}
    for sleeper in sleepers:
        assert sleeper.policies() == {os.SCHED_OTHER}


def test_priority_comes_back_when_the_measurement_fails(sleepers: list[Sleeper]) -> None:
    with pytest.raises(RuntimeError), measuring(sleepers[0], sleepers):
        raise RuntimeError("the workload failed")
    assert all(s.policies() == {os.SCHED_OTHER} for s in sleepers)
