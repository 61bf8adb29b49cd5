"""An asyncio event loop on virtual time.

The loop never waits: when nothing is ready it jumps its clock to the next timer, so an
hour of timers, timeouts and back-offs runs in milliseconds, and two runs that schedule
the same callbacks in the same order see the same times. There is no selector and no
thread: a simulated world that touched a socket, a file or `call_soon_threadsafe` would
fail here rather than become non-deterministic.
"""

from __future__ import annotations

import asyncio
from typing import Any

WALL_EPOCH_MS = 1_700_000_000_000


class SimulationDeadlock(RuntimeError):
    """Nothing is ready and no timer is set: every task waits on something that never
    comes."""


class BudgetExceeded(RuntimeError):
    """The run went past its virtual-time or loop-iteration budget: something spins (a
    loop that never makes progress, or a wait that never ends while timers keep firing)."""


class _NoSelector:
    """Stands in for the selector: `select(timeout)` advances virtual time by `timeout`."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop

    def select(self, timeout: float | None) -> list[Any]:
        if timeout is None:
            raise SimulationDeadlock("no task can make progress and no timer is set")
        self._loop.advance(timeout)
        return []

    def close(self) -> None:
        pass


class VirtualTimeLoop(asyncio.BaseEventLoop):
    """`time_budget_s` and `iteration_budget` bound a run: past either, the loop raises
    BudgetExceeded out of `run_until_complete` instead of running on (a spin costs a
    bounded amount of CPU and says so, rather than running for minutes)."""

    def __init__(
        self, time_budget_s: float = float("inf"), iteration_budget: float = float("inf")
    ) -> None:
        super().__init__()
        self._now = 0.0
        self._selector = _NoSelector(self)
        self.time_budget_s = time_budget_s
        self.iteration_budget = iteration_budget
        self.iterations = 0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds
        if self._now > self.time_budget_s:
            raise BudgetExceeded(
                f"virtual time passed its budget of {self.time_budget_s:g} s"
                f" ({self.iterations} loop iterations)"
            )

    def _run_once(self) -> None:
        self.iterations += 1
        if self.iterations > self.iteration_budget:
            raise BudgetExceeded(
                f"the loop passed its budget of {self.iteration_budget:g} iterations"
                f" (virtual time {self._now:.3f} s)"
            )
        super()._run_once()  # type: ignore[misc]  # asyncio's private loop step

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    def _write_to_self(self) -> None:
        pass

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> asyncio.Future[Any]:
        raise RuntimeError("the simulation runs no threads")


class VirtualClock:
    """`contextplane.clock.Clock` read from the loop's virtual time."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop

    def wall_ms(self) -> int:
        return WALL_EPOCH_MS + self.monotonic_ms()

    def monotonic_ms(self) -> int:
        return int(self._loop.time() * 1000)
