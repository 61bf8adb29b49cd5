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
  topic created or deleted costs one pass over the names per pattern in use.
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
        compiled, version, found = self._entry(pattern)
        if found is not None and version is not None and version == topics_version:
            return found
        found = frozenset(name for name in names() if compiled.fullmatch(name))
        self._cache[pattern] = (compiled, topics_version, found)
        return found
