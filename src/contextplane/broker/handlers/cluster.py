"""ApiVersions, Metadata, DescribeCluster."""

from __future__ import annotations

import uuid
import weakref
from typing import Any

from contextplane.broker.router import RequestContext
from contextplane.broker.topics import TopicManager, validate_topic_name
from contextplane.errors import KafkaError
from contextplane.logsafe import audit
from contextplane.metadata.store import TopicRecord
from contextplane.protocol.codec import encode_entity, encode_response_with_array
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


class MetadataCache:
    """Encoded Metadata topic entries, per API version: with many partitions they are
    nearly the whole response, and building and encoding them per request kept every
    other connection waiting. An entry is made from the topic's name, id and partition
    count (leader epochs change only when partitions are opened, which changes the count
    or the id too), so it is kept until those change; the list of every topic is
    re-joined whenever the topic table changes."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, str], tuple[tuple[bytes, int], bytes]] = {}
        self._all: dict[int, tuple[bytes, int]] = {}
        self._generation = -1

    def topic(self, ctx: RequestContext, record: TopicRecord) -> bytes:
        self._sync(ctx.broker.topics)
        if not self._holds(ctx.api_version, record):
            self._encode(ctx, [record])
        return self._entries[(ctx.api_version, record.name)][1]

    def all_topics(self, ctx: RequestContext) -> tuple[bytes, int]:
        """Every topic's entry, joined, and how many there are."""
        self._sync(ctx.broker.topics)
        cached = self._all.get(ctx.api_version)
        if cached is None:
            records = list(ctx.broker.topics.topics().values())
            missing = [r for r in records if not self._holds(ctx.api_version, r)]
            if missing:
                self._encode(ctx, missing)
            blob = b"".join(self._entries[(ctx.api_version, r.name)][1] for r in records)
            cached = self._all[ctx.api_version] = (blob, len(records))
        return cached

    def _sync(self, topics: TopicManager) -> None:
        if topics.generation == self._generation:
            return
        self._generation = topics.generation
        self._all.clear()
        current = topics.topics()
        for key, (identity, _) in list(self._entries.items()):
            record = current.get(key[1])
            if record is None or _identity(record) != identity:
                del self._entries[key]

    def _holds(self, version: int, record: TopicRecord) -> bool:
        cached = self._entries.get((version, record.name))
        return cached is not None and cached[0] == _identity(record)

    def _encode(self, ctx: RequestContext, records: list[TopicRecord]) -> None:
        built = ctx.response(topics=[_topic_entry(ctx, r) for r in records]).topics
        for record, entity in zip(records, built, strict=True):
            entry = (_identity(record), encode_entity(entity))
            self._entries[(ctx.api_version, record.name)] = entry


def _identity(record: TopicRecord) -> tuple[bytes, int]:
    """What a topic's Metadata entry is made from, besides its name."""
    return record.topic_id, record.partitions


_caches: weakref.WeakKeyDictionary[Any, MetadataCache] = weakref.WeakKeyDictionary()


def metadata_cache(broker: Any) -> MetadataCache:
    cache = _caches.get(broker)
    if cache is None:
        cache = _caches[broker] = MetadataCache()
    return cache


async def metadata(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    requested = request.topics
    if ctx.api_version == 0 and requested == ():
        requested = None  # v0: an empty list means all topics
    cache = metadata_cache(broker)
    if requested is None:
        items, count = cache.all_topics(ctx)
    else:
        auto_create = getattr(request, "allow_auto_topic_creation", True)
        # Auto-creation first: it changes the topic table the cached entries come from.
        resolved = [_resolve(ctx, wanted, auto_create) for wanted in requested]
        errors = iter(ctx.response(topics=[r for r in resolved if isinstance(r, dict)]).topics)
        items = b"".join(
            encode_entity(next(errors)) if isinstance(r, dict) else cache.topic(ctx, r)
            for r in resolved
        )
        count = len(resolved)
    host_id = broker.settings.node_id
    outer = ctx.response(
        throttle_time=0,
        brokers=_broker_entries(ctx),
        cluster_id=broker.cluster_id,
        controller_id=host_id,
        topics=[],
        cluster_authorized_operations=-2147483648,
    )
    return encode_response_with_array(
        ctx.header.api_key, ctx.header.correlation_id, outer, "topics", items, count
    )


def _resolve(ctx: RequestContext, wanted: Any, auto_create: bool) -> TopicRecord | dict[str, Any]:
    """The topic a Metadata request names (by name or id), or its error entry."""
    topics = ctx.broker.topics
    name = getattr(wanted, "name", None)
    topic_id = getattr(wanted, "topic_id", None)
    if name is None and topic_id is not None and topic_id.int != 0:
        record = topics.by_id(topic_id.bytes)
        if record is None:
            return {
                "error_code": ErrorCode.unknown_topic_id,
                "name": None,
                "topic_id": topic_id,
                "partitions": [],
            }
        return record
    try:
        validate_topic_name(name)
    except KafkaError as exc:
        return {"error_code": exc.code, "name": name, "partitions": [], "is_internal": False}
    record = topics.topics().get(name)
    if record is None and auto_create:
        record = topics.auto_create(name)
        if record is not None:
            audit(ctx, "Metadata", "topic", name, details={"change": "auto-create"})
    if record is None:
        return {
            "error_code": ErrorCode.unknown_topic_or_partition,
            "name": name,
            "topic_id": uuid.UUID(int=0),
            "partitions": [],
            "is_internal": False,
        }
    return record


def _topic_entry(ctx: RequestContext, record: TopicRecord) -> dict[str, Any]:
    broker = ctx.broker
    node = broker.settings.node_id
    partitions = []
    for index in range(record.partitions):
        partition = broker.storage.partitions.get((record.name, index))
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
        "name": record.name,
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
