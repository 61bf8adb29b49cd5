"""Log lines that a client can cause at will (a failed TLS handshake on every reconnect):
the first few per key in each interval are written at once, so an occasional failure
shows up immediately and whole; the rest are counted and summarised once when the
interval ends, so a client reconnecting in a loop cannot fill the log."""

from __future__ import annotations

import logging

# More distinct keys than this in one interval share one summary line.
KEYS_MAX = 1024
# Lines written whole per key and interval before the rest are only counted.
BURST = 5
_OTHERS = "other addresses"


class RepeatedLog:
    def __init__(self, logger: logging.Logger, what: str, interval_s: float) -> None:
        self._log = logger
        self._what = what  # "TLS handshake failures": names the summary line
        self._interval_s = interval_s
        self._window_started: float | None = None
        self._written: dict[str, int] = {}  # lines written whole this interval, per key
        self._repeats: dict[str, int] = {}  # lines only counted

    def event(self, key: str, now: float, message: str, *args: object) -> None:
        """One occurrence for `key` (e.g. a client address); `message` is its log line."""
        self.flush(now)
        if self._window_started is None:
            self._window_started = now
        if key not in self._written and len(self._written) >= KEYS_MAX:
            key = _OTHERS
        written = self._written.get(key, 0)
        if written < BURST and key != _OTHERS:
            self._written[key] = written + 1
            self._log.warning(message, *args)
            return
        self._repeats[key] = self._repeats.get(key, 0) + 1

    def flush(self, now: float) -> None:
        """Summarise an interval that has ended; call it from a periodic task too, so the
        last repeats of a burst are reported when the burst stops."""
        started = self._window_started
        if started is None or now - started < self._interval_s:
            return
        for key, count in self._repeats.items():
            self._log.warning(
                "%d more %s from %s in the last %.0f s",
                count,
                self._what,
                key,
                now - started,
            )
        self._written.clear()
        self._repeats.clear()
        self._window_started = None
