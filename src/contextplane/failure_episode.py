"""A step that is tried again until it works (a lease renewal, a reload, a periodic ask):
during an outage it fails on every try, so one WARNING line opens the episode, one INFO
line closes it with how long it lasted, and the failures between are not logged."""

from __future__ import annotations

import logging

from contextplane.clock import Clock, SystemClock


class FailureEpisode:
    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        retrying: str = "retrying",
        clock: Clock | None = None,
    ) -> None:
        self._log = logger
        self._what = what  # "lease renewal": names both lines
        self._retrying = retrying  # what happens next, for the opening line
        self._clock = clock or SystemClock()
        self._since_ms: int | None = None  # when the episode began; None: not failing
        self.failures = 0  # in this episode

    @property
    def failing(self) -> bool:
        return self._since_ms is not None

    def failed(self, exc: BaseException) -> None:
        if self._since_ms is None:
            self._since_ms = self._clock.monotonic_ms()
            self.failures = 0
            self._log.warning("%s failed (%r); %s", self._what, exc, self._retrying)
        self.failures += 1

    def worked(self) -> None:
        if self._since_ms is None:
            return
        lasted_ms = self._clock.monotonic_ms() - self._since_ms
        self._log.info(
            "%s works again (%d failed tries over %d ms)", self._what, self.failures, lasted_ms
        )
        self._since_ms = None
