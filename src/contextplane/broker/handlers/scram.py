"""DescribeUserScramCredentials and AlterUserScramCredentials (the pipeline has checked
DESCRIBE / ALTER on the cluster), answered as Kafka's ScramImage and ScramControlManager
answer them; every change is audited with its result."""

from __future__ import annotations

from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security import scram
from contextplane.security.scram_credentials import Deletion, Upsertion


async def describe_user_scram_credentials(ctx: RequestContext, request: Any) -> Reply:
    credentials = ctx.services.scram
    assert credentials is not None
    users = None if request.users is None else [u.name for u in request.users]
    results = [
        {
            "user": described.user,
            "error_code": described.error,
            "error_message": described.message,
            "credential_infos": [
                {"mechanism": mechanism, "iterations": iterations}
                for mechanism, iterations in described.credentials
            ],
        }
        for described in credentials.describe(users)
    ]
    return await ctx.large_reply(
        len(results),
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        error_message="",
        results=results,
    )


def _mechanism_name(mechanism: int) -> str:
    found = scram.BY_TYPE.get(mechanism)
    return found.name if found is not None else str(mechanism)


async def alter_user_scram_credentials(ctx: RequestContext, request: Any) -> Reply:
    credentials = ctx.services.scram
    assert credentials is not None
    deletions = [Deletion(d.name, d.mechanism) for d in request.deletions]
    upsertions = [
        Upsertion(u.name, u.mechanism, u.iterations, bytes(u.salt), bytes(u.salted_password))
        for u in request.upsertions
    ]
    outcomes = await credentials.alter(deletions, upsertions)
    changes = {d.user: ("delete", d.mechanism) for d in deletions}
    changes.update({u.user: ("upsert", u.mechanism) for u in upsertions})
    for outcome in outcomes:
        change, mechanism = changes.get(outcome.user, ("alter", 0))
        ctx.audit.record(
            ctx,
            "AlterUserScramCredentials",
            "user",
            outcome.user,
            outcome.error,
            {"change": change, "mechanism": _mechanism_name(mechanism)},
        )
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        results=[
            {"user": o.user, "error_code": o.error, "error_message": o.message} for o in outcomes
        ],
    )
