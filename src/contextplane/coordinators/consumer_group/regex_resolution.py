"""Resolving a group's regexes off the event loop, as Kafka's group coordinator does in
its executor (`maybeUpdateRegularExpressions` schedules, `handleRegularExpressionsResult`
applies).

Rules of this file:

* A `RegexResolution` is one resolution asked for: the group's patterns, the topic
  table's version and the triggering member's view of it, and the partition counts of
  that version. Its `match` reads only those (the topic table is replaced, never changed
  in place), so it may run in a worker thread.
* Small work stays on the loop (`inline`): fewer names than `OFF_LOOP_ITEMS_MIN`, or
  every pattern already matched at that version, and nothing in flight for the group.
* At most one resolution per group is in flight; one asked for meanwhile waits (the
  newest replaces an older waiting one) and starts when the one in flight is done. The
  heartbeats answer from the group's current results meanwhile.
* A result is applied (by the machine, on the loop, in one step) only if it is still
  current: the same topic-table version as the group's and covering every regex the
  group subscribes to now. Otherwise it is dropped and the waiting one (or, if none, the
  next heartbeat) resolves again.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from dataclasses import dataclass, field

from contextplane import limits
from contextplane.coordinators.consumer_group.group import ConsumerGroup
from contextplane.coordinators.consumer_group.regex import RegexMatches, RegexTopics, match_names

PartitionCounts = Callable[[str], int]


@dataclass(eq=False, slots=True)
class RegexResolution:
    group: ConsumerGroup
    patterns: tuple[str, ...]
    topics_version: int | None
    topics: RegexTopics
    partitions: PartitionCounts
    requested_ms: int
    # The patterns already matched at this version (from the cache), and those to match.
    known: dict[str, frozenset[str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def group_id(self) -> str:
        return self.group.group_id

    def same_work(self, other: RegexResolution) -> bool:
        return self.patterns == other.patterns and self.topics_version == other.topics_version

    def match(self, pause: Callable[[], object] | None = None) -> dict[str, frozenset[str]]:
        """Every pattern's matches over the topic names (thread-safe: see the rules);
        `pause`: as `match_names`'s."""
        found = dict(self.known)
        if self.missing:
            found.update(match_names(self.missing, self.topics.names(), pause))
        return found

    def current(self, group: ConsumerGroup) -> bool:
        """Whether its result may still be applied to `group`."""
        return (
            group.metadata_topics_version == self.topics_version
            and group.subscribed_regexes() <= set(self.patterns)
        )


class RegexResolutions:
    """The resolutions in flight and waiting, per group, and those due to start."""

    def __init__(self, matches: RegexMatches, inline_names_max: int | None = None) -> None:
        self._matches = matches
        self.inline_names_max = (
            limits.OFF_LOOP_ITEMS_MIN if inline_names_max is None else inline_names_max
        )
        self.in_flight: dict[str, RegexResolution] = {}
        self._waiting: dict[str, RegexResolution] = {}
        self._due: list[RegexResolution] = []

    def prepare(self, resolution: RegexResolution) -> None:
        """Takes what the match cache knows at the resolution's version."""
        for pattern in resolution.patterns:
            found = self._matches.cached(pattern, resolution.topics_version)
            if found is None:
                resolution.missing.append(pattern)
            else:
                resolution.known[pattern] = found

    def inline(self, resolution: RegexResolution) -> bool:
        if resolution.group_id in self.in_flight:
            return False
        if not resolution.missing:
            return True
        names = resolution.topics.names()
        count = len(names) if isinstance(names, Sized) else sum(1 for _ in names)
        return count < self.inline_names_max

    def want(self, resolution: RegexResolution) -> None:
        """Starts it, or has it wait behind the one in flight (unless that one does the
        same work)."""
        group_id = resolution.group_id
        running = self.in_flight.get(group_id)
        if running is None:
            self.in_flight[group_id] = resolution
            self._due.append(resolution)
        elif not running.same_work(resolution):
            self._waiting[group_id] = resolution
        elif group_id in self._waiting:
            del self._waiting[group_id]  # the one in flight already does the newest work

    def take_due(self) -> list[RegexResolution]:
        due, self._due = self._due, []
        return due

    def matched(self, resolution: RegexResolution, found: dict[str, frozenset[str]]) -> None:
        """Its matches go to the cache (on the loop: the cache is not thread-safe)."""
        if resolution.topics_version is not None:
            for pattern in resolution.missing:
                self._matches.remember(pattern, resolution.topics_version, found[pattern])

    def finished(self, resolution: RegexResolution) -> bool:
        """It is done (applied or not); the waiting one, if any, starts. False if it was
        no longer the group's one in flight (the group was removed or reloaded)."""
        group_id = resolution.group_id
        if self.in_flight.get(group_id) is not resolution:
            return False
        del self.in_flight[group_id]
        waiting = self._waiting.pop(group_id, None)
        if waiting is not None:
            self.want(waiting)
        return True

    def waiting(self, group_id: str) -> bool:
        return group_id in self._waiting

    def clear(self) -> None:
        self.in_flight.clear()
        self._waiting.clear()
        self._due.clear()

    def forget(self, group_id: str) -> None:
        self.in_flight.pop(group_id, None)
        self._waiting.pop(group_id, None)
        self._due = [r for r in self._due if r.group_id != group_id]
