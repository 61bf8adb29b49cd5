"""OffsetFetch's per-topic results from a group's committed offsets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from contextplane.metadata.records import CommittedOffset
from contextplane.protocol.error_codes import ErrorCode


def fetched_topics(
    committed: Mapping[tuple[str, int], CommittedOffset],
    topics: Iterable[tuple[str, Iterable[int]]] | None,
) -> list[dict[str, Any]]:
    """One OffsetFetch topic per wanted topic (None: every committed one); a partition
    without a committed offset gets -1."""
    if topics is None:
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(committed):
            by_topic.setdefault(topic, []).append(partition)
        topics = by_topic.items()
    result: list[dict[str, Any]] = []
    for topic, partitions in topics:
        entries = []
        for partition in partitions:
            found = committed.get((topic, partition))
            entries.append(
                {
                    "partition_index": partition,
                    "committed_offset": -1 if found is None else found.offset,
                    "committed_leader_epoch": -1 if found is None else found.leader_epoch,
                    "metadata": "" if found is None else (found.metadata or ""),
                    "error_code": ErrorCode.none,
                }
            )
        result.append({"name": topic, "partitions": entries})
    return result
