"""Runs the consumer groups' large regex resolutions off the event loop (Kafka: the group
coordinator's executor) and applies their results on it.

A resolution's name matching runs in one worker thread (RE2 releases the GIL while it
matches, so the loop keeps serving meanwhile); the result's authorizer filter runs on the
loop a pattern at a time, yielding between patterns; the machine then applies it in one
step if it is still current, and the group is saved. Resolutions of different groups
queue on the one thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from contextplane.coordinators.consumer_group.machine import ConsumerGroupMachine
from contextplane.coordinators.consumer_group.regex_resolution import RegexResolution
from contextplane.metadata.runner import Runner, ThreadRunner

log = logging.getLogger(__name__)
# The worker's pause between two runs of names: it sleeps without the GIL, so the loop's
# thread, if it waits for the GIL, takes it now rather than after the interpreter's switch
# interval (5 ms), which a thread that gives the GIL back only for microseconds at a time
# (each RE2 match) would otherwise make it wait at every turn.
_PAUSE_S = 0.0005


def _pause() -> None:
    time.sleep(_PAUSE_S)


Save = Callable[[str], Awaitable[object]]


class RegexResolver:
    def __init__(
        self, machine: ConsumerGroupMachine, save: Save, runner: Runner | None = None
    ) -> None:
        self._machine = machine
        self._save = save
        self.runner = runner  # None: a worker thread of its own, started when first needed
        self._own: ThreadRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start_due(self) -> None:
        """Starts the resolutions the machine asked for since the last call."""
        for resolution in self._machine.take_regex_resolutions():
            task = asyncio.create_task(self._resolve(resolution), name="consumer-group-regex")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _resolve(self, resolution: RegexResolution) -> None:
        machine = self._machine
        try:
            if self.runner is None:
                self.runner = self._own = ThreadRunner("consumer-regex")
            found = await self.runner.run(resolution.match, _pause)
            machine.resolutions.matched(resolution, found)
            describable = {}
            for pattern in resolution.patterns:
                describable[pattern] = resolution.topics.describable(found[pattern])
                await asyncio.sleep(0)  # an authorizer pass per pattern, then the others
        except Exception:  # noqa: BLE001 - dropped; the next heartbeat resolves again
            log.exception("resolving the regexes of group %s failed", resolution.group_id)
            if machine.resolutions.finished(resolution):
                resolution.group.regexes_resolved_ms = None
            self.start_due()
            return
        changed = machine.regex_resolved(resolution, describable)
        self.start_due()  # the one that waited behind it, if any
        if changed:
            await self._save(resolution.group_id)

    async def settled(self) -> None:
        """Until no resolution runs (each may start the next)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own is not None:
            self._own.close()  # waits for a match under way (bounded by the topic table)
            self.runner = self._own = None
