"""DescribeClientQuotas and AlterClientQuotas (the pipeline has checked DESCRIBE_CONFIGS /
ALTER_CONFIGS on the cluster, as Kafka does). The rules are Kafka 4.4's controller's
(security/quota_config.py); the values live in the metadata store and are enforced by
security/client_quotas.py."""

from __future__ import annotations

from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.quota_config import (
    Alteration,
    Entity,
    QuotaError,
    entity_of,
    entity_text,
    parse_filter,
)


def _entity_data(entity: Entity) -> list[dict[str, Any]]:
    return [{"entity_type": t, "entity_name": n} for t, n in entity]


async def describe_client_quotas(ctx: RequestContext, request: Any) -> Reply:
    admin = ctx.services.quota_admin
    try:
        where = parse_filter(
            ((c.entity_type, c.match_type, c.match) for c in request.components), request.strict
        )
    except QuotaError as exc:
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=exc.code,
            error_message=exc.message,
            entries=None,
        )
    found = admin.describe(where) if admin is not None else []
    entries = [
        {
            "entity": _entity_data(entity),
            "values": [{"key": key, "value": value} for key, value in sorted(values.items())],
        }
        for entity, values in found
    ]
    return await ctx.large_reply(
        len(entries),
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        error_message=None,
        entries=entries,
    )


async def alter_client_quotas(ctx: RequestContext, request: Any) -> Reply:
    admin = ctx.services.quota_admin
    alterations = [
        Alteration(
            entity_of((e.entity_type, e.entity_name) for e in entry.entity),
            tuple((op.key, None if op.remove else float(op.value)) for op in entry.ops),
        )
        for entry in request.entries
    ]
    if admin is None:
        failed = QuotaError(ErrorCode.unknown_server_error, "client quotas are not available")
        results: dict[Entity, QuotaError | None] = {a.entity: failed for a in alterations}
    else:
        results = await admin.alter(alterations, request.validate_only)
    ops = {a.entity: a.ops for a in alterations}
    entries = []
    for entity, error in results.items():
        code = ErrorCode.none if error is None else error.code
        entries.append(
            {
                "error_code": code,
                "error_message": None if error is None else error.message,
                "entity": _entity_data(entity),
            }
        )
        if not request.validate_only:
            changed = ",".join(f"{k}={'-' if v is None else repr(v)}" for k, v in ops[entity])
            ctx.audit.record(
                ctx,
                "AlterClientQuotas",
                "client-quota",
                entity_text(entity),
                code,
                {"ops": changed},
            )
    return ctx.reply(throttle_time=ctx.throttle_ms, entries=entries)
