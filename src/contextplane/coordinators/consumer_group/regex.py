"""Regex subscriptions of the consumer group protocol (KIP-848's SubscribedTopicRegex),
evaluated on the broker with RE2 semantics, as Kafka evaluates them with RE2/J.

Rules of this file:

* A pattern is at most `PATTERN_BYTES_MAX` long and compiles with RE2's memory bounded
  by `PATTERN_MEMORY_MAX`; anything RE2 refuses raises `InvalidPattern` with Kafka's
  message (answered INVALID_REGULAR_EXPRESSION). RE2 matches in linear time: no
  pattern can stall the event loop.
* A topic matches when the whole name matches (Java's `Matcher.matches()`). Every topic
  of the topic table is offered, internal ones included (`__consumer_offsets`, the
  audit topics), as Kafka's TopicRegexResolver offers every topic of its metadata image;
  the matches are then cut to the topics the requesting principal may DESCRIBE
  (`RegexTopics.describable`), as Kafka filters them through its authorizer.
* `RegexMatches` evaluates each distinct pattern once per version of the topic table and
  keeps at most `PATTERNS_CACHED_MAX` patterns, so a heartbeat costs a lookup, and a
  topic created or deleted costs one pass over the names for every pattern in use.
* `match_names` is that pass: the patterns in RE2 sets (`RE2::Set`, anchored at both
  ends, as many fullmatches at once), so each name is matched once in C rather than
  once per pattern through the Python wrapper (10 patterns over 10,000 names: ~45x
  less). Each set also holds a match-anything pattern: a name it does not report is one
  the set's DFA gave up on (out of memory), matched again pattern by pattern. It reads
  only its arguments, so it may run in a worker thread; RE2 releases the GIL while it
  matches.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import re2

PATTERN_BYTES_MAX = 1024
PATTERN_MEMORY_MAX = 1 << 20
PATTERNS_CACHED_MAX = 1024
# Patterns per RE2 set, and the set's memory: a set's DFA grows with its patterns.
SET_PATTERNS_MAX = 16
SET_MEMORY_MAX = SET_PATTERNS_MAX * PATTERN_MEMORY_MAX
_ANYTHING = "(?s:.*)"
# How many names a worker thread matches between two pauses (~0.5 ms of work).
PAUSE_EVERY_NAMES = 256

TopicNames = Callable[[], Iterable[str]]
TopicFilter = Callable[[frozenset[str]], frozenset[str]]


def _every(found: frozenset[str]) -> frozenset[str]:
    return found


@dataclass(frozen=True, slots=True)
class RegexTopics:
    """What a regex evaluated for one request may match: `names`, every topic of the topic
    table, and `describable`, the matched topics the request's principal may DESCRIBE
    (Kafka's filterTopicDescribeAuthorizedTopics; every topic without an authorizer)."""

    names: TopicNames = tuple
    describable: TopicFilter = _every


NO_TOPICS = RegexTopics()


@functools.cache
def _re2() -> tuple[Any, re2.Options]:
    """RE2 and the options every pattern compiles with, imported on the first regex
    subscription (~20 ms of a start otherwise)."""
    import re2

    options = re2.Options()
    options.max_mem = PATTERN_MEMORY_MAX
    options.log_errors = False  # refused patterns are answered, not logged to stderr
    return re2, options


class InvalidPattern(ValueError):
    """A pattern RE2 cannot use; the message is Kafka's."""


def compile_pattern(pattern: str) -> Any:
    """The compiled pattern (an `re2._Regexp`), or InvalidPattern."""

    def invalid(reason: str) -> InvalidPattern:
        return InvalidPattern(
            f"SubscribedTopicRegex `{pattern}` is not a valid regular expression: {reason}."
        )

    if len(pattern.encode()) > PATTERN_BYTES_MAX:
        raise invalid(f"it is longer than {PATTERN_BYTES_MAX} bytes")
    re2, options = _re2()
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        raise invalid(detail.decode() if isinstance(detail, bytes) else str(detail)) from None


class RegexMatches:
    """pattern -> its compiled form and the topic names it matches, at one version of
    the topic table (None: unknown, evaluated at every call)."""

    def __init__(self) -> None:
        self._cache: OrderedDict[str, tuple[Any, int | None, frozenset[str] | None]] = OrderedDict()

    def _entry(self, pattern: str) -> tuple[Any, int | None, frozenset[str] | None]:
        cached = self._cache.get(pattern)
        if cached is not None:
            self._cache.move_to_end(pattern)
            return cached
        entry = (compile_pattern(pattern), None, None)
        self._cache[pattern] = entry
        if len(self._cache) > PATTERNS_CACHED_MAX:
            self._cache.popitem(last=False)
        return entry

    def check(self, pattern: str) -> None:
        """Raises InvalidPattern for a pattern RE2 cannot use."""
        self._entry(pattern)

    def matches(
        self, pattern: str, topics_version: int | None, names: TopicNames
    ) -> frozenset[str]:
        found = self.cached(pattern, topics_version)
        if found is None:
            found = match_names([pattern], names())[pattern]
            self.remember(pattern, topics_version, found)
        return found

    def cached(self, pattern: str, topics_version: int | None) -> frozenset[str] | None:
        """What `pattern` matched at this version of the topic table, if known."""
        _compiled, version, found = self._entry(pattern)
        if version is not None and version == topics_version:
            return found
        return None

    def remember(self, pattern: str, topics_version: int | None, found: frozenset[str]) -> None:
        compiled, _version, _found = self._entry(pattern)
        self._cache[pattern] = (compiled, topics_version, found)


def match_names(
    patterns: list[str], names: Iterable[str], pause: Callable[[], object] | None = None
) -> dict[str, frozenset[str]]:
    """pattern -> the names it matches whole, for valid patterns (checked before).
    `pause`, if given, is called every `PAUSE_EVERY_NAMES` names (in a worker thread: a
    sleep, so that the event loop's thread takes the GIL at once rather than after the
    interpreter's switch interval)."""
    listed = list(names)
    found: dict[str, frozenset[str]] = {}
    for first in range(0, len(patterns), SET_PATTERNS_MAX):
        chunk = patterns[first : first + SET_PATTERNS_MAX]
        found.update(_match_set(chunk, listed, pause or _no_pause))
    return found


def _no_pause() -> None:
    pass


def _match_set(
    patterns: list[str], names: list[str], pause: Callable[[], object]
) -> dict[str, frozenset[str]]:
    re2, _options = _re2()
    set_options = re2.Options()
    set_options.max_mem = SET_MEMORY_MAX
    set_options.log_errors = False
    regex_set = re2.Set.FullMatchSet(set_options)
    try:
        for pattern in patterns:
            regex_set.Add(pattern)
        anything = regex_set.Add(_ANYTHING)
        regex_set.Compile()
    except re2.error:  # too large for one set: pattern by pattern
        return {p: _match_each(p, names) for p in patterns}
    hits: list[list[str]] = [[] for _ in patterns]
    compiled: list[Any] = []  # for names the set gave up on
    match = regex_set._set.Match  # the wrapper's Match less its per-call checks
    for count, name in enumerate(names, 1):
        if count % PAUSE_EVERY_NAMES == 0:
            pause()
        indexes = match(name.encode())
        if anything not in indexes:  # the set's DFA ran out of memory on this name
            compiled = compiled or [compile_pattern(p) for p in patterns]
            indexes = [i for i, c in enumerate(compiled) if c.fullmatch(name)]
        for index in indexes:
            if index != anything:
                hits[index].append(name)
    return {p: frozenset(h) for p, h in zip(patterns, hits, strict=True)}


def _match_each(pattern: str, names: list[str]) -> frozenset[str]:
    compiled = compile_pattern(pattern)
    return frozenset(name for name in names if compiled.fullmatch(name))
