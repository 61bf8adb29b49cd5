"""ListConfigResources (API 74; v0 was ListClientMetricsResources): the config resources
a `kafka-configs.sh --describe` without a name walks, as Kafka 4.4 lists them (checked
against it): topics, every live broker as BROKER and BROKER_LOGGER, groups that have
config overrides (only when GROUP is asked for by name), and client-metrics resources,
of which there are none (GetTelemetrySubscriptions is not served). No types asked for
means Kafka's defaults (v0: client metrics only); a type it does not list is
UNSUPPORTED_VERSION."""

from __future__ import annotations

from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.handlers.cluster import live_brokers
from contextplane.protocol.error_codes import ErrorCode

TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP = 2, 4, 8, 16, 32
_SUPPORTED = frozenset({TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP})
# What an empty list asks for, per version (Kafka 4.4 leaves GROUP out of v1's).
_DEFAULTS = {0: (CLIENT_METRICS,), 1: (BROKER_LOGGER, BROKER, TOPIC, CLIENT_METRICS)}


def _names(ctx: RequestContext, resource_type: int) -> list[str]:
    if resource_type == TOPIC:
        return sorted(ctx.topics.topics())
    if resource_type in (BROKER, BROKER_LOGGER):
        return [str(node) for node, _host, _port, _rack in live_brokers(ctx)]
    if resource_type == GROUP:
        return sorted(ctx.groups.configs.group_ids())
    return []  # CLIENT_METRICS: no client-metrics subscriptions here


async def list_config_resources(ctx: RequestContext, request: Any) -> Reply:
    # The decoded list is bounded by the frame; each type is listed once.
    asked = tuple(dict.fromkeys(int(t) for t in getattr(request, "resource_types", ())))
    if not _SUPPORTED.issuperset(asked):
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=ErrorCode.unsupported_version,
            config_resources=[],
        )
    types = asked or _DEFAULTS[min(ctx.api_version, 1)]  # v0 names no types
    resources = [
        {"resource_name": name, "resource_type": resource_type}
        for resource_type in types
        for name in _names(ctx, resource_type)
    ]
    return await ctx.large_reply(
        len(resources),
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        config_resources=resources,
    )


def refuse(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    return ctx.reply(throttle_time=ctx.throttle_ms, error_code=error, config_resources=[])
