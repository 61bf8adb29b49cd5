"""InitProducerId for idempotent producers (transactional ids are not supported yet)."""

from __future__ import annotations

from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.protocol.error_codes import ErrorCode


async def init_producer_id(ctx: RequestContext, request: Any) -> Reply:
    if request.transactional_id is not None:
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=ErrorCode.transactional_id_authorization_failed,
            producer_id=-1,
            producer_epoch=-1,
        )
    producer_id = await ctx.producer_ids.allocate()
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        producer_id=producer_id,
        producer_epoch=0,
    )
