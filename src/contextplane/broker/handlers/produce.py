"""Produce: validate each partition's batches, append, answer once all are durable."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from contextplane.broker.router import RequestContext
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import split_batches

log = logging.getLogger(__name__)


async def produce(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    if request.acks not in (-1, 0, 1):
        error: KafkaError | None = KafkaError(ErrorCode.invalid_required_acks)
    elif request.transactional_id is not None:
        error = KafkaError(ErrorCode.invalid_txn_state, "transactions are not supported yet")
    else:
        error = None
    pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
    topics = []
    for topic in request.topic_data:
        partitions = []
        for data in topic.partition_data:
            entry: dict[str, Any] = {
                "index": data.index,
                "error_code": ErrorCode.none,
                "base_offset": -1,
                "log_append_time": -1,
                "log_start_offset": -1,
                "record_errors": [],
                "error_message": None,
            }
            partitions.append(entry)
            try:
                if error is not None:
                    raise error
                partition = broker.partition(topic.name, data.index)
                config_max = broker.topics.topics()[topic.name].configs.get("max.message.bytes")
                batch_bytes_max = (
                    int(config_max) if config_max else broker.settings.message_max_bytes
                )
                batches = split_batches(data.records or b"", batch_bytes_max)
                if len(batches) != 1:
                    raise KafkaError(
                        ErrorCode.invalid_record,
                        "Produce requests are only allowed to contain exactly one record "
                        "batch per partition",
                    )
                result = broker.storage.append(partition, batches)
            except KafkaError as exc:
                if exc.code != ErrorCode.unknown_topic_or_partition:
                    log.info(
                        "produce to %s-%d from %s rejected: %s",
                        topic.name,
                        data.index,
                        ctx.peer,
                        exc.message,
                    )
                entry["error_code"] = exc.code
                entry["error_message"] = exc.message
                continue
            except OSError as exc:
                entry["error_code"] = ErrorCode.kafka_storage_error
                entry["error_message"] = str(exc)
                continue
            entry["base_offset"] = result.base_offset
            entry["log_start_offset"] = partition.log_start_offset
            if result.durable is not None:
                pending.append((entry, result.durable))
        topics.append({"name": topic.name, "partition_responses": partitions})
    if request.acks == 0:
        return None

    async def respond() -> Any:
        for entry, durable in pending:
            try:
                await durable
            except OSError as exc:
                entry["error_code"] = ErrorCode.kafka_storage_error
                entry["error_message"] = str(exc)
                entry["base_offset"] = -1
        return ctx.response(throttle_time=0, responses=topics, node_endpoints=[])

    if not pending:
        return await respond()
    return respond()
