"""DescribeConfigs, AlterConfigs, IncrementalAlterConfigs (topic, broker and group
resources)."""

from __future__ import annotations

import asyncio
from typing import Any

from contextplane import limits
from contextplane.broker.config_descriptions import (
    LATER_SYNONYM_DEFAULTS,
    TOPIC_CONFIG_DESCRIPTIONS,
    ConfigType,
)
from contextplane.broker.configs import (
    LIST_CONFIGS,
    TOPIC_CONFIGS,
    check_not_itself,
    checked_topic_config,
    list_items,
)
from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.dynamic_configs import DynamicBrokerConfigs
from contextplane.broker.handlers import broker_balance
from contextplane.broker.handlers.broker_configs import alter_broker, describe_broker
from contextplane.broker.internal_topics import AUDIT_TRAIL_TOPICS
from contextplane.broker.loopshare import LoopShare
from contextplane.coordinators.consumer_group import group_configs
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import CLUSTER_NAME, ResourceType, denial_error, denial_message
from contextplane.settings import Settings

TOPIC = 2
BROKER = 4
GROUP = 32
# ConfigSource values from DescribeConfigsResponse.json
SOURCE_TOPIC = 1
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5
SOURCE_GROUP = 8
CONFIG_TYPE_STRING, CONFIG_TYPE_INT = 2, 3
# IncrementalAlterConfigs operations
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
_OPERATION_NAMES = {SET: "SET", DELETE: "DELETE", APPEND: "APPEND", SUBTRACT: "SUBTRACT"}
_RESOURCE_NAMES = {TOPIC: "topic", BROKER: "broker", GROUP: "group"}
# Config resources and the ACL resource Kafka authorizes them on.
_ACL_RESOURCES = {
    TOPIC: ResourceType.TOPIC,
    BROKER: ResourceType.CLUSTER,
    GROUP: ResourceType.GROUP,
}
# The broker's own defaults: the values of the DEFAULT_CONFIG synonyms.
_DEFAULTS = Settings()


def _config_type(name: str) -> int:
    # ConfigType: 1 BOOLEAN, 2 STRING, 3 INT, 4 SHORT, 5 LONG, 6 DOUBLE, 7 LIST
    if name.endswith((".ms", ".bytes", ".messages")):
        return 5
    if name in ("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio"):
        return 6
    if name in LIST_CONFIGS or name == "log.cleanup.policy":
        return 7
    return 2


async def describe_configs(ctx: RequestContext, request: Any) -> Reply:
    results = []
    share = LoopShare()
    for resource in request.resources:
        if share.due():
            await asyncio.sleep(0)
        entry: dict[str, Any] = {
            "error_code": ErrorCode.none,
            "error_message": None,
            "resource_type": resource.resource_type,
            "resource_name": resource.resource_name,
            "configs": [],
        }
        keys = set(resource.configuration_keys) if resource.configuration_keys else None
        refusal = _refusal(ctx, resource)
        if refusal is not None:
            entry.update(error_code=refusal.code, error_message=refusal.message)
        elif resource.resource_type == TOPIC:
            record = ctx.topics.topics().get(resource.resource_name)
            if record is None:
                entry.update(
                    error_code=ErrorCode.unknown_topic_or_partition,
                    error_message=f"Topic {resource.resource_name} does not exist",
                )
            else:
                for name in sorted(TOPIC_CONFIGS):
                    if keys is None or name in keys:
                        entry["configs"].append(_topic_config(ctx, request, name, record.configs))
        elif resource.resource_type == BROKER:
            try:
                if keys is not None and broker_balance.asks_for_describe(keys):
                    entry["configs"] = await broker_balance.describe(
                        ctx, resource.resource_name, keys
                    )
                else:
                    entry["configs"] = describe_broker(
                        _dynamic(ctx), request, resource.resource_name, keys, _config_type
                    )
            except KafkaError as exc:
                entry.update(error_code=exc.code, error_message=exc.message)
        elif resource.resource_type == GROUP:
            overrides = ctx.groups.configs.get(resource.resource_name)
            for name in sorted(group_configs.SPECS):
                if keys is None or name in keys:
                    entry["configs"].append(_group_config(ctx, request, name, overrides))
        else:
            entry.update(
                error_code=ErrorCode.invalid_request,
                error_message=f"Unsupported resource type {resource.resource_type}",
            )
        results.append(entry)
    # Far larger than its request (a group's name: its ~20 configs, with documentation
    # and synonyms), so encoded off the loop too: 5,000 groups held it for 3 s.
    entries = len(results) + sum(len(entry["configs"]) for entry in results)
    return await ctx.large_encoded_reply(entries, throttle_time=ctx.throttle_ms, results=results)


def _refusal(ctx: RequestContext, resource: Any) -> KafkaError | None:
    """The authorization error for a config resource the principal may not use."""
    kind = _ACL_RESOURCES.get(resource.resource_type)
    if kind is None:
        return None
    name = resource.resource_name if kind != ResourceType.CLUSTER else CLUSTER_NAME
    if not ctx.denied(kind, name):
        return None
    return KafkaError(denial_error(kind), denial_message(kind))


def _topic_config(
    ctx: RequestContext, request: Any, name: str, overrides: dict[str, str]
) -> dict[str, Any]:
    """A topic config as Kafka describes it (ConfigHelper.createTopicConfigEntry): from the
    topic's override, else from the broker configs it falls back to; its synonyms are the
    override, then each level's broker synonyms in Kafka's order (dynamic per broker,
    dynamic default, static, default), from the first synonym on (KIP-226)."""
    description = TOPIC_CONFIG_DESCRIPTIONS[name]
    default = TOPIC_CONFIGS[name][1]
    from_broker = _broker_synonyms(ctx, name)
    if name in overrides:
        value, source = overrides[name], SOURCE_TOPIC
    else:
        value = default(ctx.settings)
        source = from_broker[0][2] if from_broker else SOURCE_DEFAULT
    entry = _config(name, value, source)
    entry["config_type"] = description.type
    if getattr(request, "include_documentation", False):
        entry["documentation"] = description.doc
    if getattr(request, "include_synonyms", False):
        synonyms = [(name, overrides[name], SOURCE_TOPIC)] if name in overrides else []
        synonyms += from_broker
        entry["synonyms"] = [{"name": n, "value": v, "source": src} for n, v, src in synonyms]
    return entry


def _broker_synonyms(ctx: RequestContext, name: str) -> list[tuple[str, str, int]]:
    """ConfigHelper.configSynonyms for a topic config: Kafka drops every synonym before the
    first one's own, so `retention.ms` lists none when only log.retention.hours is set."""
    description = TOPIC_CONFIG_DESCRIPTIONS[name]
    if not description.synonyms:
        return []
    levels = [(SOURCE_STATIC_BROKER, ctx.settings.given)]
    if ctx.services.broker_configs is not None:  # dynamic broker configs come first
        levels = ctx.services.broker_configs.levels()[:3]
    first = description.synonyms[0]
    defaults = dict(LATER_SYNONYM_DEFAULTS)
    if description.first_synonym_has_default:
        defaults[first] = TOPIC_CONFIGS[name][1](_DEFAULTS)
    levels.append((SOURCE_DEFAULT, defaults))
    found = [(s, v[s], src) for src, v in levels for s in description.synonyms if s in v]
    while found and found[0][0] != first:
        found.pop(0)
    return found


def _group_config(
    ctx: RequestContext, request: Any, name: str, overrides: dict[str, str]
) -> dict[str, Any]:
    """A group config as Kafka describes it: the group's override, else the broker's
    `group.*` setting, listed as a DEFAULT_CONFIG synonym (a config without a broker
    setting lists itself with its default, as Kafka 4.4 does)."""
    spec = group_configs.SPECS[name]
    broker = str(group_configs.broker_value(name, ctx.settings))
    override = group_configs.described(name, overrides[name]) if name in overrides else None
    if override is not None:
        entry = _config(name, override, SOURCE_GROUP)
    else:
        entry = _config(name, broker, SOURCE_DEFAULT)
    if spec.kind == "boolean":
        entry["config_type"] = ConfigType.BOOLEAN
    else:
        entry["config_type"] = (
            CONFIG_TYPE_STRING if group_configs.is_string(spec) else CONFIG_TYPE_INT
        )
    if getattr(request, "include_documentation", False):
        entry["documentation"] = spec.documentation
    if getattr(request, "include_synonyms", False):
        synonyms = [(name, override, SOURCE_GROUP)] if override is not None else []
        synonyms.append((spec.broker_setting or name, broker, SOURCE_DEFAULT))
        entry["synonyms"] = [{"name": n, "value": v, "source": src} for n, v, src in synonyms]
    return entry


def _config(name: str, value: str, source: int, read_only: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "read_only": read_only,
        "config_source": source,
        "is_default": source == SOURCE_DEFAULT,
        "is_sensitive": False,
        "synonyms": [],
        "config_type": _config_type(name),
        "documentation": None,
    }


def _check_changes(changes: Any) -> None:
    """What ConfigAdminManager.preprocess refuses in either API before anything else
    (INVALID_REQUEST): a name given twice, an unknown operation, a null value to set."""
    names = [change.name for change in changes]
    if len(set(names)) != len(names):
        raise KafkaError(ErrorCode.invalid_request, "Error due to duplicate config keys")
    for change in changes:
        operation = getattr(change, "config_operation", SET)  # AlterConfigs: all SET
        if operation not in _OPERATION_NAMES:
            raise KafkaError(ErrorCode.invalid_request, "Unknown config operation")
        if operation != DELETE and change.value is None:
            raise KafkaError(
                ErrorCode.invalid_request, f"Null value not supported for : {change.name}"
            )


def _dynamic(ctx: RequestContext) -> DynamicBrokerConfigs:
    dynamic = ctx.services.broker_configs
    if dynamic is None:  # a broker assembled without them (unit tests)
        raise KafkaError(ErrorCode.invalid_request, "Broker configs are static on this broker")
    return dynamic


def _check_topic(ctx: RequestContext, resource: Any) -> dict[str, str]:
    if resource.resource_type != TOPIC:
        raise KafkaError(
            ErrorCode.invalid_request, f"Unknown resource type {resource.resource_type}"
        )
    record = ctx.topics.topics().get(resource.resource_name)
    if record is None:
        raise KafkaError(
            ErrorCode.unknown_topic_or_partition, f"Topic {resource.resource_name} does not exist"
        )
    return dict(record.configs)


def _check_audit_trail(
    ctx: RequestContext, topic: str, current: dict[str, str], configs: dict[str, str]
) -> None:
    """The audit trail's topics take a change of their retention only: any other config
    (max.message.bytes, cleanup.policy, timestamps) could make the brokers' own appends
    fail, and the trail would stop without a client being refused anything."""
    if topic not in AUDIT_TRAIL_TOPICS:
        return

    def effective(name: str, held: dict[str, str]) -> str | None:
        spec = TOPIC_CONFIGS.get(name)
        return held.get(name, spec[1](ctx.settings) if spec is not None else None)

    changed = {
        n for n in current.keys() | configs.keys() if effective(n, current) != effective(n, configs)
    }
    fixed = sorted(changed - AUDIT_TRAIL_ALTERABLE)
    if fixed:
        raise KafkaError(
            ErrorCode.policy_violation,
            f"{topic} is the security audit trail: only retention.bytes and retention.ms"
            f" may be changed, not {', '.join(fixed)}",
        )


AUDIT_TRAIL_ALTERABLE = frozenset({"retention.ms", "retention.bytes"})


async def _alter(ctx: RequestContext, request: Any, apply: Any, api: str, describe: Any) -> Reply:
    incremental = api == "IncrementalAlterConfigs"
    # Kafka's controller writes a record per config change of the authorized resources
    # and, above QuorumController.MAX_RECORDS_PER_USER_OP, answers every resource of the
    # request with this error: without it, one request could store configs for a million
    # groups (which need not exist).
    changes = sum(len(r.configs) for r in request.resources if _refusal(ctx, r) is None)
    too_large = changes > limits.RECORDS_PER_REQUEST_MAX
    results = []
    for resource in request.resources:
        entry: dict[str, Any] = {
            "error_code": ErrorCode.none,
            "error_message": None,
            "resource_type": resource.resource_type,
            "resource_name": resource.resource_name,
        }
        try:
            if too_large:
                raise KafkaError(
                    ErrorCode.policy_violation,
                    "Unable to perform excessively large batch operation.",
                )
            refusal = _refusal(ctx, resource)
            if refusal is not None:
                raise refusal
            _check_changes(resource.configs)
            if resource.resource_type == BROKER and broker_balance.asks_for_alter(resource):
                await broker_balance.alter(ctx, resource, incremental, request.validate_only)
            elif resource.resource_type == BROKER:
                await alter_broker(_dynamic(ctx), resource, incremental, request.validate_only)
            elif resource.resource_type == GROUP:
                # A group's configs exist whether or not the group does, as in Kafka.
                name = resource.resource_name
                configs = apply(ctx.groups.configs.get(name), resource.configs)
                await ctx.groups.configs.set(name, configs, request.validate_only)
            else:
                current = _check_topic(ctx, resource)
                configs = apply(dict(current), resource.configs)
                configs = {n: checked_topic_config(n, v) for n, v in configs.items()}
                check_not_itself(resource.resource_name, configs)
                _check_audit_trail(ctx, resource.resource_name, current, configs)
                if not request.validate_only:
                    await ctx.topics.set_configs(resource.resource_name, configs)
        except KafkaError as exc:
            entry.update(error_code=exc.code, error_message=exc.message)
            if exc.code == ErrorCode.cluster_authorization_failed:
                entry["error_message"] = None  # Kafka answers a broker resource without one
        if not request.validate_only:
            ctx.audit.record(
                ctx,
                api,
                _RESOURCE_NAMES.get(resource.resource_type, str(resource.resource_type)),
                resource.resource_name,
                entry["error_code"],
                {"configs": describe(resource.configs)},
            )
        results.append(entry)
    # Kafka's controller answers the resources refused for authorization first.
    refused = (
        ErrorCode.topic_authorization_failed,
        ErrorCode.cluster_authorization_failed,
        ErrorCode.group_authorization_failed,
    )
    results.sort(key=lambda e: e["error_code"] not in refused)
    return ctx.reply(throttle_time=ctx.throttle_ms, responses=results)


async def alter_configs(ctx: RequestContext, request: Any) -> Reply:
    # AlterConfigs replaces the whole set of a resource's configs.
    return await _alter(
        ctx,
        request,
        lambda current, configs: {c.name: c.value for c in configs},
        "AlterConfigs",
        lambda configs: ",".join(f"{c.name}={c.value}" for c in configs),
    )


async def incremental_alter_configs(ctx: RequestContext, request: Any) -> Reply:
    settings = ctx.settings

    def apply(current: dict[str, str], changes: Any) -> dict[str, str]:
        for change in changes:  # checked by `_check_changes`
            operation = change.config_operation
            if operation == SET:
                current[change.name] = change.value
            elif operation == DELETE:
                current.pop(change.name, None)
            else:
                current[change.name] = _append_or_subtract(current, change, settings)
        return current

    def describe(changes: Any) -> str:
        return ",".join(
            f"{_OPERATION_NAMES.get(c.config_operation, c.config_operation)} {c.name}={c.value}"
            for c in changes
        )

    return await _alter(ctx, request, apply, "IncrementalAlterConfigs", describe)


def _append_or_subtract(current: dict[str, str], change: Any, settings: Any) -> str:
    """A LIST config after APPEND or SUBTRACT, as Kafka's ConfigAdminManager computes it:
    from the effective value (the default when unset), items added once or all removed.
    Removing the last item leaves the empty list, which is a valid value."""
    operation = _OPERATION_NAMES[change.config_operation]
    if change.name in group_configs.SPECS:  # a group config: none is a LIST
        raise KafkaError(
            ErrorCode.invalid_config,
            f"Can't {operation} to key {change.name} because its type is not LIST.",
        )
    spec = TOPIC_CONFIGS.get(change.name)
    if spec is None:
        raise KafkaError(ErrorCode.invalid_config, f"Unknown topic config name: {change.name}")
    if change.name not in LIST_CONFIGS:
        raise KafkaError(
            ErrorCode.invalid_config,
            f"Can't {operation} to key {change.name} because its type is not LIST.",
        )
    items = list_items(current.get(change.name, spec[1](settings)))
    if change.config_operation == APPEND:
        # Kafka joins the appended text on: an empty item in it is an empty list value.
        added = [item.strip() for item in change.value.split(",")]
        if "" in added and not LIST_CONFIGS[change.name].empty_items:
            raise KafkaError(
                ErrorCode.invalid_config, f"Configuration '{change.name}' values must not be empty."
            )
        present = set(items)  # a set: APPEND to a long list must not be quadratic
        for item in added:
            if item not in present:
                present.add(item)
                items.append(item)
    else:
        removed = set(list_items(change.value))
        items = [item for item in items if item not in removed]
    return ",".join(items)
