"""ShareFetch (KIP-932) over a raw connection, as the share tests and the differential
scenarios send it, and the acquired ranges a response carries."""

from __future__ import annotations

from typing import Any

from tests.support.rawclient import RawClient

SHARE_FETCH = 78


def share_fetch(
    client: RawClient,
    group: str | None,
    member: str | None,
    epoch: int,
    topics: Any,
    wait_ms: int = 0,
    max_records: int = 100,
) -> Any:
    return client.call(
        SHARE_FETCH,
        1,
        group_id=group,
        member_id=member,
        share_session_epoch=epoch,
        max_wait=wait_ms,
        min_bytes=1,
        max_bytes=1 << 20,
        max_records=max_records,
        batch_size=max_records,
        topics=topics,
        forgotten_topics_data=[],
    )


def acquired(response: Any) -> list[tuple[int, int, int]]:
    """(first offset, last offset, delivery count) of each acquired range, in order."""
    return [
        (a.first_offset, a.last_offset, a.delivery_count)
        for t in response.responses
        for p in t.partitions
        for a in p.acquired_records
    ]
