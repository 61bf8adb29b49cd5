"""Produce: validate each partition's batch, append, answer once all are durable."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from contextplane.broker.router import RequestContext
from contextplane.errors import KafkaError, ProtocolError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.record_scan import check_payload
from contextplane.protocol.records import BatchHeader, split_batches
from contextplane.storage.engine import AppendResult
from contextplane.storage.partition import PartitionLog

log = logging.getLogger(__name__)


async def produce(ctx: RequestContext, request: Any) -> Any:
    request_error = _request_error(request)
    # Storage back-pressure (WAL backlog, memory budget, full disk): throttle or refuse.
    admission = ctx.broker.storage.admission()
    if request_error is None and admission.refusal is not None:
        request_error = KafkaError(ErrorCode.kafka_storage_error, admission.refusal)
    pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
    topics = []
    failed = False
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
                if request_error is not None:
                    raise request_error
                partition = ctx.broker.partition(topic.name, data.index)
                result = _append(ctx, partition, data.records or b"")
            except KafkaError as exc:
                # Storage refusals are logged once per episode by the storage engine.
                if exc.code not in (
                    ErrorCode.unknown_topic_or_partition,
                    ErrorCode.kafka_storage_error,
                ):
                    log.info(
                        "produce to %s-%d from %s rejected: %s",
                        topic.name,
                        data.index,
                        ctx.peer,
                        exc.message,
                    )
                entry.update(error_code=exc.code, error_message=exc.message)
                failed = True
                continue
            except OSError as exc:
                entry.update(error_code=ErrorCode.kafka_storage_error, error_message=str(exc))
                failed = True
                continue
            entry["base_offset"] = result.base_offset
            entry["log_append_time"] = result.log_append_time
            entry["log_start_offset"] = ctx.broker.partition(
                topic.name, data.index
            ).log_start_offset
            if result.durable is not None:
                pending.append((entry, result.durable))
        topics.append({"name": topic.name, "partition_responses": partitions})
    if request.acks == 0:
        if failed:
            # acks=0 has no response; closing the connection is Kafka's only way to tell
            # the producer that something it sent was rejected.
            raise ProtocolError("acks=0 produce rejected; closing the connection as Kafka does")
        return None

    async def respond() -> Any:
        for entry, durable in pending:
            try:
                await durable
            except OSError as exc:
                entry.update(
                    error_code=ErrorCode.kafka_storage_error, error_message=str(exc), base_offset=-1
                )
        if admission.throttle_ms:
            # Delayed as well as reported (as Kafka did before KIP-219), so a client that
            # ignores throttle_time_ms is slowed all the same.
            await asyncio.sleep(admission.throttle_ms / 1000)
        return ctx.response(
            throttle_time=admission.throttle_ms, responses=topics, node_endpoints=[]
        )

    if not pending and not admission.throttle_ms:
        return await respond()
    return respond()


def _request_error(request: Any) -> KafkaError | None:
    if request.acks not in (-1, 0, 1):
        return KafkaError(ErrorCode.invalid_required_acks)
    if request.transactional_id is not None:
        return KafkaError(ErrorCode.invalid_txn_state, "transactions are not supported yet")
    return None


def _append(ctx: RequestContext, partition: PartitionLog, records: bytes) -> AppendResult:
    broker = ctx.broker
    configs = broker.topics.topics()[partition.topic].configs
    batch_bytes_max = int(configs.get("max.message.bytes", broker.settings.message_max_bytes))
    batches = split_batches(records, batch_bytes_max)
    if len(batches) != 1:
        raise KafkaError(
            ErrorCode.invalid_record,
            "Produce requests are only allowed to contain exactly one record batch per partition",
        )
    header: BatchHeader = batches[0][0]
    try:
        check_payload(header, batches[0][1])
    except ValueError as exc:
        # What Apache Kafka 4.4 answers when a compressed payload cannot be read.
        raise KafkaError(ErrorCode.unknown_server_error, str(exc)) from None
    append_time = ctx.now_ms() if configs.get("message.timestamp.type") == "LogAppendTime" else None
    return broker.storage.append(partition, batches, append_time)
