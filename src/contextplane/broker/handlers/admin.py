"""CreateTopics, DeleteTopics, CreatePartitions (each bounded by the client's
controller_mutation_rate: security/mutation_quota.py), answered on a cluster once the live
brokers show the change (broker/topic_propagation.py)."""

from __future__ import annotations

import uuid
from typing import Any

from contextplane import limits
from contextplane.broker.configs import TOPIC_CONFIGS
from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.internal_topics import AUDIT_TRAIL_TOPICS, is_internal
from contextplane.broker.topic_propagation import DELETED, until_shown
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import Operation, ResourceType
from contextplane.security.mutation_quota import MutationQuota


async def create_topics(ctx: RequestContext, request: Any) -> Reply:
    topics_manager = ctx.topics
    seen: dict[str, int] = {}
    for topic in request.topics:
        seen[topic.name] = seen.get(topic.name, 0) + 1
    # Validate every topic first: Kafka's controller refuses the whole request when it
    # would create too many partitions or records, validate_only or not.
    planned: list[tuple[Any, dict[str, Any], tuple[int, dict[str, str]] | None]] = []
    reported: set[str] = set()
    for topic in request.topics:
        if topic.name in reported:
            continue  # Kafka answers a name repeated in one request once
        reported.add(topic.name)
        entry: dict[str, Any] = {
            "name": topic.name,
            "topic_id": uuid.UUID(int=0),
            "error_code": ErrorCode.none,
            "error_message": None,
            "topic_config_error_code": ErrorCode.none,
            "num_partitions": -1,
            "replication_factor": -1,
            "configs": None,
        }
        checked = None
        try:
            if seen[topic.name] > 1:
                raise KafkaError(ErrorCode.invalid_request, "Duplicate topic name in the request.")
            if ctx.denied(ResourceType.TOPIC, topic.name):
                raise KafkaError(ErrorCode.topic_authorization_failed, "Authorization failed.")
            if topic.assignments and topic.num_partitions != -1:
                raise KafkaError(
                    ErrorCode.invalid_request,
                    "Both numPartitions or replicationFactor and replicasAssignments were set.",
                )
            partitions = topic.num_partitions
            if topic.assignments:
                partitions = len(topic.assignments)
            configs = {c.name: c.value for c in topic.configs}
            checked = topics_manager.check_create(
                topic.name, partitions, topic.replication_factor, configs
            )
        except KafkaError as exc:
            entry.update(error_code=exc.code, error_message=exc.message)
        planned.append((topic, entry, checked))
    # Kafka sends the controller only the distinct topics the principal may create: the
    # bounds count those, and a refused topic keeps TOPIC_AUTHORIZATION_FAILED.
    bounded = {
        topic.name
        for topic, entry, _ in planned
        if seen[topic.name] == 1 and entry["error_code"] != ErrorCode.topic_authorization_failed
    }
    unique = [topic for topic, _, _ in planned if topic.name in bounded]
    refusal = request_bound_refusal(
        unique, [checked for _, _, checked in planned if checked is not None], ctx
    )
    results = []
    changed: dict[str, int] = {}
    quota = mutation_quota(ctx)
    for topic, entry, checked in planned:
        results.append(entry)
        if refusal is not None and topic.name in bounded:
            entry.update(error_code=refusal.code, error_message=refusal.message)
            checked = None
        if checked is not None and quota is not None and not quota.accept(checked[0]):
            # As Kafka's controller: after validation, validate_only too.
            # Kafka's generic message is left out (ApiError.fromThrowable): null.
            entry.update(error_code=ErrorCode.throttling_quota_exceeded, error_message=None)
            checked = None
        if checked is not None:
            count, clean = checked
            entry.update(num_partitions=count, replication_factor=1)
            if ctx.allowed(Operation.DESCRIBE_CONFIGS, ResourceType.TOPIC, topic.name):
                entry["configs"] = _created_configs(ctx, clean)
            else:  # the new topic's configs are shown only to who may describe them
                entry["topic_config_error_code"] = ErrorCode.topic_authorization_failed
            if not request.validate_only:
                try:
                    record = await topics_manager.create(topic.name, count, clean)
                    entry["topic_id"] = uuid.UUID(bytes=record.topic_id)
                    changed[topic.name] = count
                except KafkaError as exc:
                    entry.update(
                        error_code=exc.code,
                        error_message=exc.message,
                        num_partitions=-1,
                        replication_factor=-1,
                        configs=None,
                    )
        if not request.validate_only:
            ctx.audit.record(
                ctx,
                "CreateTopics",
                "topic",
                topic.name,
                entry["error_code"],
                {
                    "partitions": topic.num_partitions,
                    "configs": ",".join(f"{c.name}={c.value}" for c in topic.configs),
                },
            )
    # Kafka lists the topics refused for authorization after the others.
    results.sort(key=lambda e: e["error_code"] == ErrorCode.topic_authorization_failed)
    await until_shown(ctx, changed)
    throttled(ctx, quota)
    return ctx.reply(throttle_time=ctx.throttle_ms, topics=results)


def mutation_quota(ctx: RequestContext) -> MutationQuota | None:
    """The client's controller_mutation_rate for this request, if one is set."""
    header = ctx.header
    return ctx.services.quotas.mutation_quota(
        ctx.principal, header.client_id, header.api_key, header.api_version
    )


def _message(exc: KafkaError) -> str | None:
    """A refusal's message; none for the mutation quota's (Kafka's ApiError leaves out
    an exception's message when it is the error's generic one)."""
    return None if exc.code == ErrorCode.throttling_quota_exceeded else exc.message


def throttled(ctx: RequestContext, quota: MutationQuota | None) -> None:
    """The mutation quota's throttle in the response and as the connection's mute."""
    if quota is not None:
        ctx.throttle(quota.throttle_ms())


def request_bound_refusal(
    requested: list[Any], valid: list[tuple[int, dict[str, str]]], ctx: RequestContext
) -> KafkaError | None:
    """Kafka's controller bounds on one CreateTopics, in its order and words.

    First the partitions the request asks for (each distinct topic's count, the default
    for -1, its assignments' length), whether or not the topic is valid; then the metadata
    records the valid topics would write (a topic record, one per partition and per config).
    """
    asked = 0
    for topic in requested:
        if topic.assignments:
            asked += len(topic.assignments)
        elif topic.num_partitions == -1:
            asked += ctx.settings.num_partitions
        elif topic.num_partitions > 0:
            asked += topic.num_partitions
    if asked > limits.PARTITIONS_PER_REQUEST_MAX:
        return KafkaError(
            ErrorCode.policy_violation, "Excessively large number of partitions per request."
        )
    records = sum(1 + count + len(configs) for count, configs in valid)
    if records > limits.RECORDS_PER_REQUEST_MAX:
        return KafkaError(
            ErrorCode.policy_violation, "Unable to perform excessively large batch operation."
        )
    return None


def _created_configs(ctx: RequestContext, explicit: dict[str, str]) -> list[dict[str, Any]]:
    """The new topic's effective configs, as Kafka returns them from CreateTopics v5+."""
    configs = []
    for name, (_, default) in sorted(TOPIC_CONFIGS.items()):
        given = name in explicit
        configs.append(
            {
                "name": name,
                "value": explicit[name] if given else default(ctx.settings),
                "read_only": False,
                "config_source": 1 if given else 5,  # TOPIC_CONFIG / DEFAULT_CONFIG
                "is_sensitive": False,
            }
        )
    return configs


async def delete_topics(ctx: RequestContext, request: Any) -> Reply:
    results = []
    changed: dict[str, int] = {}
    quota = mutation_quota(ctx)
    if ctx.api_version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(name, None) for name in request.topic_names]
    for name, topic_id in wanted:
        entry: dict[str, Any] = {
            "name": name,
            "topic_id": topic_id or uuid.UUID(int=0),
            "error_code": ErrorCode.none,
            "error_message": None,
        }
        try:
            if name is None and topic_id is not None:
                record = ctx.topics.by_id(topic_id.bytes)
                if record is None:
                    raise KafkaError(ErrorCode.unknown_topic_id)
                name = entry["name"] = record.name
            if name is None:
                raise KafkaError(ErrorCode.invalid_request, "neither name nor id given")
            ctx.require(ResourceType.TOPIC, name)
            record = ctx.topics.topics().get(name)
            if record is not None:
                entry["topic_id"] = uuid.UUID(bytes=record.topic_id)
            if name in AUDIT_TRAIL_TOPICS:
                raise KafkaError(
                    ErrorCode.topic_deletion_disabled,
                    f"{name} is the security audit trail and cannot be deleted",
                )
            if record is not None and quota is not None and not quota.accept(record.partitions):
                raise KafkaError(ErrorCode.throttling_quota_exceeded)
            await ctx.topics.delete(name)
            changed[name] = DELETED
        except KafkaError as exc:
            entry.update(error_code=exc.code, error_message=_message(exc))
        ctx.audit.record(
            ctx, "DeleteTopics", "topic", entry["name"] or topic_id, entry["error_code"]
        )
        results.append(entry)
    await until_shown(ctx, changed)
    throttled(ctx, quota)
    return ctx.reply(throttle_time=ctx.throttle_ms, responses=results)


async def create_partitions(ctx: RequestContext, request: Any) -> Reply:
    results = []
    existing = ctx.topics.topics()
    # Kafka's controller sees only the topics the principal may alter: the bound counts
    # those, and a refused topic keeps TOPIC_AUTHORIZATION_FAILED (listed first).
    refused = [t for t in request.topics if ctx.denied(ResourceType.TOPIC, t.name)]
    allowed = [t for t in request.topics if not ctx.denied(ResourceType.TOPIC, t.name)]
    added = sum(
        max(topic.count - existing[topic.name].partitions, 0)
        for topic in allowed
        if topic.name in existing
    )
    if added > limits.PARTITIONS_PER_REQUEST_MAX:
        # Kafka's controller refuses the whole request (validate_only too).
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            results=[
                {
                    "name": topic.name,
                    "error_code": ErrorCode.topic_authorization_failed,
                    "error_message": None,
                }
                for topic in refused
            ]
            + [
                {
                    "name": topic.name,
                    "error_code": ErrorCode.policy_violation,
                    "error_message": "Excessively large number of additional partitions per "
                    "request.",
                }
                for topic in allowed
            ],
        )
    quota = mutation_quota(ctx)
    changed: dict[str, int] = {}
    for topic in request.topics:
        entry: dict[str, Any] = {
            "name": topic.name,
            "error_code": ErrorCode.none,
            "error_message": None,
        }
        try:
            ctx.require(ResourceType.TOPIC, topic.name)
            record = ctx.topics.topics().get(topic.name)
            if record is None:
                raise KafkaError(
                    ErrorCode.unknown_topic_or_partition,
                    f"The topic '{topic.name}' does not exist.",
                )
            if is_internal(topic.name):
                # Groups and transactional ids are placed by hash over the coordinators'
                # topics' partition count, and the audit trail is one ordered partition:
                # growing one moves every coordinator at once (Kafka's own tool refuses).
                raise KafkaError(
                    ErrorCode.policy_violation,
                    f"The partition count of the internal topic {topic.name} is fixed.",
                )
            if topic.count < record.partitions:
                raise KafkaError(
                    ErrorCode.invalid_partitions,
                    f"Topic currently has {record.partitions} partitions, which is higher than "
                    f"the requested {topic.count}.",
                )
            if topic.count == record.partitions:
                raise KafkaError(
                    ErrorCode.invalid_partitions,
                    f"Topic already has {record.partitions} partitions.",
                )
            if (
                topic.assignments is not None
                and len(topic.assignments) != topic.count - record.partitions
            ):
                raise KafkaError(ErrorCode.invalid_replica_assignment, "Assignment count mismatch.")
            if quota is not None and not quota.accept(topic.count - record.partitions):
                raise KafkaError(ErrorCode.throttling_quota_exceeded)
            if not request.validate_only:
                await ctx.topics.add_partitions(topic.name, topic.count)
                changed[topic.name] = topic.count
        except KafkaError as exc:
            entry.update(error_code=exc.code, error_message=_message(exc))
            if exc.code == ErrorCode.topic_authorization_failed:
                entry["error_message"] = None  # as Kafka's controller answers it
        if not request.validate_only:
            ctx.audit.record(
                ctx,
                "CreatePartitions",
                "topic",
                topic.name,
                entry["error_code"],
                {"count": topic.count},
            )
        results.append(entry)
    # Kafka lists the topics refused for authorization first.
    results.sort(key=lambda e: e["error_code"] != ErrorCode.topic_authorization_failed)
    await until_shown(ctx, changed)
    throttled(ctx, quota)
    return ctx.reply(throttle_time=ctx.throttle_ms, results=results)
