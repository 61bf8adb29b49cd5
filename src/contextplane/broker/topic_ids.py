"""The topic ids a request names, per API, for the lookup of ids this broker has not
heard of yet (broker/topic_lookup.py), done before the request is authorized: the
authorize stage resolves ids to names with the topic table, and a handler answers an
id it cannot resolve UNKNOWN_TOPIC_ID."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Any

# (API version, request body) -> the 16-byte ids it names topics by
TopicIdsOf = Callable[[int, Any], Iterable[bytes]]


def _ids(topics: Iterable[Any] | None) -> Iterator[bytes]:
    """The ids of the topics named by id: an id but no name (or the Java client's
    default "", which Kafka ignores when an id is given)."""
    for topic in topics or ():
        topic_id = getattr(topic, "topic_id", None)
        if topic_id is None or topic_id.int == 0:
            continue
        if not (getattr(topic, "name", None) or getattr(topic, "topic", None)):
            yield topic_id.bytes


def _offset_fetch(version: int, request: Any) -> Iterable[bytes]:
    if version < 10:  # KIP-848: v10 names topics by id
        return ()
    return chain.from_iterable(_ids(group.topics) for group in request.groups)


TOPIC_IDS: dict[int, TopicIdsOf] = {
    0: lambda version, request: _ids(request.topic_data),  # Produce v13+
    1: lambda version, request: _ids(request.topics),  # Fetch v13+
    3: lambda version, request: _ids(request.topics),  # Metadata v10+
    8: lambda version, request: _ids(request.topics),  # OffsetCommit v10
    9: _offset_fetch,
    20: lambda version, request: _ids(getattr(request, "topics", None)),  # DeleteTopics v6+
    28: lambda version, request: _ids(request.topics),  # TxnOffsetCommit v6
    # ConsumerGroupHeartbeat's owned partitions: an id the coordinator has not heard of
    # would be dropped as a deleted topic, and its partitions handed to another member
    # while this one still holds them.
    68: lambda version, request: _ids(request.topic_partitions),
    78: lambda version, request: _ids(request.topics),  # ShareFetch
    79: lambda version, request: _ids(request.topics),  # ShareAcknowledge
}
