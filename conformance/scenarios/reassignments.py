"""AlterPartitionReassignments and ListPartitionReassignments on one broker: a move to
the broker itself, to a broker that is not registered, an empty or repeated replica
list, a cancellation with no move in progress, unknown topics and partitions, and the
listing (nothing in progress)."""

from __future__ import annotations

from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.wire import err

ALTER, LIST = 45, 46


@scenario()
def single_broker(ctx: Ctx) -> None:
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "ra-one", 5).error_code))
    ctx.check(wire.wait_for_topic(client, "ra-one", 5), "topic ready")
    (node,) = [b.broker_id for b in wire.describe_cluster(client).brokers]
    replicas: list[list[int] | None] = [[node], [node + 1], None, [], [node, node]]
    asked: list[dict[str, Any]] = [
        {
            "name": "ra-one",
            "partitions": [{"partition_index": i, "replicas": r} for i, r in enumerate(replicas)]
            + [{"partition_index": 9, "replicas": [node]}],
        },
        {"name": "ra-unknown", "partitions": [{"partition_index": 0, "replicas": [node]}]},
    ]
    for version in (0, 1):
        response = client.request(ALTER, version, timeout=30_000, topics=asked)
        ctx.record(f"v{version}.error", err(response.error_code))
        for topic in response.responses:
            for p in topic.partitions:
                # The broker id is the run's: the messages name it as "the broker".
                message = (p.error_message or "").replace(str(node + 1), "N+1")
                ctx.record(
                    f"v{version}.{topic.name}.{p.partition_index}",
                    {"error": err(p.error_code), "message": message.replace(str(node), "N")},
                )
    for step, topics in (
        ("all", None),
        ("named", [{"name": "ra-one", "partition_indexes": [0, 1]}]),
        ("unknown", [{"name": "ra-unknown", "partition_indexes": [0]}]),
    ):
        listed = client.request(LIST, 0, timeout=30_000, topics=topics)
        ctx.record(f"list.{step}", {"error": err(listed.error_code), "topics": len(listed.topics)})
