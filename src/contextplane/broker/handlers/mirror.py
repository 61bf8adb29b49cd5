"""MirrorAppend (contextplane's own API, protocol/mirror_append.py): record batches
copied from another cluster appended at the offsets they had there, for
`contextplane mirror`. Allowed to a principal with ALTER on the cluster
(broker/authorization.py); each batch's header and CRC are checked as Produce checks
them, its records are not rewritten. The response waits until every batch is durable,
then gives each partition's log end offset."""

from __future__ import annotations

import asyncio
from typing import Any

from contextplane.broker import authorization as authz
from contextplane.broker.configs import topic_config
from contextplane.broker.context import Reply, RequestContext, later
from contextplane.broker.handlers.produce import ACK_WAIT_MIN_MS
from contextplane.broker.internal_topics import is_internal
from contextplane.broker.pipeline import Route
from contextplane.errors import KafkaError
from contextplane.java_numbers import stored_int
from contextplane.protocol.codec import MIRROR_APPEND_KEY
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import split_batches
from contextplane.services.schema_registry.records import SCHEMAS_TOPIC

PARTITIONS_MAX = 10_000  # per request: the mirror sends one fetch's worth


async def mirror_append(ctx: RequestContext, request: Any) -> Reply:
    entries: list[tuple[dict[str, Any], Any, list[asyncio.Future[None]]]] = []
    topics = []
    count = sum(len(t.partitions) for t in request.topics)
    for topic in request.topics:
        partitions = []
        for data in topic.partitions:
            entry: dict[str, Any] = {
                "index": data.index,
                "error_code": ErrorCode.none,
                "error_message": None,
                "log_end_offset": -1,
            }
            partitions.append(entry)
            try:
                if count > PARTITIONS_MAX:
                    raise KafkaError(
                        ErrorCode.invalid_request,
                        f"{count} partitions in one request; at most {PARTITIONS_MAX}",
                    )
                waits = _append(ctx, topic.name, data.index, data.records or b"")
                entries.append((entry, ctx.log.partition(topic.name, data.index), waits))
            except KafkaError as exc:
                entry.update(error_code=exc.code, error_message=exc.message)
        topics.append({"name": topic.name, "partitions": partitions})
    wait_s = max(request.timeout.total_seconds(), ACK_WAIT_MIN_MS / 1000)

    async def respond() -> Any:
        for entry, partition, waits in entries:
            try:
                async with asyncio.timeout(wait_s):
                    for durable in waits:
                        await asyncio.shield(durable)
                entry["log_end_offset"] = partition.high_watermark
            except TimeoutError:
                entry.update(
                    error_code=ErrorCode.request_timed_out,
                    error_message="the write was not durable within the request's timeout",
                )
            except KafkaError as exc:
                entry.update(error_code=exc.code, error_message=exc.message)
            except OSError as exc:
                entry.update(error_code=ErrorCode.kafka_storage_error, error_message=str(exc))
        return ctx.response(throttle_time=0, topics=topics)

    return later(respond())


def _append(ctx: RequestContext, topic: str, index: int, records: bytes) -> list[Any]:
    """Append one partition's batches; the futures of their durability."""
    if _refused_target(topic):
        raise KafkaError(ErrorCode.invalid_topic_exception, f"{topic} is internal")
    partition = ctx.log.partition(topic, index)  # UNKNOWN_TOPIC_OR_PARTITION if not led here
    configs = ctx.topics.topics()[topic].configs
    batch_bytes_max = stored_int(topic_config(configs, "max.message.bytes", ctx.settings))
    admission = ctx.log.admission()
    if admission.refusal is not None:
        raise KafkaError(ErrorCode.kafka_storage_error, admission.refusal)
    waits = []
    for header, batch in split_batches(records, batch_bytes_max, sparse=True):
        result = ctx.log.mirror_append(partition, header, batch)
        ctx.services.stats.produced(topic, header.records_count, len(batch))  # bytes in
        if result.durable is not None:
            waits.append(result.durable)
    return waits


def _refused_target(topic: str) -> bool:
    """Topics a mirror must not write: the broker's own, any `__`-named one (Kafka's and
    contextplane's state: the mirror's progress, masking policies; `contextplane mirror`
    skips them too) and the schema registry's, whose schema ids are this cluster's."""
    return is_internal(topic) or topic.startswith("__") or topic == SCHEMAS_TOPIC


# Served, not advertised in ApiVersions (protocol/mirror_append.py).
ROUTE = Route(
    MIRROR_APPEND_KEY,
    0,
    0,
    mirror_append,
    authz.mirror_append,
    authz.refuse_mirror_append,
    advertised=False,
)
