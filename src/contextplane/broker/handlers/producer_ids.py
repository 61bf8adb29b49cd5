"""InitProducerId: a new producer id for an idempotent producer; a transactional
producer's id and epoch come from the transaction coordinator (transactions.py)."""

from __future__ import annotations

from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.handlers.transactions import init_transactional_producer
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode


async def init_producer_id(ctx: RequestContext, request: Any) -> Reply:
    if request.transactional_id is not None:
        return await init_transactional_producer(ctx, request)
    try:
        producer_id = await ctx.producer_ids.allocate()
    except KafkaError:
        # The metadata store cannot answer now: as Kafka's producer id manager without a
        # block of ids, COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=ErrorCode.coordinator_load_in_progress,
            producer_id=-1,
            producer_epoch=-1,
        )
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        producer_id=producer_id,
        producer_epoch=0,
    )
