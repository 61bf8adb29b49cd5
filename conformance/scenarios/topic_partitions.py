"""DescribeTopicPartitions (API 75, KIP-966): pages, cursors and errors."""

from __future__ import annotations

from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.wire import err
from tests.support.rawclient import RawClient

DESCRIBE_TOPIC_PARTITIONS = 75


def _describe(
    client: RawClient,
    topics: list[str],
    limit: int = 2000,
    cursor: tuple[str, int] | None = None,
) -> Any:
    return client.request(
        DESCRIBE_TOPIC_PARTITIONS,
        0,
        topics=[{"name": name} for name in topics],
        response_partition_limit=limit,
        cursor=None if cursor is None else {"topic_name": cursor[0], "partition_index": cursor[1]},
    )


def _observed(ctx: Ctx, response: Any) -> dict[str, Any]:
    """What a client sees of one page, broker-chosen ids through `ctx.ident`."""
    cursor = response.next_cursor
    return {
        "topics": [
            {
                "name": t.name,
                "error": err(t.error_code),
                "id_set": t.topic_id is not None and t.topic_id.int != 0,
                "is_internal": t.is_internal,
                "operations": t.topic_authorized_operations,
                "partitions": [
                    {
                        "index": p.partition_index,
                        "error": err(p.error_code),
                        "leader": ctx.ident("node", p.leader_id),
                        "leader_epoch_non_negative": p.leader_epoch >= 0,
                        "replicas": [ctx.ident("node", r) for r in p.replica_nodes],
                        "isr": [ctx.ident("node", r) for r in p.isr_nodes],
                        "elr": None
                        if p.eligible_leader_replicas is None
                        else list(p.eligible_leader_replicas),
                        "last_known_elr": None
                        if p.last_known_elr is None
                        else list(p.last_known_elr),
                        "offline": list(p.offline_replicas),
                    }
                    for p in t.partitions
                ],
            }
            for t in response.topics
        ],
        "next_cursor": None if cursor is None else [cursor.topic_name, cursor.partition_index],
    }


@scenario()
def describe_pages(ctx: Ctx) -> None:
    """Two topics named out of order with an unknown and an invalid one, paged two
    partitions at a time by following the cursor; a page cut at a topic's end; the
    request's limit of 0; all topics from a cursor; the cursor's topic not named; a
    negative cursor partition."""
    client = ctx.raw()
    for name, count in (("dtp-b", 2), ("dtp-a", 3)):
        ctx.record(f"create.{name}", err(wire.create_topic(client, name, count).error_code))
        ctx.check(wire.wait_for_topic(client, name, count), f"{name} has leaders")
    named = ["dtp-b", "dtp-zz", "dtp-a", "dtp bad!", "dtp-b"]
    cursor = None
    for page in range(5):
        response = _describe(client, named, limit=2, cursor=cursor)
        ctx.record(f"page{page}", _observed(ctx, response))
        if response.next_cursor is None:
            break
        cursor = (response.next_cursor.topic_name, response.next_cursor.partition_index)
    ctx.record("full_page", _observed(ctx, _describe(client, ["dtp-a", "dtp-b"], limit=3)))
    ctx.record("limit_zero", _observed(ctx, _describe(client, ["dtp-a"], limit=0)))
    every = _describe(client, [], limit=2000, cursor=("dtp-a", 1))
    mine = [t for t in _observed(ctx, every)["topics"] if t["name"].startswith("dtp-")]
    ctx.record("all_from_cursor", mine)
    ctx.record(
        "cursor_not_named", _observed(ctx, _describe(client, ["dtp-a"], cursor=("dtp-b", 0)))
    )
    ctx.record(
        "negative_cursor", _observed(ctx, _describe(client, ["dtp-a"], cursor=("dtp-a", -1)))
    )
