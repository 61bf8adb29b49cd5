"""DescribeTopicPartitions' pages (KIP-966), as Kafka's KRaftMetadataCache cuts them.

Topics go in name order (Java's: UTF-16 code units); a page holds at most `limit`
partitions. The first topic starts at the cursor's partition when it is the cursor's
topic. A topic cut short ends the page with a cursor to its next partition; a topic
reached once the page is full ends it with a cursor to its partition 0. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopicSlice:
    """Partitions `start` to `end` (exclusive) of topic `name`; `known` False for a topic
    that does not exist (answered with an error, no partitions)."""

    name: str
    start: int
    end: int
    known: bool = True


@dataclass(frozen=True, slots=True)
class Page:
    slices: list[TopicSlice]
    next_cursor: tuple[str, int] | None


def java_order(name: str) -> bytes:
    """The key that sorts names as Java's String.compareTo does (UTF-16 code units: a
    character beyond the BMP sorts below U+E000-U+FFFF there, above them in Python)."""
    return name.encode("utf-16-be", "surrogatepass")


def from_cursor(names: Iterable[str], cursor_name: str) -> set[str]:
    """The distinct names at or after the cursor's topic (all of them with no cursor,
    whose name is "")."""
    if not cursor_name:
        return set(names)  # every name sorts at or after ""
    floor = java_order(cursor_name)
    return {name for name in names if java_order(name) >= floor}


def paginate(
    names: list[str],
    partitions_of: Callable[[str], int | None],
    cursor: tuple[str, int] | None,
    limit: int,
    list_unknown: bool,
) -> Page:
    """One page over `names` (sorted by `java_order`); `partitions_of(name)` is the
    topic's partition count, None when it does not exist; an unknown topic is listed
    only with `list_unknown` (topics named by the request, not all topics)."""
    slices: list[TopicSlice] = []
    remaining = limit
    for name in names:
        if remaining <= 0:
            # The page is full: the next one starts at this topic (which may not exist).
            return Page(slices, (name, 0))
        count = partitions_of(name)
        if count is None:
            if list_unknown:
                slices.append(TopicSlice(name, 0, 0, known=False))
            continue
        start = cursor[1] if cursor is not None and name == cursor[0] else 0
        upper = min(count, start + remaining)
        slices.append(TopicSlice(name, start, max(start, upper)))
        if upper < count:
            return Page(slices, (name, upper))
        remaining -= max(0, upper - start)
    return Page(slices, None)
