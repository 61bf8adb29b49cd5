"""Authorization, asked in one place per request and per resource.

The request pipeline asks `authorize_api` before the handler runs (APIs that need a
cluster-level permission, e.g. DescribeCluster); handlers ask `authorize` for the resources
a request names, in one call per batch of resources, and answer each refused resource
with Kafka's per-resource error (Kafka's AuthHelper shape). With no authorizer configured
Kafka allows everything, and so does `AllowEverything`, the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from contextplane.security.principal import Principal


@dataclass(frozen=True, slots=True)
class Action:
    """One thing a principal wants to do: an operation on a named resource."""

    operation: str  # Kafka's AclOperation name: READ, WRITE, CREATE, DESCRIBE, ...
    resource_type: str  # TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID, ...
    name: str


class Authorizer(Protocol):
    def authorize(self, principal: Principal, host: str, actions: Sequence[Action]) -> list[bool]:
        """One answer per action, in order."""
        ...

    def authorize_api(self, principal: Principal, host: str, api_key: int) -> bool:
        """May this principal call this API at all (before its resources are looked at)?"""
        ...


class AllowEverything:
    """Kafka's behaviour when no authorizer is configured."""

    def authorize(self, principal: Principal, host: str, actions: Sequence[Action]) -> list[bool]:
        return [True] * len(actions)

    def authorize_api(self, principal: Principal, host: str, api_key: int) -> bool:
        return True
