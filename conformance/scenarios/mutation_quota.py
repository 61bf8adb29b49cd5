"""controller_mutation_rate (KIP-599): partitions created and deleted per second, a token
bucket of `quota.window.num` (11) one-second windows of the quota. Strict versions
(CreateTopics v7 here) refuse a topic once the bucket is exhausted; older ones (v5)
accept it and throttle. Each step runs on a connection of its own (a throttled
connection is muted), and throttle times are recorded as "throttled or not" only.
"""

from __future__ import annotations

from typing import Any

from conformance.scenarios import Ctx, scenario
from conformance.scenarios.quotas import CLIENT, SETTLE_S, _until, alter, clear
from conformance.wire import CREATE_PARTITIONS, create_topics, delete_topics, err

RATE = 1.0  # a bucket of 11 partitions
# One client id per scenario: a client's bucket outlives its quota's removal.
STRICT, PERMISSIVE, DELETER = "mutq-strict", "mutq-permissive", "mutq-deleter"


def _outcome(response: Any) -> dict[str, Any]:
    return {
        "topics": sorted((t.name, err(t.error_code), t.error_message) for t in response.topics),
        "throttled": response.throttle_time.total_seconds() > 0,
    }


def _limit(ctx: Ctx, client_id: str) -> None:
    admin = ctx.raw("mutq-admin")
    limit = [([(CLIENT, client_id)], [("controller_mutation_rate", RATE)])]
    ctx.record(f"alter.{client_id}", alter(admin, limit))
    want = [(((CLIENT, client_id),), [("controller_mutation_rate", RATE)])]
    ctx.check(_until(admin, [(CLIENT, 0, client_id)], want), f"quota visible in {SETTLE_S} s")


@scenario(quick=False)
def create_topics_strict_and_permissive(ctx: Ctx) -> None:
    """CreateTopics v7 over the quota: the topic that finds the bucket exhausted is
    refused with THROTTLING_QUOTA_EXCEEDED; v5: every topic created, throttled."""
    names = [f"mutq-{i}" for i in range(6)]
    admin = ctx.raw("mutq-admin")
    try:
        clear(admin)
        _limit(ctx, STRICT)
        _limit(ctx, PERMISSIVE)
        big = [{"name": names[0], "partitions": 11}, {"name": names[1], "partitions": 1},
               {"name": names[2], "partitions": 1}]  # fmt: skip
        ctx.record("strict", _outcome(create_topics(ctx.raw(STRICT), big, version=7)))
        ctx.record(
            "strict_validate_only",
            _outcome(create_topics(ctx.raw(STRICT), [{"name": "mutq-v"}], True, version=7)),
        )
        more = [{"name": names[3], "partitions": 11}, {"name": names[4], "partitions": 1},
                {"name": names[5], "partitions": 1}]  # fmt: skip
        ctx.record("permissive", _outcome(create_topics(ctx.raw(PERMISSIVE), more, version=5)))
        ctx.record(
            "other_client",
            _outcome(create_topics(ctx.raw("mutq-free"), [{"name": "mutq-free"}], version=7)),
        )
    finally:
        delete_topics(ctx.raw("mutq-admin"), [*names, "mutq-free"])
        clear(admin)


@scenario(quick=False)
def delete_topics_and_create_partitions_strict(ctx: Ctx) -> None:
    """DeleteTopics v5 and CreatePartitions v3 take their partitions from the same
    bucket: 11 partitions deleted empty it, one more takes it below zero, and the next
    deletion and the next new partition are refused."""
    names = [f"mutq-d{i}" for i in range(4)]
    admin = ctx.raw("mutq-admin")
    try:
        clear(admin)
        setup = [{"name": name, "partitions": 11 if i == 0 else 1} for i, name in enumerate(names)]
        ctx.record("setup", _outcome(create_topics(admin, setup)))
        _limit(ctx, DELETER)
        # One topic per request: Kafka's controller takes a request's topics in the hash
        # order of their ids.
        for name in names[:3]:
            deleted = delete_topics(ctx.raw(DELETER), [name], version=5)
            ctx.record(
                f"delete.{name}",
                {
                    "topics": [
                        (t.name, err(t.error_code), t.error_message) for t in deleted.responses
                    ],
                    "throttled": deleted.throttle_time.total_seconds() > 0,
                },
            )
        grown = ctx.raw(DELETER).request(
            CREATE_PARTITIONS,
            3,
            topics=[{"name": names[3], "count": 2, "assignments": None}],
            timeout=10000,
            validate_only=False,
        )
        ctx.record(
            "create_partitions",
            {
                "topics": [(r.name, err(r.error_code), r.error_message) for r in grown.results],
                "throttled": grown.throttle_time.total_seconds() > 0,
            },
        )
    finally:
        delete_topics(ctx.raw("mutq-admin"), names)
        clear(admin)
