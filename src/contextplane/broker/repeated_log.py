"""Log lines that a client can cause at will (a failed TLS handshake on every reconnect):
the first per key in each interval is written at once, so a single failure shows up
immediately; the repeats are counted and summarised once when the interval ends, so a
client reconnecting in a loop cannot fill the log."""

from __future__ import annotations

import logging

# More distinct keys than this in one interval share one summary line.
KEYS_MAX = 1024
_OTHERS = "other addresses"


class RepeatedLog:
    def __init__(self, logger: logging.Logger, what: str, interval_s: float) -> None:
        self._log = logger
        self._what = what  # "TLS handshake failures": names the summary line
        self._interval_s = interval_s
        self._window_started: float | None = None
        self._repeats: dict[str, int] = {}

    def event(self, key: str, now: float, message: str, *args: object) -> None:
        """One occurrence for `key` (e.g. a client address); `message` is its log line."""
        self.flush(now)
        if self._window_started is None:
            self._window_started = now
        if key in self._repeats:
            self._repeats[key] += 1
            return
        if len(self._repeats) >= KEYS_MAX:
            self._repeats[_OTHERS] = self._repeats.get(_OTHERS, 0) + 1
            return
        self._repeats[key] = 0
        self._log.warning(message, *args)

    def flush(self, now: float) -> None:
        """Summarise an interval that has ended; call it from a periodic task too, so the
        last repeats of a burst are reported when the burst stops."""
        started = self._window_started
        if started is None or now - started < self._interval_s:
            return
        for key, count in self._repeats.items():
            if count:
                self._log.warning(
                    "%d more %s from %s in the last %.0f s",
                    count,
                    self._what,
                    key,
                    now - started,
                )
        self._repeats.clear()
        self._window_started = None
