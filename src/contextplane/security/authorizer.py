"""Authorization: the interface the request pipeline asks, once per request.

Each route declares the actions its request needs (`broker/authorization.py`); the
pipeline's authorize stage asks `authorize` for all of them in one call and hands the
verdicts to the handler, which answers each refused resource with Kafka's error (Kafka's
AuthHelper shape). With no authorizer configured Kafka allows everything, and so does
`AllowEverything`, the default; `enabled` is False for it, so the ACL APIs answer
SECURITY_DISABLED as Kafka's do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from contextplane.security.acls import Operation, ResourceType
from contextplane.security.principal import Principal


@dataclass(frozen=True, slots=True)
class Action:
    """One thing a principal wants to do: an operation on a named resource."""

    operation: Operation
    resource_type: ResourceType
    name: str


class Authorizer(Protocol):
    enabled: bool

    def authorize(self, principal: Principal, host: str, actions: Sequence[Action]) -> list[bool]:
        """One answer per action, in order."""
        ...

    def allowed_on_any(
        self, principal: Principal, host: str, operation: Operation, resource_type: ResourceType
    ) -> bool:
        """May the principal do `operation` on at least one resource of this type?"""
        ...

    def granted(self, principal: Principal, host: str, action: Action) -> bool:
        """Is `action` granted to the principal itself (a super user, or an ALLOW ACL not
        cancelled by a DENY), not by `allow.everyone.if.no.acl.found`? What stands in for
        another permission (a broker's CLUSTER_ACTION for a topic's WRITE) must be."""
        ...


class AllowEverything:
    """Kafka's behaviour when no authorizer is configured."""

    enabled = False

    def authorize(self, principal: Principal, host: str, actions: Sequence[Action]) -> list[bool]:
        return [True] * len(actions)

    def allowed_on_any(
        self, principal: Principal, host: str, operation: Operation, resource_type: ResourceType
    ) -> bool:
        return True

    def granted(self, principal: Principal, host: str, action: Action) -> bool:
        return True
