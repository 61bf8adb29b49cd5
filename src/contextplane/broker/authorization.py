"""What each API needs authorized, declared per route, with Kafka's operations.

A route's `needs(ctx, request)` returns a `Needs`: the actions its request names, which
the pipeline's authorize stage puts to the authorizer in one call before the handler
runs. Two kinds:

* `gate`: the whole request is refused when it is denied (Kafka answers these with the
  request's error response, e.g. CLUSTER_AUTHORIZATION_FAILED for CreateAcls without
  ALTER on the cluster, GROUP_AUTHORIZATION_FAILED for JoinGroup without READ on the
  group). The pipeline answers, with the route's `refuse` shape when the response has
  no top-level error.
* `resources`: per-resource needs; the handler asks `ctx.denied(type, name)` and answers
  that resource with `denial_error(type)`, as Kafka's KafkaApis does. A need may name an
  alternative that grants it too (CREATE on the cluster for CREATE on a topic).
* `quiet`: decisions a handler uses to filter without an error and without an audit
  line (Metadata of all topics, ListGroups, OffsetFetch of all topics), as Kafka filters
  them with logIfDenied=false.

The table follows Kafka's KafkaApis and AuthHelper (4.4): Produce WRITE topic; Fetch READ
topic; ListOffsets, Metadata DESCRIBE topic; OffsetCommit READ group, READ topic; ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from contextplane.cluster.forwarder import from_live_peer
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import (
    CLUSTER_NAME,
    SUPPORTED_OPERATIONS,
    Operation,
    ResourceType,
)
from contextplane.security.authorizer import Action

if TYPE_CHECKING:
    from contextplane.broker.context import Reply, RequestContext

Op = Operation
TOPIC = ResourceType.TOPIC
GROUP = ResourceType.GROUP
CLUSTER = ResourceType.CLUSTER
TXN = ResourceType.TRANSACTIONAL_ID

Refusal = Callable[["RequestContext", Any, ErrorCode], "Reply"]


@dataclass(frozen=True, slots=True)
class Need:
    """`action` is needed unless `unless` is allowed."""

    action: Action
    unless: Action | None = None


@dataclass(frozen=True, slots=True)
class Gate:
    """The whole request needs one of `any_of` (or, with `any_of_type`, the operation on
    at least one resource of that type: Kafka's authorizeByResourceType)."""

    any_of: tuple[Action, ...]
    error: ErrorCode
    any_of_type: tuple[Operation, ResourceType] | None = None


@dataclass(slots=True)
class Needs:
    gate: Gate | None = None
    resources: list[Need] = field(default_factory=list)
    quiet: list[Action] = field(default_factory=list)


NOTHING = Needs()

NeedsOf = Callable[["RequestContext", Any], Needs]


def nothing(ctx: RequestContext, request: Any) -> Needs:
    """ApiVersions, SaslHandshake, SaslAuthenticate: open to every principal, as in
    Kafka."""
    return NOTHING


def _cluster(operation: Operation) -> Action:
    return Action(operation, CLUSTER, CLUSTER_NAME)


def _each(operation: Operation, resource_type: ResourceType, names: Iterable[str | None]) -> Needs:
    seen = dict.fromkeys(n for n in names if n is not None)
    return Needs(resources=[Need(Action(operation, resource_type, n)) for n in seen])


def _group_gate(operation: Operation, group_id: str) -> Gate:
    return Gate((Action(operation, GROUP, group_id),), ErrorCode.group_authorization_failed)


# -- produce and fetch ----------------------------------------------------------------


def produce(ctx: RequestContext, request: Any) -> Needs:
    names = topic_names(ctx, request.topic_data, by_id=ctx.api_version >= 13)
    needs = _each(Op.WRITE, TOPIC, names)
    if from_live_peer(ctx):
        # A live peer's own writes (cluster/forwarder.py): CLUSTER_ACTION on the cluster,
        # granted to its principal itself, grants them, as Kafka's inter-broker
        # principal; the handler also asks it for the audit topics, which no client may
        # write. A client naming a broker without that grant keeps its topic ACLs.
        action = _cluster(Op.CLUSTER_ACTION)
        needs.resources = [Need(need.action, unless=action) for need in needs.resources]
        needs.quiet.append(action)
    if request.transactional_id is not None:
        needs.gate = Gate(
            (Action(Op.WRITE, TXN, request.transactional_id),),
            ErrorCode.transactional_id_authorization_failed,
        )
    return needs


def fetch(ctx: RequestContext, request: Any) -> Needs:
    names = []
    for topic in request.topics:
        name = getattr(topic, "topic", None)
        topic_id = getattr(topic, "topic_id", None)
        if name is None and topic_id is not None:
            record = ctx.topics.by_id(topic_id.bytes)
            name = record.name if record is not None else None
        names.append(name)
    return _each(Op.READ, TOPIC, names)


def list_offsets(ctx: RequestContext, request: Any) -> Needs:
    return _each(Op.DESCRIBE, TOPIC, (t.name for t in request.topics))


def delete_records(ctx: RequestContext, request: Any) -> Needs:
    return _each(Op.DELETE, TOPIC, (t.name for t in request.topics))


# -- metadata -------------------------------------------------------------------------


def operations_of(resource_type: ResourceType, names: Iterable[str]) -> list[Action]:
    """The quiet decisions an authorized-operations bit set is made of."""
    operations = SUPPORTED_OPERATIONS[resource_type]
    return [Action(op, resource_type, name) for name in names for op in operations]


def _metadata_operations(request: Any, topics: Iterable[str]) -> list[Action]:
    """Metadata v8+ may ask for the topics' and (v8-10) the cluster's bit sets; Kafka
    reports the cluster's only with DESCRIBE on it (which the cluster set includes)."""
    quiet = []
    if getattr(request, "include_topic_authorized_operations", False):
        quiet.extend(operations_of(TOPIC, topics))
    if getattr(request, "include_cluster_authorized_operations", False):
        quiet.extend(operations_of(CLUSTER, [CLUSTER_NAME]))
    return quiet


def describe_cluster(ctx: RequestContext, request: Any) -> Needs:
    """Open to every principal; the cluster's bit set when asked for (as Metadata's)."""
    if not getattr(request, "include_cluster_authorized_operations", False):
        return NOTHING
    return Needs(quiet=operations_of(CLUSTER, [CLUSTER_NAME]))


def metadata(ctx: RequestContext, request: Any) -> Needs:
    requested = request.topics
    if requested is None or (ctx.api_version == 0 and requested == ()):
        # All topics: the ones the principal may not describe are left out, silently.
        every = ctx.topics.topics()
        quiet = [Action(Op.DESCRIBE, TOPIC, name) for name in every]
        return Needs(quiet=quiet + _metadata_operations(request, every))
    existing = ctx.topics.topics()
    names = []
    for wanted in requested:
        name = getattr(wanted, "name", None)
        topic_id = getattr(wanted, "topic_id", None)
        # By id as the handler resolves it: no name or the Java client's default "".
        if not name and topic_id is not None and topic_id.int != 0:
            record = ctx.topics.by_id(topic_id.bytes)
            name = record.name if record is not None else None
        names.append(name)
    needs = _each(Op.DESCRIBE, TOPIC, names)
    if getattr(request, "allow_auto_topic_creation", True) and (
        ctx.settings.auto_create_topics_enable
    ):
        # Auto-creation needs CREATE on the cluster or on the topic.
        for name in dict.fromkeys(n for n in names if n is not None and n not in existing):
            needs.resources.append(Need(Action(Op.CREATE, TOPIC, name), unless=_cluster(Op.CREATE)))
    needs.quiet.extend(_metadata_operations(request, dict.fromkeys(n for n in names if n)))
    return needs


# -- groups ---------------------------------------------------------------------------


def find_coordinator(ctx: RequestContext, request: Any) -> Needs:
    key_type = getattr(request, "key_type", 0)
    keys = request.coordinator_keys if ctx.api_version >= 4 else (request.key,)
    if key_type == 0:
        return _each(Op.DESCRIBE, GROUP, keys)
    if key_type == 1:
        return _each(Op.DESCRIBE, TXN, keys)
    return NOTHING


def group_member(ctx: RequestContext, request: Any) -> Needs:
    """JoinGroup, SyncGroup, Heartbeat, LeaveGroup: READ on the group."""
    return Needs(gate=_group_gate(Op.READ, request.group_id))


def consumer_group_heartbeat(ctx: RequestContext, request: Any) -> Needs:
    """READ on the group; DESCRIBE on every topic the member subscribes to by name (Kafka
    4.4's KafkaApis answers TOPIC_AUTHORIZATION_FAILED if one is denied, whether or not it
    exists). A regex's matches are filtered by the handler, quietly, once known."""
    needs = _each(Op.DESCRIBE, TOPIC, request.subscribed_topic_names or ())
    needs.gate = _group_gate(Op.READ, request.group_id)
    return needs


def share_group_heartbeat(ctx: RequestContext, request: Any) -> Needs:
    """READ on the group; DESCRIBE on every topic the member subscribes to, as
    ConsumerGroupHeartbeat (Kafka 4.4's KafkaApis answers TOPIC_AUTHORIZATION_FAILED, the
    code alone, if one is denied, whether or not it exists)."""
    needs = _each(Op.DESCRIBE, TOPIC, request.subscribed_topic_names or ())
    needs.gate = _group_gate(Op.READ, request.group_id)
    return needs


def share_group_member(ctx: RequestContext, request: Any) -> Needs:
    """ShareFetch, ShareAcknowledge: READ on the group, and READ on each topic (the
    handler answers TOPIC_AUTHORIZATION_FAILED per partition of a refused one)."""
    needs = _each(Op.READ, TOPIC, topic_names(ctx, request.topics, by_id=True))
    needs.gate = _group_gate(Op.READ, request.group_id or "")
    return needs


def topic_names(ctx: RequestContext, topics: Any, by_id: bool) -> list[str | None]:
    """The names of the requested topics; requests that name topics by id resolve them
    (None for an id no topic has: it needs nothing, the handler answers
    UNKNOWN_TOPIC_ID)."""
    return [name for _, name in ctx.topics.names_of(topics, by_id)]


def offset_commit(ctx: RequestContext, request: Any) -> Needs:
    names = topic_names(ctx, request.topics, by_id=ctx.api_version >= 10)
    needs = _each(Op.READ, TOPIC, names)
    needs.gate = _group_gate(Op.READ, request.group_id)
    return needs


def offset_fetch(ctx: RequestContext, request: Any) -> Needs:
    if ctx.api_version >= 8:
        groups = [(g.group_id, g.topics) for g in request.groups]
    else:
        groups = [(request.group_id, request.topics)]
    needs = _each(Op.DESCRIBE, GROUP, (g for g, _ in groups))
    every_topic = False
    for _, topics in groups:
        if topics is None:
            every_topic = True
        else:
            names = topic_names(ctx, topics, by_id=ctx.api_version >= 10)
            needs.resources.extend(_each(Op.DESCRIBE, TOPIC, names).resources)
    if every_topic:
        needs.quiet = [Action(Op.DESCRIBE, TOPIC, name) for name in ctx.topics.topics()]
    return needs


def offset_delete(ctx: RequestContext, request: Any) -> Needs:
    needs = _each(Op.READ, TOPIC, (t.name for t in request.topics))
    needs.gate = _group_gate(Op.DELETE, request.group_id)
    return needs


def describe_share_offsets(ctx: RequestContext, request: Any) -> Needs:
    """DESCRIBE on each group; DESCRIBE on each named topic (TOPIC_AUTHORIZATION_FAILED
    per partition); topics=null lists only the describable topics, quietly."""
    needs = _each(Op.DESCRIBE, GROUP, (g.group_id for g in request.groups))
    named = [t.topic_name for g in request.groups if g.topics is not None for t in g.topics]
    needs.resources.extend(_each(Op.DESCRIBE, TOPIC, named).resources)
    if any(g.topics is None for g in request.groups):
        needs.quiet = [Action(Op.DESCRIBE, TOPIC, name) for name in ctx.topics.topics()]
    return needs


def alter_share_offsets(ctx: RequestContext, request: Any) -> Needs:
    """READ on the group (the whole request), READ on each topic."""
    needs = _each(Op.READ, TOPIC, (t.topic_name for t in request.topics))
    needs.gate = _group_gate(Op.READ, request.group_id)
    return needs


def delete_share_offsets(ctx: RequestContext, request: Any) -> Needs:
    """DELETE on the group (the whole request), READ on each topic."""
    needs = _each(Op.READ, TOPIC, (t.topic_name for t in request.topics))
    needs.gate = _group_gate(Op.DELETE, request.group_id)
    return needs


def describe_groups(ctx: RequestContext, request: Any) -> Needs:
    needs = _each(Op.DESCRIBE, GROUP, request.groups)
    if getattr(request, "include_authorized_operations", False):
        needs.quiet = operations_of(GROUP, request.groups)
    return needs


def consumer_group_describe(ctx: RequestContext, request: Any) -> Needs:
    needs = _each(Op.DESCRIBE, GROUP, request.group_ids)
    if request.include_authorized_operations:
        needs.quiet = operations_of(GROUP, request.group_ids)
    return needs


def list_groups(ctx: RequestContext, request: Any) -> Needs:
    # DESCRIBE on the cluster lists every group; otherwise the describable ones.
    _, groups = ctx.groups.list_groups((), ())
    quiet = [_cluster(Op.DESCRIBE)]
    quiet.extend(Action(Op.DESCRIBE, GROUP, g["group_id"]) for g in groups)
    return Needs(quiet=quiet)


def delete_groups(ctx: RequestContext, request: Any) -> Needs:
    return _each(Op.DELETE, GROUP, request.groups_names)


# -- topics and configs ---------------------------------------------------------------


def create_topics(ctx: RequestContext, request: Any) -> Needs:
    names = dict.fromkeys(t.name for t in request.topics)
    return Needs(
        resources=[Need(Action(Op.CREATE, TOPIC, n), unless=_cluster(Op.CREATE)) for n in names],
        # The created topic's configs are returned only with DESCRIBE_CONFIGS on it.
        quiet=[Action(Op.DESCRIBE_CONFIGS, TOPIC, n) for n in names],
    )


def delete_topics(ctx: RequestContext, request: Any) -> Needs:
    if ctx.api_version >= 6:
        names = []
        for topic in request.topics:
            name = topic.name
            if name is None and topic.topic_id is not None:
                record = ctx.topics.by_id(topic.topic_id.bytes)
                name = record.name if record is not None else None
            names.append(name)
    else:
        names = list(request.topic_names)
    # DELETE on the cluster deletes any topic (Kafka's ControllerApis.deleteTopics).
    seen = dict.fromkeys(n for n in names if n is not None)
    return Needs(
        resources=[Need(Action(Op.DELETE, TOPIC, n), unless=_cluster(Op.DELETE)) for n in seen]
    )


def create_partitions(ctx: RequestContext, request: Any) -> Needs:
    return _each(Op.ALTER, TOPIC, (t.name for t in request.topics))


# ConfigResource.Type TOPIC, BROKER, GROUP
_CONFIG_RESOURCES = {2: TOPIC, 4: CLUSTER, 32: GROUP}


def _configs(operation: Operation, resources: Any) -> Needs:
    needs = Needs()
    for resource in resources:
        resource_type = _CONFIG_RESOURCES.get(resource.resource_type)
        if resource_type in (TOPIC, GROUP):
            needs.resources.append(Need(Action(operation, resource_type, resource.resource_name)))
        elif resource_type == CLUSTER:
            needs.resources.append(Need(_cluster(operation)))
    return needs


def describe_configs(ctx: RequestContext, request: Any) -> Needs:
    return _configs(Op.DESCRIBE_CONFIGS, request.resources)


def alter_configs(ctx: RequestContext, request: Any) -> Needs:
    return _configs(Op.ALTER_CONFIGS, request.resources)


# -- producer ids ---------------------------------------------------------------------


def init_producer_id(ctx: RequestContext, request: Any) -> Needs:
    if request.transactional_id is not None:
        return Needs(
            gate=Gate(
                (Action(Op.WRITE, TXN, request.transactional_id),),
                ErrorCode.transactional_id_authorization_failed,
            )
        )
    # An idempotent producer: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic.
    return Needs(
        gate=Gate(
            (_cluster(Op.IDEMPOTENT_WRITE),),
            ErrorCode.cluster_authorization_failed,
            any_of_type=(Op.WRITE, TOPIC),
        )
    )


# -- mirror append --------------------------------------------------------------------


def mirror_append(ctx: RequestContext, request: Any) -> Needs:
    """MirrorAppend writes at offsets of its choosing: ALTER on the cluster, as replication
    is the cluster's own business in Kafka."""
    return Needs(gate=Gate((_cluster(Op.ALTER),), ErrorCode.cluster_authorization_failed))


def refuse_mirror_append(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    """Every partition of the request answers the refusal (the response has no top-level
    error)."""
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        topics=[
            {
                "name": topic.name,
                "partitions": [
                    {"index": p.index, "error_code": error, "error_message": None}
                    for p in topic.partitions
                ],
            }
            for topic in request.topics
        ],
    )


# -- ACLs -----------------------------------------------------------------------------


def alter_acls(ctx: RequestContext, request: Any) -> Needs:
    """CreateAcls and DeleteAcls: ALTER on the cluster."""
    return Needs(gate=Gate((_cluster(Op.ALTER),), ErrorCode.cluster_authorization_failed))


def describe_acls(ctx: RequestContext, request: Any) -> Needs:
    return Needs(gate=Gate((_cluster(Op.DESCRIBE),), ErrorCode.cluster_authorization_failed))


def describe_client_quotas(ctx: RequestContext, request: Any) -> Needs:
    """DescribeClientQuotas: DESCRIBE_CONFIGS on the cluster (Kafka's KafkaApis)."""
    return Needs(
        gate=Gate((_cluster(Op.DESCRIBE_CONFIGS),), ErrorCode.cluster_authorization_failed)
    )


def alter_client_quotas(ctx: RequestContext, request: Any) -> Needs:
    """AlterClientQuotas: ALTER_CONFIGS on the cluster (Kafka's ControllerApis)."""
    return Needs(gate=Gate((_cluster(Op.ALTER_CONFIGS),), ErrorCode.cluster_authorization_failed))


# -- SCRAM credentials ----------------------------------------------------------------


def describe_user_scram_credentials(ctx: RequestContext, request: Any) -> Needs:
    return Needs(gate=Gate((_cluster(Op.DESCRIBE),), ErrorCode.cluster_authorization_failed))


def alter_user_scram_credentials(ctx: RequestContext, request: Any) -> Needs:
    return Needs(gate=Gate((_cluster(Op.ALTER),), ErrorCode.cluster_authorization_failed))


# -- whole-request refusals whose response has no top-level error ----------------------


def refuse_top_level(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    return ctx.reply(throttle_time=ctx.throttle_ms, error_code=error)


def refuse_produce(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        responses=[
            {
                "name": getattr(t, "name", None),
                "topic_id": getattr(t, "topic_id", None),
                "partition_responses": [
                    {"index": p.index, "error_code": error, "base_offset": -1}
                    for p in t.partition_data
                ],
            }
            for t in request.topic_data
        ],
    )


def refuse_offset_commit(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    """Every partition gets `error`; topics echo the name or, in the versions that name
    topics by id, the id (OffsetCommit and TxnOffsetCommit)."""
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        topics=[
            {
                "name": getattr(t, "name", None),
                "topic_id": getattr(t, "topic_id", None),
                "partitions": [
                    {"partition_index": p.partition_index, "error_code": error}
                    for p in t.partitions
                ],
            }
            for t in request.topics
        ],
    )


def refuse_producer_id(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    return ctx.reply(
        throttle_time=ctx.throttle_ms, error_code=error, producer_id=-1, producer_epoch=-1
    )


def refuse_create_acls(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    results = [{"error_code": error, "error_message": None} for _ in request.creations]
    return ctx.reply(throttle_time=ctx.throttle_ms, results=results)


def refuse_delete_acls(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    results = [
        {"error_code": error, "error_message": None, "matching_acls": []} for _ in request.filters
    ]
    return ctx.reply(throttle_time=ctx.throttle_ms, filter_results=results)


# The message of each error's exception as Kafka builds it with no message of its own.
_DEFAULT_MESSAGES = {ErrorCode.cluster_authorization_failed: "Cluster authorization failed."}


def refuse_describe_client_quotas(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=error,
        error_message=None,  # Kafka sends no message here, unlike AlterClientQuotas
        entries=None,
    )


def refuse_alter_client_quotas(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    """Every entry gets the error, as Kafka's AlterClientQuotasRequest.getErrorResponse."""
    entries = [
        {
            "error_code": error,
            "error_message": _DEFAULT_MESSAGES.get(error),
            "entity": [
                {"entity_type": e.entity_type, "entity_name": e.entity_name} for e in entry.entity
            ],
        }
        for entry in request.entries
    ]
    return ctx.reply(throttle_time=ctx.throttle_ms, entries=entries)


def refuse_alter_user_scram_credentials(
    ctx: RequestContext, request: Any, error: ErrorCode
) -> Reply:
    """Kafka answers every user of the request (deletions, then upsertions) with the error."""
    users = [d.name for d in request.deletions] + [u.name for u in request.upsertions]
    results = [{"user": user, "error_code": error, "error_message": None} for user in users]
    return ctx.reply(throttle_time=ctx.throttle_ms, results=results)
