"""The balancer's two BROKER configs (RFC 0004 §6): how `contextplane cluster rebalance
| drain | undrain` read each broker's measured load and set it draining, through
DescribeConfigs and IncrementalAlterConfigs, so they are authorized (DESCRIBE_CONFIGS and
ALTER_CONFIGS on CLUSTER, Kafka's rule for BROKER resources) and audited as any
config change is, with no API of our own.

- `contextplane.broker.load` (read-only): the load document the broker's heartbeat
  wrote in its registry row (cluster/load.py).
- `contextplane.broker.state`: `live` or `draining`; SET `draining` marks the broker
  draining (nothing is placed on it), SET `live` or DELETE makes it eligible again.

Both are read from and written to the shared registry, so any broker answers for any
node id (Kafka sends a BROKER resource to that broker; these are answered wherever they
arrive). A resource asks for them alone: keys or changes naming only these configs;
anything else is the ordinary dynamic broker configs path.
"""

from __future__ import annotations

from typing import Any

from contextplane.broker.context import RequestContext
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode

LOAD = "contextplane.broker.load"
STATE = "contextplane.broker.state"
NAMES = frozenset({LOAD, STATE})
_SET, _DELETE = 0, 1
_STATES = ("live", "draining")


def asks_for_describe(keys: set[str] | None) -> bool:
    return bool(keys) and keys is not None and keys <= NAMES


def asks_for_alter(resource: Any) -> bool:
    return bool(resource.configs) and all(c.name in NAMES for c in resource.configs)


def _node(name: str) -> int:
    try:
        return int(name)
    except ValueError:
        raise KafkaError(
            ErrorCode.invalid_request, f"Broker id must be an integer, but it is: {name}"
        ) from None


def _entry(name: str, value: str) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "read_only": name == LOAD,
        "config_source": 1,  # DYNAMIC_BROKER_CONFIG: the broker's row, per broker
        "is_default": False,
        "is_sensitive": False,
        "synonyms": [],
        "config_type": 2,  # STRING
        "documentation": None,
    }


async def describe(ctx: RequestContext, name: str, keys: set[str]) -> list[dict[str, Any]]:
    """The asked configs of broker `name`, from the registry."""
    node = _node(name)
    for node_id, state, load in await ctx.log.metadata.broker_loads():
        if node_id == node:
            values = {LOAD: load, STATE: state}
            return [_entry(key, values[key]) for key in sorted(keys)]
    raise KafkaError(ErrorCode.broker_not_available, f"Broker {node} is not live")


async def alter(ctx: RequestContext, resource: Any, incremental: bool, validate_only: bool) -> None:
    """Set broker `resource_name` draining or live; KafkaError when refused."""
    node = _node(resource.resource_name)
    draining: bool | None = None
    for change in resource.configs:
        if change.name == LOAD:
            raise KafkaError(ErrorCode.invalid_config, f"{LOAD} is read-only")
        operation = change.config_operation if incremental else _SET
        if operation == _DELETE:
            draining = False
        elif operation == _SET and change.value in _STATES:
            draining = change.value == "draining"
        else:
            raise KafkaError(
                ErrorCode.invalid_config, f"{STATE} is SET to live or draining, or DELETEd"
            )
    if draining is None or validate_only:
        return
    if not await ctx.log.metadata.set_broker_draining(node, draining):
        raise KafkaError(ErrorCode.broker_not_available, f"Broker {node} is not live")
