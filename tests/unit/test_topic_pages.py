"""DescribeTopicPartitions' pages (`broker/topic_pages.py`) against Kafka's rules
(KRaftMetadataCache.describeTopicResponse), and every page sequence against the whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from contextplane.broker.topic_pages import (
    Page,
    TopicSlice,
    from_cursor,
    java_order,
    paginate,
)

COUNTS = {"a": 3, "b": 2, "c": 1}


def page(names: list[str], cursor: tuple[str, int] | None, limit: int, named: bool = True) -> Page:
    return paginate(names, COUNTS.get, cursor, limit, list_unknown=named)


def test_a_topic_cut_short_ends_the_page_at_its_next_partition() -> None:
    assert page(["a", "b"], None, 2) == Page([TopicSlice("a", 0, 2)], ("a", 2))
    assert page(["a", "b"], ("a", 2), 2) == Page(
        [TopicSlice("a", 2, 3), TopicSlice("b", 0, 1)], ("b", 1)
    )


def test_a_full_page_ends_at_the_next_topics_first_partition() -> None:
    assert page(["a", "b"], None, 3) == Page([TopicSlice("a", 0, 3)], ("b", 0))
    # Even when that topic does not exist (Kafka does not look before cutting).
    assert page(["a", "zz"], None, 3) == Page([TopicSlice("a", 0, 3)], ("zz", 0))


def test_unknown_topics_are_listed_only_when_named() -> None:
    assert page(["a", "x", "c"], None, 10) == Page(
        [TopicSlice("a", 0, 3), TopicSlice("x", 0, 0, known=False), TopicSlice("c", 0, 1)], None
    )
    assert page(["a", "x", "c"], None, 10, named=False) == Page(
        [TopicSlice("a", 0, 3), TopicSlice("c", 0, 1)], None
    )


def test_a_cursor_past_the_topics_end_lists_it_empty() -> None:
    assert page(["c"], ("c", 5), 10) == Page([TopicSlice("c", 5, 5)], None)


def test_the_cursor_index_applies_to_its_topic_only() -> None:
    assert page(["b", "c"], ("c", 0), 10) == Page(
        [TopicSlice("b", 0, 2), TopicSlice("c", 0, 1)], None
    )
    assert page(["b", "c"], ("b", 1), 10) == Page(
        [TopicSlice("b", 1, 2), TopicSlice("c", 0, 1)], None
    )


def test_from_cursor_keeps_distinct_names_at_or_after_it() -> None:
    assert from_cursor(["b", "a", "c", "b"], "b") == {"b", "c"}
    assert from_cursor(["b", "a"], "") == {"a", "b"}


def test_names_sort_as_java_strings() -> None:
    # U+10000 is a surrogate pair in UTF-16 (0xD800...), below U+FFFD there.
    names = ["\ufffd", "\U00010000", "a"]
    assert sorted(names, key=java_order) == ["a", "\U00010000", "\ufffd"]


@given(
    counts=st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 6), min_size=1),
    limit=st.integers(1, 8),
)
def test_following_the_cursors_lists_every_partition_once(
    counts: dict[str, int], limit: int
) -> None:
    names = sorted(counts, key=java_order)
    listed: list[tuple[str, int]] = []
    cursor: tuple[str, int] | None = None
    for _ in range(sum(counts.values()) + len(counts) + 1):
        # The next request names the topics from the cursor's on, as clients do.
        remaining = sorted(from_cursor(names, cursor[0] if cursor else ""), key=java_order)
        result = paginate(remaining, counts.get, cursor, limit, list_unknown=True)
        pieces = result.slices
        assert sum(p.end - p.start for p in pieces) <= limit
        listed += [(p.name, index) for p in pieces for index in range(p.start, p.end)]
        cursor = result.next_cursor
        if cursor is None:
            break
    assert cursor is None
    assert listed == [(name, index) for name in names for index in range(counts[name])]
