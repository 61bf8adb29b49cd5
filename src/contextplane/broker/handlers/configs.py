"""DescribeConfigs, AlterConfigs, IncrementalAlterConfigs (topic and broker resources)."""

from __future__ import annotations

from typing import Any

from contextplane.broker.configs import BROKER_CONFIGS, TOPIC_CONFIGS, invalid_topic_config
from contextplane.broker.context import Reply, RequestContext
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode

TOPIC = 2
BROKER = 4
# ConfigSource values from DescribeConfigsResponse.json
SOURCE_TOPIC = 1
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5
# IncrementalAlterConfigs operations
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
_OPERATION_NAMES = {SET: "SET", DELETE: "DELETE", APPEND: "APPEND", SUBTRACT: "SUBTRACT"}
_RESOURCE_NAMES = {TOPIC: "topic", BROKER: "broker"}


def _config_type(name: str) -> int:
    # ConfigType: 1 BOOLEAN, 2 STRING, 3 INT, 4 SHORT, 5 LONG, 7 LIST
    if name.endswith((".ms", ".bytes", ".messages")):
        return 5
    if name in ("cleanup.policy",):
        return 7
    return 2


async def describe_configs(ctx: RequestContext, request: Any) -> Reply:
    results = []
    for resource in request.resources:
        entry: dict[str, Any] = {
            "error_code": ErrorCode.none,
            "error_message": None,
            "resource_type": resource.resource_type,
            "resource_name": resource.resource_name,
            "configs": [],
        }
        keys = set(resource.configuration_keys) if resource.configuration_keys else None
        if resource.resource_type == TOPIC:
            record = ctx.topics.topics().get(resource.resource_name)
            if record is None:
                entry.update(
                    error_code=ErrorCode.unknown_topic_or_partition,
                    error_message=f"Topic {resource.resource_name} does not exist",
                )
            else:
                for name, (_, default) in sorted(TOPIC_CONFIGS.items()):
                    if keys is not None and name not in keys:
                        continue
                    explicit = name in record.configs
                    entry["configs"].append(
                        _config(
                            name,
                            record.configs[name] if explicit else default(ctx.settings),
                            SOURCE_TOPIC if explicit else SOURCE_DEFAULT,
                        )
                    )
        elif resource.resource_type == BROKER:
            if resource.resource_name not in ("", str(ctx.cluster.node_id)):
                entry.update(error_code=ErrorCode.invalid_request, error_message="Unknown broker")
            else:
                for name, value in sorted(BROKER_CONFIGS.items()):
                    if keys is None or name in keys:
                        entry["configs"].append(
                            _config(name, value(ctx.settings), SOURCE_STATIC_BROKER, read_only=True)
                        )
        else:
            entry.update(
                error_code=ErrorCode.invalid_request,
                error_message=f"Unsupported resource type {resource.resource_type}",
            )
        results.append(entry)
    return ctx.reply(throttle_time=ctx.throttle_ms, results=results)


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


def _check_topic(ctx: RequestContext, resource: Any) -> dict[str, str]:
    if resource.resource_type != TOPIC:
        raise KafkaError(
            ErrorCode.invalid_request, "Only topic configs can be altered on this broker"
        )
    record = ctx.topics.topics().get(resource.resource_name)
    if record is None:
        raise KafkaError(
            ErrorCode.unknown_topic_or_partition, f"Topic {resource.resource_name} does not exist"
        )
    return dict(record.configs)


async def _alter(ctx: RequestContext, request: Any, apply: Any, api: str, describe: Any) -> Reply:
    results = []
    for resource in request.resources:
        entry: dict[str, Any] = {
            "error_code": ErrorCode.none,
            "error_message": None,
            "resource_type": resource.resource_type,
            "resource_name": resource.resource_name,
        }
        try:
            configs = apply(_check_topic(ctx, resource), resource.configs)
            for name, value in configs.items():
                problem = invalid_topic_config(name, value)
                if problem:
                    raise KafkaError(ErrorCode.invalid_config, problem)
            if not request.validate_only:
                await ctx.topics.set_configs(resource.resource_name, configs)
        except KafkaError as exc:
            entry.update(error_code=exc.code, error_message=exc.message)
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
        for change in changes:
            if change.config_operation == SET:
                current[change.name] = change.value
            elif change.config_operation == DELETE:
                current.pop(change.name, None)
            elif change.config_operation in (APPEND, SUBTRACT):
                # A list config's effective value, default included, is what Kafka
                # appends to or subtracts from.
                spec = TOPIC_CONFIGS.get(change.name)
                base = current.get(change.name, spec[1](settings) if spec else "")
                items = [v for v in base.split(",") if v]
                value = change.value or ""
                if change.config_operation == APPEND and value not in items:
                    items.append(value)
                elif change.config_operation == SUBTRACT and value in items:
                    items.remove(value)
                current[change.name] = ",".join(items)
            else:
                raise KafkaError(ErrorCode.invalid_request, "Unknown config operation")
        return current

    def describe(changes: Any) -> str:
        return ",".join(
            f"{_OPERATION_NAMES.get(c.config_operation, c.config_operation)} {c.name}={c.value}"
            for c in changes
        )

    return await _alter(ctx, request, apply, "IncrementalAlterConfigs", describe)
