"""ApiVersions, Metadata, DescribeCluster."""

from __future__ import annotations

import uuid
from typing import Any

from contextplane.broker.router import RequestContext
from contextplane.broker.topics import validate_topic_name
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode


async def api_versions(ctx: RequestContext, request: Any) -> Any:
    return ctx.response(
        error_code=ErrorCode.none,
        api_keys=ctx.broker.router.api_versions(),
        throttle_time=0,
        supported_features=[],
        finalized_features_epoch=-1,
        finalized_features=[],
        zk_migration_ready=False,
    )


def _broker_entries(ctx: RequestContext) -> list[dict[str, Any]]:
    host, port = ctx.broker.advertised
    return [{"node_id": ctx.broker.settings.node_id, "host": host, "port": port, "rack": None}]


async def metadata(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    topics_manager = broker.topics
    requested = request.topics
    if ctx.api_version == 0 and requested == ():
        requested = None  # v0: an empty list means all topics
    auto_create = getattr(request, "allow_auto_topic_creation", True)
    entries: list[dict[str, Any]] = []
    if requested is None:
        for record in topics_manager.topics().values():
            entries.append(_topic_entry(ctx, record.name))
    else:
        for wanted in requested:
            name = getattr(wanted, "name", None)
            topic_id = getattr(wanted, "topic_id", None)
            if name is None and topic_id is not None and topic_id.int != 0:
                record = topics_manager.by_id(topic_id.bytes)
                if record is None:
                    entries.append(
                        {
                            "error_code": ErrorCode.unknown_topic_id,
                            "name": None,
                            "topic_id": topic_id,
                            "partitions": [],
                        }
                    )
                    continue
                name = record.name
            entries.append(_topic_entry(ctx, name, auto_create))
    host_id = ctx.broker.settings.node_id
    return ctx.response(
        throttle_time=0,
        brokers=_broker_entries(ctx),
        cluster_id=broker.cluster_id,
        controller_id=host_id,
        topics=entries,
        cluster_authorized_operations=-2147483648,
    )


def _topic_entry(ctx: RequestContext, name: str, auto_create: bool = False) -> dict[str, Any]:
    broker = ctx.broker
    try:
        validate_topic_name(name)
    except KafkaError as exc:
        return {"error_code": exc.code, "name": name, "partitions": [], "is_internal": False}
    record = broker.topics.topics().get(name)
    if record is None and auto_create:
        record = broker.topics.auto_create(name)
    if record is None:
        return {
            "error_code": ErrorCode.unknown_topic_or_partition,
            "name": name,
            "topic_id": uuid.UUID(int=0),
            "partitions": [],
            "is_internal": False,
        }
    node = broker.settings.node_id
    partitions = []
    for index in range(record.partitions):
        partition = broker.storage.partitions.get((name, index))
        partitions.append(
            {
                "error_code": ErrorCode.none,
                "partition_index": index,
                "leader_id": node,
                "leader_epoch": partition.leader_epoch if partition else 0,
                "replica_nodes": [node],
                "isr_nodes": [node],
                "offline_replicas": [],
            }
        )
    return {
        "error_code": ErrorCode.none,
        "name": name,
        "topic_id": uuid.UUID(bytes=record.topic_id),
        "is_internal": False,
        "partitions": partitions,
        "topic_authorized_operations": -2147483648,
    }


async def describe_cluster(ctx: RequestContext, request: Any) -> Any:
    host, port = ctx.broker.advertised
    return ctx.response(
        throttle_time=0,
        error_code=ErrorCode.none,
        error_message=None,
        endpoint_type=1,
        cluster_id=ctx.broker.cluster_id,
        controller_id=ctx.broker.settings.node_id,
        brokers=[
            {"broker_id": ctx.broker.settings.node_id, "host": host, "port": port, "rack": None}
        ],
        cluster_authorized_operations=-2147483648,
    )
