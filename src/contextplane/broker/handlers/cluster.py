"""ApiVersions, Metadata, DescribeCluster."""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import Iterable
from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.loopshare import LoopShare, is_large
from contextplane.broker.metadata_cache import MetadataCache
from contextplane.broker.topics import validate_topic_name
from contextplane.broker.zone_proxy import client_zone
from contextplane.cluster.forwarder import from_broker
from contextplane.errors import KafkaError
from contextplane.metadata.records import BrokerRecord, TopicRecord
from contextplane.protocol.codec import encode_entity, encode_response, encode_response_with_array
from contextplane.protocol.encoded import count_error, encoded
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import (
    CLUSTER_NAME,
    OPERATIONS_NOT_REQUESTED,
    Operation,
    ResourceType,
)

TOPIC = ResourceType.TOPIC
CLUSTER = ResourceType.CLUSTER
DESCRIBE = Operation.DESCRIBE
CREATE = Operation.CREATE


# Transactions v2 (KIP-890): clients that know it (the Java 4.x producer) use it when
# ApiVersions finalizes transaction.version 2, as Kafka 4.x does by default; the others
# keep the classic protocol (RFC 0002).
# Share groups (KIP-932): share.version 1 (Kafka 4.4 finalizes 2, whose additions are not
# built). The consumer group protocol (KIP-848): group.version 1, as Kafka 4.x finalizes.
# `kafka-features.sh describe` prints these; KRaft's metadata.version and kraft.version
# have no meaning without a quorum (conformance/differences.md).
SUPPORTED_FEATURES: list[dict[str, Any]] = [
    {"name": "group.version", "min_version": 0, "max_version": 1},
    {"name": "transaction.version", "min_version": 0, "max_version": 2},
    {"name": "share.version", "min_version": 0, "max_version": 1},
]
FINALIZED_FEATURES = [
    {"name": "group.version", "max_version_level": 1, "min_version_level": 1},
    {"name": "transaction.version", "max_version_level": 2, "min_version_level": 2},
    {"name": "share.version", "max_version_level": 1, "min_version_level": 1},
]
FINALIZED_FEATURES_EPOCH = 1


def supported_features(version: int) -> list[dict[str, Any]]:
    """Below ApiVersions v4 Kafka leaves out features whose minimum version is 0, which
    older clients cannot parse as a range (KIP-1022)."""
    return [f for f in SUPPORTED_FEATURES if version >= 4 or int(f["min_version"]) > 0]


# ApiVersions' unthrottled response frames, per version: (the advertised list they were
# encoded from, the frame with correlation id 0). Every client asks on every connection.
_api_versions_frames: dict[int, tuple[list[dict[str, int]], bytes]] = {}
_CORRELATION = struct.Struct(">i")


def _addressed_elsewhere(ctx: RequestContext, request: Any) -> ErrorCode | None:
    """ApiVersions v5 (KIP-1242): a client names the cluster id and node id it means to
    reach, both or neither; a broker that is not that node answers REBOOTSTRAP_REQUIRED
    (the address now belongs to another broker), as Kafka does."""
    cluster_id = getattr(request, "cluster_id", None)
    node_id = getattr(request, "node_id", -1)
    if cluster_id is None and node_id == -1:
        return None
    if cluster_id is None or node_id == -1:
        return ErrorCode.invalid_request
    if cluster_id != ctx.cluster.cluster_id or node_id != ctx.cluster.node_id:
        return ErrorCode.rebootstrap_required
    return None


async def api_versions(ctx: RequestContext, request: Any) -> Reply:
    refused = _addressed_elsewhere(ctx, request)
    if refused is not None:
        return ctx.reply(error_code=refused, api_keys=[], throttle_time=ctx.throttle_ms)
    advertised = ctx.cluster.api_versions()
    cached = _api_versions_frames.get(ctx.api_version) if not ctx.throttle_ms else None
    if cached is None or cached[0] is not advertised:
        body = ctx.response(
            error_code=ErrorCode.none,
            api_keys=advertised,
            throttle_time=ctx.throttle_ms,
            supported_features=supported_features(ctx.api_version),
            finalized_features_epoch=FINALIZED_FEATURES_EPOCH,
            finalized_features=FINALIZED_FEATURES,
            zk_migration_ready=False,
        )
        cached = (advertised, encode_response(ctx.header.api_key, ctx.api_version, 0, body))
        if not ctx.throttle_ms:
            _api_versions_frames[ctx.api_version] = cached
    frame = bytearray(cached[1])
    _CORRELATION.pack_into(frame, 4, ctx.header.correlation_id)  # after the size
    # Pre-encoded frame parts; Kafka counts ApiVersions' one error code.
    return Reply(body=encoded([bytes(frame)], {ErrorCode.none: 1}, ctx.throttle_ms))


def live_brokers(ctx: RequestContext) -> list[tuple[int, str, int, str | None]]:
    """(node id, host, port, rack) of every broker offered to the client (`listed`), with
    the endpoint of the listener the request came in on, as Kafka answers."""
    cluster = ctx.cluster
    host, port = ctx.advertised()
    return listed(
        (cluster.node_id, host, port, cluster.rack),
        cluster.registry.brokers,
        ctx.connection.listener,
    )


def listed(
    own: tuple[int, str, int, str | None], brokers: Iterable[BrokerRecord], listener: str
) -> list[tuple[int, str, int, str | None]]:
    """This broker (`own`: with the endpoint the client reached it on) and every other
    live broker with an endpoint of `listener`, by node id. A broker without that
    listener is left out, and so is one not yet bound (registered before its listeners
    bound, with port 0: a client would dial port 0)."""
    entries = [own]
    for broker in brokers:
        endpoint = broker.endpoint(listener)
        if broker.node_id != own[0] and endpoint is not None and broker.bound:
            entries.append((broker.node_id, endpoint.host, endpoint.port, broker.rack))
    entries.sort()
    return entries


def controller_id(ctx: RequestContext) -> int:
    """The controller's node (RFC 0004 §2), as DescribeCluster and DescribeQuorum report it:
    the node holding the controller's lease while its broker is listed; otherwise, as a
    KRaft broker names some live broker, this one (admin requests reach any broker)."""
    cluster = ctx.cluster
    controller = cluster.registry.controller.node_id
    if controller == cluster.node_id or controller in cluster.registry.reachable_ids:
        return controller
    return cluster.node_id


def _broker_entries(ctx: RequestContext) -> list[dict[str, Any]]:
    return [
        {"node_id": node, "host": host, "port": port, "rack": rack}
        for node, host, port, rack in live_brokers(ctx)
    ]


async def metadata(ctx: RequestContext, request: Any) -> Reply:
    requested = request.topics
    if ctx.api_version == 0 and requested == ():
        requested = None  # v0: an empty list means all topics
    cache: MetadataCache | _WithOperations = ctx.services.metadata_cache
    with_operations = getattr(request, "include_topic_authorized_operations", False)
    if with_operations:
        cache = _WithOperations(ctx, cache)
    # Kafka's errorCounts(): each topic's error code and each of its partitions'.
    errors: dict[int, int] = {}
    zone = client_zone(ctx)  # "" unless the zone writes' proxy lists stand-in leaders
    if requested is None:
        items, count = await _all_topics(ctx, cache, errors, zone)
    else:
        auto_create = getattr(request, "allow_auto_topic_creation", True)
        if not from_broker(ctx):
            # A peer asks whether a topic change reached this broker's own view
            # (broker/topic_propagation.py): a store lookup would answer for it.
            await ctx.topics.find_missing(wanted.name for wanted in requested)
        if auto_create:
            # Auto-creation first: it changes the topic table the cached entries come from.
            await _auto_create(ctx, requested)
        share = LoopShare()
        ranked = []
        for wanted in requested:
            if share.due():
                await asyncio.sleep(0)
            ranked.append(_resolve(ctx, wanted, auto_create))
        if any(rank for rank, _ in ranked):
            # Kafka lists refused topics last: those refused CREATE, then those refused
            # DESCRIBE.
            ranked.sort(key=lambda pair: pair[0])
        resolved = [entry for _, entry in ranked]
        failed = [r for r in resolved if isinstance(r, dict)]
        if with_operations:
            for entry in failed:
                if entry["error_code"] != ErrorCode.topic_authorization_failed and entry["name"]:
                    entry["topic_authorized_operations"] = ctx.authorized_operations(
                        TOPIC, entry["name"]
                    )
        refused_entries: list[bytes] = []
        if is_large(len(failed)):
            refused_entries = await asyncio.to_thread(_encoded_errors, ctx, failed)
        elif failed:  # (building even an empty response costs more than the lookups)
            refused_entries = _encoded_errors(ctx, failed)
        failures = iter(refused_entries)
        parts = []
        for r in resolved:
            if share.due():
                await asyncio.sleep(0)
            if isinstance(r, dict):
                parts.append(next(failures))
                count_error(errors, r["error_code"])  # (an unknown topic: no partitions)
            else:
                parts.append(cache.topic(ctx.api_version, ctx.response, r, zone))
                ctx.services.metadata_cache.count_errors(r, errors)
        items = b"".join(parts)
        count = len(resolved)
    outer = _metadata_outer(ctx, getattr(request, "include_cluster_authorized_operations", False))
    # Pre-encoded frame parts: the cached topic entries are spliced in as bytes.
    frame = encode_response_with_array(
        ctx.header.api_key, ctx.header.correlation_id, outer, "topics", items, count
    )
    return Reply(body=encoded(frame, errors, ctx.throttle_ms))


class _WithOperations:
    """Topic entries carrying the principal's authorized-operations bit set: built per
    request (only clients that ask pay for it), never from or into the shared cache."""

    def __init__(self, ctx: RequestContext, cache: MetadataCache) -> None:
        self._ctx = ctx
        self._cache = cache

    def topic(self, version: int, build: Any, record: TopicRecord, zone: str = "") -> bytes:
        operations = self._ctx.authorized_operations(TOPIC, record.name)
        return self._cache.topic_with_operations(version, build, record, operations, zone)


async def _all_topics(
    ctx: RequestContext,
    cache: MetadataCache | _WithOperations,
    errors: dict[int, int],
    zone: str = "",
) -> tuple[bytes, int]:
    """The encoded entries of every topic the principal may describe, and their count;
    their error codes are added to `errors`."""
    if not ctx.verdicts and isinstance(cache, MetadataCache):
        # No authorizer (or no topic): every topic, from the cache's joined list.
        return _counted(cache.all_topics(ctx.api_version, ctx.response, zone), errors)
    records = ctx.topics.topics()
    share = LoopShare()
    describable = []
    for name, record in records.items():
        if share.due():
            await asyncio.sleep(0)
        if ctx.allowed(DESCRIBE, TOPIC, name):
            describable.append(record)
    if len(describable) == len(records) and isinstance(cache, MetadataCache):
        return _counted(cache.all_topics(ctx.api_version, ctx.response, zone), errors)
    # The topics the principal may not describe are left out, as Kafka does; entries
    # with authorized operations are built one by one, sharing the loop.
    parts = []
    for record in describable:
        if share.due():
            await asyncio.sleep(0)
        parts.append(cache.topic(ctx.api_version, ctx.response, record, zone))
        ctx.services.metadata_cache.count_errors(record, errors)
    return b"".join(parts), len(describable)


def _counted(
    joined: tuple[bytes, int, dict[int, int]], errors: dict[int, int]
) -> tuple[bytes, int]:
    for code, times in joined[2].items():
        count_error(errors, code, times)
    return joined[0], joined[1]


async def _auto_create(ctx: RequestContext, requested: Any) -> None:
    """Create the unknown topics a Metadata request names, all at once (Kafka's broker
    sends them to its controller as one CreateTopics)."""
    known = ctx.topics.topics()
    # Only the topics the principal may describe and create (on the cluster or the topic).
    unknown = [
        w.name
        for w in requested
        if getattr(w, "name", None) is not None
        and w.name not in known
        and not ctx.denied(TOPIC, w.name, DESCRIBE)
        and not ctx.denied(TOPIC, w.name, CREATE)
    ]
    if not unknown:
        return
    for name in await ctx.topics.auto_create_many(unknown):
        ctx.audit.record(ctx, "Metadata", "topic", name, details={"change": "auto-create"})


# Metadata's response without its topics, unthrottled, per (version, listener, advertised
# address, cluster id, node id, registry generation): the same for every request until
# the live brokers change, and frozen.
_metadata_outers: dict[tuple[int, str, tuple[str, int], str, int, int], Any] = {}
_METADATA_OUTERS_MAX = 64


def _metadata_outer(ctx: RequestContext, with_operations: bool = False) -> Any:
    cluster = ctx.cluster
    key = (
        ctx.api_version,
        ctx.connection.listener,
        ctx.advertised(),
        cluster.cluster_id,
        cluster.node_id,
        cluster.registry.generation,
    )
    cacheable = not ctx.throttle_ms and not with_operations
    outer = _metadata_outers.get(key) if cacheable else None
    if outer is None:
        outer = ctx.response(
            throttle_time=ctx.throttle_ms,
            brokers=_broker_entries(ctx),
            cluster_id=cluster.cluster_id,
            # As a KRaft broker answers (a live broker for the admin requests it forwards,
            # not the quorum's leader): this one, which the client just reached and which
            # takes every admin request. Naming the controller's lease holder sent
            # librdkafka's admin requests to it for as long as its lease outlived a kill
            # -9, reconnecting in a loop (DescribeTopics timed out after 30 s).
            controller_id=cluster.node_id,
            topics=[],
            cluster_authorized_operations=_cluster_operations(ctx)
            if with_operations
            else OPERATIONS_NOT_REQUESTED,
        )
        if cacheable:
            if len(_metadata_outers) >= _METADATA_OUTERS_MAX:
                _metadata_outers.clear()  # entries of earlier registry generations
            _metadata_outers[key] = outer
    return outer


def _cluster_operations(ctx: RequestContext) -> int:
    """The cluster's bit set, as Kafka reports it: 0 without DESCRIBE on the cluster."""
    if not ctx.allowed(DESCRIBE, CLUSTER, CLUSTER_NAME):
        return 0
    return ctx.authorized_operations(CLUSTER, CLUSTER_NAME)


def _encoded_errors(ctx: RequestContext, failed: list[dict[str, Any]]) -> list[bytes]:
    """The encoded entries of the topics a Metadata request names in vain (pure)."""
    return [encode_entity(entry) for entry in ctx.response(topics=failed).topics]


def _refused(name: str | None, topic_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "error_code": ErrorCode.topic_authorization_failed,
        "name": name,
        "topic_id": topic_id or uuid.UUID(int=0),
        "partitions": [],
        "is_internal": False,
    }


def _resolve(
    ctx: RequestContext, wanted: Any, auto_create: bool
) -> tuple[int, TopicRecord | dict[str, Any]]:
    """The topic a Metadata request names (by name or id), or its error entry, ranked
    0, or 1 when refused CREATE, 2 when refused DESCRIBE."""
    topics = ctx.topics
    name = getattr(wanted, "name", None)
    topic_id = getattr(wanted, "topic_id", None)
    # By id when one is given: the Java client leaves the name at its default "" then
    # (its regex subscriptions learn topics by id), and Kafka ignores it.
    if not name and topic_id is not None and topic_id.int != 0:
        record = topics.by_id(topic_id.bytes)
        if record is None:
            return 0, {
                "error_code": ErrorCode.unknown_topic_id,
                "name": None,
                "topic_id": topic_id,
                "partitions": [],
            }
        if ctx.denied(TOPIC, record.name, DESCRIBE):
            return 2, _refused(None, topic_id)  # topic ids are not secret, names are
        return 0, record
    if name is not None and ctx.denied(TOPIC, name, DESCRIBE):
        return 2, _refused(name)  # whether it exists is not disclosed
    try:
        validate_topic_name(name)
    except KafkaError as exc:
        return 0, {"error_code": exc.code, "name": name, "partitions": [], "is_internal": False}
    record = topics.topics().get(name)
    creatable = auto_create and ctx.settings.auto_create_topics_enable
    if record is None and creatable and ctx.denied(TOPIC, name, CREATE):
        return 1, _refused(name)
    if record is None:
        return 0, {
            "error_code": ErrorCode.unknown_topic_or_partition,
            "name": name,
            "topic_id": uuid.UUID(int=0),
            "partitions": [],
            "is_internal": False,
        }
    return 0, record


# DescribeCluster's endpoint types (KIP-919): a broker answers only for its own kind.
BROKER_ENDPOINT, CONTROLLER_ENDPOINT = 1, 2


def _endpoint_type_error(endpoint_type: int) -> tuple[ErrorCode, str] | None:
    """Kafka's answer to a DescribeCluster for another kind of endpoint (v1+)."""
    if endpoint_type == BROKER_ENDPOINT:
        return None
    if endpoint_type == CONTROLLER_ENDPOINT:
        return (
            ErrorCode.mismatched_endpoint_type,
            "The request was sent to an endpoint of type BROKER, "
            "but we wanted an endpoint of type CONTROLLER",
        )
    return ErrorCode.unsupported_endpoint_type, f"Unsupported endpoint type {endpoint_type}"


async def describe_cluster(ctx: RequestContext, request: Any) -> Reply:
    refused = _endpoint_type_error(getattr(request, "endpoint_type", BROKER_ENDPOINT))
    if refused is not None:
        error_code, message = refused
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=error_code,
            error_message=message,
            endpoint_type=BROKER_ENDPOINT,
            cluster_id="",
            controller_id=-1,
            brokers=[],
            cluster_authorized_operations=OPERATIONS_NOT_REQUESTED,
        )
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        error_message=None,
        endpoint_type=BROKER_ENDPOINT,
        cluster_id=ctx.cluster.cluster_id,
        controller_id=controller_id(ctx),
        # The live brokers, never fenced: an expired lease is unlisted, not fenced, so
        # IncludeFencedBrokers (v2) lists the same.
        brokers=[
            {"broker_id": node, "host": host, "port": port, "rack": rack, "is_fenced": False}
            for node, host, port, rack in live_brokers(ctx)
        ],
        cluster_authorized_operations=_cluster_operations(ctx)
        if request.include_cluster_authorized_operations
        else OPERATIONS_NOT_REQUESTED,
    )
