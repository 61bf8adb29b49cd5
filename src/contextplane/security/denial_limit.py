"""How many denial records (and their log lines) one principal may cause: at most
`contextplane.audit.denial.records.per.second` in each one-second window. A principal with
no ACL at all can send denied requests as fast as the broker answers them; past the bound
its denials are only counted, and when the window ends the count becomes one summary
record and one log line ("N denial records of User:bob suppressed"), so nothing is lost
silently. Only denials go through here: allowed accesses of audited topics, administrative
changes and successful authentications are recorded whatever the rate. Failed
authentications (a refused client certificate, a failed SASL login) use their own
instances, keyed by client address: they need no credentials at all."""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_MS = 1_000
# More distinct principals than this in one window share one bucket (and one summary), so
# the table stays bounded whatever principals a listener lets in.
PRINCIPALS_MAX = 1_024
OTHERS = "other principals"


@dataclass(slots=True)
class Suppressed:
    """What one principal's denials lost in one window: records not written and the
    denied resources they would have named."""

    principal: str
    records: int
    resources: int
    window_ms: int


class DenialLimit:
    def __init__(self, records_per_second: int) -> None:
        self.records_per_second = records_per_second
        self._window_started: int | None = None
        self._written: dict[str, int] = {}  # records written this window, per principal
        self._suppressed: dict[str, list[int]] = {}  # principal -> [records, resources]

    def admit(self, principal: str, resources: int, now_ms: int) -> bool:
        """May one more denial record of `principal` (naming `resources` resources) be
        written now? False: it is counted for the window's summary instead. Call
        `ended` first, so a past window is summarised before this one starts."""
        if self._window_started is None:
            self._window_started = now_ms
        written = self._written
        if principal not in written and len(written) >= PRINCIPALS_MAX:
            principal = OTHERS
        count = written.get(principal, 0)
        if count < self.records_per_second:
            written[principal] = count + 1
            return True
        lost = self._suppressed.setdefault(principal, [0, 0])
        lost[0] += 1
        lost[1] += resources
        return False

    def ended(self, now_ms: int, force: bool = False) -> list[Suppressed]:
        """The window's suppressed counts once it has ended (or at once with `force`, at
        a stop), and a fresh window; [] while it runs."""
        started = self._window_started
        if started is None or (not force and 0 <= now_ms - started < WINDOW_MS):
            return []  # (a wall clock stepped back ends the window too)
        window_ms = max(now_ms - started, 0)
        summary = [
            Suppressed(principal, records, resources, window_ms)
            for principal, (records, resources) in self._suppressed.items()
        ]
        self._window_started = None
        self._written.clear()
        self._suppressed.clear()
        return summary
